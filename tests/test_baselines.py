"""Tests of the baselines: each is the HMDR solver with part of the structure fixed."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from tools.baselines import (
    MODELS,
    DirtyModelRegression,
    FlatRegression,
    SharedOnlyRegression,
    SpecificOnlyRegression,
)
from tools.hmdr import HierarchicalMultiDomainRegression
from tools.planted import PlantedData, make_planted

TIGHT = 1e-9


@pytest.fixture(scope="module")
def planted() -> PlantedData:
    return make_planted(n_domains=3, n_concepts=21, n_shared=6, n_pairs_per_domain=200, label_noise=0.1)


def fit(model: HierarchicalMultiDomainRegression, data: PlantedData) -> HierarchicalMultiDomainRegression:
    return model.fit(data.X, data.y, data.domains, data.shared_mask, data.domain_masks)


def l1_logistic(X: np.ndarray, y: np.ndarray, C: float) -> np.ndarray:
    model = LogisticRegression(l1_ratio=1.0, C=C, fit_intercept=False, solver="liblinear", tol=1e-12, max_iter=100_000)
    return model.fit(X, y).coef_[0]


def test_registry_names_every_model() -> None:
    assert {
        "hmdr": HierarchicalMultiDomainRegression,
        "shared": SharedOnlyRegression,
        "specific": SpecificOnlyRegression,
        "dirty": DirtyModelRegression,
        "flat": FlatRegression,
    } == MODELS


def test_shared_only_is_hmdr_without_deviations(planted: PlantedData) -> None:
    model = fit(SharedOnlyRegression(lambda_shared=0.02, tol=TIGHT), planted)
    no_deviation = {d: np.zeros_like(planted.shared_mask) for d in planted.domain_names}
    reference = HierarchicalMultiDomainRegression(lambda_shared=0.02, tol=TIGHT).fit(
        planted.X, planted.y, planted.domains, planted.shared_mask, no_deviation
    )
    assert np.all(model.coef_domain_ == 0)
    assert np.all(model.coef_shared_[~planted.shared_mask] == 0)
    np.testing.assert_allclose(model.coef_shared_, reference.coef_shared_, atol=1e-10)


def test_flat_is_sklearn_l1_logistic_regression_on_all_concepts(planted: PlantedData) -> None:
    lam, n_domains = 0.02, len(planted.domain_names)
    model = fit(FlatRegression(lambda_shared=lam, tol=TIGHT), planted)
    # (1 + 1/|D|) times the mean loss over all rows: C = (1 + 1/|D|) / (n * lam).
    reference = l1_logistic(planted.X, planted.y, C=(1 + 1 / n_domains) / (len(planted.y) * lam))
    assert np.any(reference[~planted.shared_mask] != 0)  # shared_mask is ignored, as documented
    np.testing.assert_allclose(model.coef_shared_, reference, atol=1e-6)
    assert np.all(model.coef_domain_ == 0)


def test_specific_only_is_one_l1_regression_per_domain(planted: PlantedData) -> None:
    lam = 0.02
    model = fit(SpecificOnlyRegression(lambda_domain=lam, tol=TIGHT), planted)
    assert np.all(model.coef_shared_ == 0)
    for d, name in enumerate(model.domains_):
        rows, columns = planted.domains == name, planted.domain_masks[name]
        # (n_d / N) * mean_d loss + lam * sqrt(n_d / N) |s(d)|  ==  mean_d loss + lam * sqrt(N / n_d) |s(d)|
        per_domain = lam * np.sqrt(len(planted.y) / rows.sum())
        reference = l1_logistic(planted.X[rows][:, columns], planted.y[rows], C=1 / (rows.sum() * per_domain))
        np.testing.assert_allclose(model.coef_domain_[d, columns], reference, atol=1e-6)
        assert np.all(model.coef_domain_[d, ~columns] == 0)


def test_specific_only_refuses_unseen_domains(planted: PlantedData) -> None:
    model = fit(SpecificOnlyRegression(), planted)
    with pytest.raises(ValueError, match=r"no weights for domains \['elsewhere'\]"):
        model.predict(planted.X[:2], ["elsewhere", planted.domain_names[0]])
    with pytest.raises(ValueError, match="needs the rows' domains"):
        model.predict(planted.X[:2])
    assert model.predict(planted.X[:2], planted.domains[:2]).shape == (2,)


def test_dirty_model_is_hmdr_with_alpha_zero(planted: PlantedData) -> None:
    dirty = fit(DirtyModelRegression(lambda_shared=0.03, lambda_domain=0.02, tol=TIGHT), planted)
    hmdr = fit(HierarchicalMultiDomainRegression(alpha=0.0, lambda_shared=0.03, lambda_domain=0.02, tol=TIGHT), planted)
    with_alpha = fit(HierarchicalMultiDomainRegression(lambda_shared=0.03, lambda_domain=0.02, tol=TIGHT), planted)
    np.testing.assert_allclose(dirty.coef_shared_, hmdr.coef_shared_, atol=1e-10)
    np.testing.assert_allclose(dirty.coef_domain_, hmdr.coef_domain_, atol=1e-10)
    assert not np.allclose(dirty.coef_shared_, with_alpha.coef_shared_, atol=1e-4)


@pytest.mark.parametrize("name", ["shared", "dirty", "flat"])
def test_unseen_domain_uses_shared_weights(planted: PlantedData, name: str) -> None:
    model = fit(MODELS[name](), planted)
    X = planted.X[:10]
    np.testing.assert_allclose(model.decision_function(X, np.full(10, "new")), X @ model.coef_shared_)


@parametrize_with_checks([SharedOnlyRegression(), FlatRegression(), DirtyModelRegression(), SpecificOnlyRegression()])
def test_sklearn_compatible(
    estimator: HierarchicalMultiDomainRegression, check: Callable[[HierarchicalMultiDomainRegression], None]
) -> None:
    check(estimator)
