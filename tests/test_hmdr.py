"""Tests of the HMDR estimator and its solver."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from tools.hmdr import HierarchicalMultiDomainRegression
from tools.planted import PlantedData, make_planted

TIGHT = 1e-9


@pytest.fixture(scope="module")
def planted() -> PlantedData:
    return make_planted(n_domains=4, n_concepts=28, n_shared=8, n_pairs_per_domain=150, label_noise=0.1)


def fit(data: PlantedData, **params: float) -> HierarchicalMultiDomainRegression:
    model = HierarchicalMultiDomainRegression(**params)
    return model.fit(data.X, data.y, data.domains, data.shared_mask, data.domain_masks)


def reference_objective_and_gradient(
    data: PlantedData, model: HierarchicalMultiDomainRegression, alpha: float
) -> tuple[float, np.ndarray, np.ndarray]:
    """The objective of the docstring (mean loss over all rows, deviation penalty sqrt(n_d / N)),
    written out independently of the solver."""
    b, S = model.coef_shared_, model.coef_domain_
    n = len(data.y)
    sizes = np.array([np.sum(data.domains == name) for name in model.domains_])
    objective = model.lambda_shared * np.abs(b).sum()
    objective += model.lambda_domain * np.sum(np.sqrt(sizes / n) * np.abs(S).sum(axis=1))
    grad_b, grad_S = np.zeros_like(b), np.zeros_like(S)
    for d, name in enumerate(model.domains_):
        X, y = data.X[data.domains == name], data.y[data.domains == name]
        for weights, term_weight, grads in ((b + S[d], 1.0, (grad_b, grad_S[d])), (b, alpha, (grad_b,))):
            margin = y * (X @ weights)
            objective += term_weight * np.sum(np.log1p(np.exp(-margin))) / n
            residual = term_weight * -y / (1.0 + np.exp(margin)) / n
            for grad in grads:
                grad += X.T @ residual
    return objective, grad_b, grad_S


def test_kkt_conditions_hold_at_solution(planted: PlantedData) -> None:
    model = fit(planted, lambda_shared=0.04, lambda_domain=0.02, tol=TIGHT)
    objective, grad_b, grad_S = reference_objective_and_gradient(planted, model, alpha=1 / 4)
    assert model.objective_ == pytest.approx(objective, rel=1e-12)
    allowed = np.vstack([planted.shared_mask, [planted.domain_masks[d] for d in model.domains_]])
    coef = np.vstack([model.coef_shared_, model.coef_domain_])[allowed]
    grad = np.vstack([grad_b, grad_S])[allowed]
    sizes = np.array([np.sum(planted.domains == name) for name in model.domains_])
    weights = np.sqrt(sizes / sizes.sum())[:, None]
    penalty = np.vstack([np.full_like(grad_b, 0.04), 0.02 * weights * np.ones_like(grad_S)])[allowed]
    active = coef != 0
    assert active.sum() > 5 and (~active).sum() > 5  # both kinds of condition are exercised
    np.testing.assert_allclose(grad[active], -penalty[active] * np.sign(coef[active]), atol=1e-7)
    assert np.all(np.abs(grad[~active]) <= penalty[~active] + 1e-7)


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_one_domain_with_b_only_matches_sklearn(planted: PlantedData, alpha: float) -> None:
    X, y, lam = planted.X[:300], planted.y[:300], 0.02
    no_deviation = {0: np.zeros(X.shape[1], dtype=bool)}
    model = HierarchicalMultiDomainRegression(alpha=alpha, lambda_shared=lam, tol=TIGHT)
    model.fit(X, y, domain_masks=no_deviation)
    # (1 + alpha) * mean loss + lam |w|_1  ==  C * sum loss + |w|_1  with  C = (1 + alpha) / (n lam)
    reference = LogisticRegression(
        l1_ratio=1.0,
        C=(1 + alpha) / (len(y) * lam),
        fit_intercept=False,
        solver="liblinear",
        tol=1e-12,
        max_iter=100_000,
    ).fit(X, y)
    assert np.count_nonzero(reference.coef_) > 3
    np.testing.assert_allclose(model.coef_shared_, reference.coef_[0], atol=1e-6)


def test_one_domain_dirty_split_matches_sklearn(planted: PlantedData) -> None:
    """With alpha = 0 and equal penalties, b + s(d) is an L1 logistic regression (the split is free)."""
    X, y, lam = planted.X[:300], planted.y[:300], 0.02
    model = HierarchicalMultiDomainRegression(alpha=0.0, lambda_shared=lam, lambda_domain=lam, tol=TIGHT).fit(X, y)
    reference = LogisticRegression(
        l1_ratio=1.0, C=1 / (len(y) * lam), fit_intercept=False, solver="liblinear", tol=1e-12, max_iter=100_000
    ).fit(X, y)
    np.testing.assert_allclose(model.coef_shared_ + model.coef_domain_[0], reference.coef_[0], atol=1e-6)


def test_structural_zeros_are_respected(planted: PlantedData) -> None:
    unrestricted = HierarchicalMultiDomainRegression(lambda_shared=0.0025, lambda_domain=0.005)
    unrestricted.fit(planted.X, planted.y, planted.domains)
    assert np.any(unrestricted.coef_shared_[~planted.shared_mask] != 0)  # the masks do bind

    model = fit(planted, lambda_shared=0.0025, lambda_domain=0.005)
    assert np.all(model.coef_shared_[~planted.shared_mask] == 0)
    for d, name in enumerate(model.domains_):
        assert np.all(model.coef_domain_[d, ~planted.domain_masks[name]] == 0)
        assert np.any(model.coef_domain_[d, planted.domain_masks[name] & ~planted.shared_mask] != 0)


def test_unseen_domain_and_no_domain_use_shared_weights(planted: PlantedData) -> None:
    model = fit(planted)
    X = planted.X[:20]
    shared = X @ model.coef_shared_
    np.testing.assert_allclose(model.decision_function(X, np.full(20, "unseen")), shared)
    np.testing.assert_allclose(model.decision_function(X), shared)
    seen = np.full(20, model.domains_[1])
    np.testing.assert_allclose(model.decision_function(X, seen), X @ (model.coef_shared_ + model.coef_domain_[1]))
    mixed = np.where(np.arange(20) % 2 == 0, model.domains_[1], "unseen")
    expected = np.where(np.arange(20) % 2 == 0, X @ (model.coef_shared_ + model.coef_domain_[1]), shared)
    np.testing.assert_allclose(model.decision_function(X, mixed), expected)


@pytest.mark.parametrize("to_sparse", [sp.csr_matrix, sp.csc_array])
def test_sparse_equals_dense(planted: PlantedData, to_sparse: type) -> None:
    dense = fit(planted, tol=TIGHT)
    sparse = HierarchicalMultiDomainRegression(tol=TIGHT).fit(
        to_sparse(planted.X), planted.y, planted.domains, planted.shared_mask, planted.domain_masks
    )
    np.testing.assert_allclose(sparse.coef_shared_, dense.coef_shared_, atol=1e-10)
    np.testing.assert_allclose(sparse.coef_domain_, dense.coef_domain_, atol=1e-10)
    np.testing.assert_allclose(
        sparse.predict_proba(to_sparse(planted.X), planted.domains), dense.predict_proba(planted.X, planted.domains)
    )


@pytest.mark.parametrize("to_rows", [np.asarray, sp.csr_matrix])
def test_rows_in_chunks_that_cut_domains_fit_the_same_model(
    planted: PlantedData, to_rows: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = fit(planted, tol=TIGHT)
    monkeypatch.setattr("tools.hmdr._CHUNK_ROWS", 37)  # every domain's rows span several chunks
    chunked = HierarchicalMultiDomainRegression(tol=TIGHT).fit(
        to_rows(planted.X), planted.y, planted.domains, planted.shared_mask, planted.domain_masks
    )
    np.testing.assert_allclose(chunked.coef_shared_, whole.coef_shared_, atol=1e-10)
    np.testing.assert_allclose(chunked.coef_domain_, whole.coef_domain_, atol=1e-10)


def test_explicit_augmentation_equals_implicit(planted: PlantedData) -> None:
    implicit = fit(planted, tol=TIGHT)
    augmented = HierarchicalMultiDomainRegression(tol=TIGHT).fit(
        np.vstack([planted.X, -planted.X]),
        np.concatenate([planted.y, -planted.y]),
        np.concatenate([planted.domains, planted.domains]),
        planted.shared_mask,
        planted.domain_masks,
    )
    np.testing.assert_allclose(augmented.coef_shared_, implicit.coef_shared_, atol=1e-8)
    np.testing.assert_allclose(augmented.coef_domain_, implicit.coef_domain_, atol=1e-8)
    assert augmented.objective_ == pytest.approx(implicit.objective_, rel=1e-10)
    # Order symmetry of the predictions: p(x) + p(-x) = 1.
    proba = implicit.predict_proba(planted.X, planted.domains)[:, 1]
    np.testing.assert_allclose(proba + implicit.predict_proba(-planted.X, planted.domains)[:, 1], 1.0)


def test_warm_start_reaches_same_solution_faster(planted: PlantedData) -> None:
    cold = fit(planted, lambda_shared=0.02, lambda_domain=0.02, tol=1e-8)
    warm = fit(planted, lambda_shared=0.03, lambda_domain=0.03, tol=1e-8, warm_start=True)
    warm.set_params(lambda_shared=0.02, lambda_domain=0.02)
    warm.fit(planted.X, planted.y, planted.domains, planted.shared_mask, planted.domain_masks)
    np.testing.assert_allclose(warm.coef_shared_, cold.coef_shared_, atol=1e-6)
    np.testing.assert_allclose(warm.coef_domain_, cold.coef_domain_, atol=1e-6)
    assert warm.n_iter_ < cold.n_iter_
    warm.fit(planted.X, planted.y, planted.domains, planted.shared_mask, planted.domain_masks)
    assert warm.n_iter_ == 0  # already optimal: the KKT test passes before any step


def test_recovers_planted_support_and_signs() -> None:
    data = make_planted(
        n_domains=3,
        n_concepts=24,
        n_shared=6,
        n_pairs_per_domain=2000,
        deviation_active=0.0,
        weight_range=(1.0, 2.0),
        density=0.5,
    )
    # Per-domain penalties of 0.05 on each domain's mean loss: b sees the mean over 3 domains, s(d)
    # is weighted sqrt(n_d / N) = 1 / sqrt(3) on a loss carrying n_d / N = 1 / 3 of the rows.
    model = fit(data, lambda_shared=0.05 / 3, lambda_domain=0.05 / np.sqrt(3))
    np.testing.assert_array_equal(np.sign(model.coef_shared_), np.sign(data.coef_shared))
    np.testing.assert_array_equal(np.sign(model.coef_domain_), np.sign(data.coef_domain))


def test_any_two_labels() -> None:
    data = make_planted(n_domains=2, n_concepts=12, n_shared=4, n_pairs_per_domain=100)
    names = np.where(data.y > 0, "first", "second")  # "first" sorts first: it is classes_[0]
    model = HierarchicalMultiDomainRegression().fit(data.X, names, data.domains)
    numeric = HierarchicalMultiDomainRegression().fit(data.X, data.y, data.domains)
    np.testing.assert_array_equal(model.classes_, ["first", "second"])
    np.testing.assert_allclose(model.coef_shared_, -numeric.coef_shared_, atol=1e-12)
    margin = numeric.decision_function(data.X, data.domains)
    decided = margin != 0  # a zero margin goes to classes_[0] whatever the labels are
    expected = np.where(margin > 0, "first", "second")
    np.testing.assert_array_equal(model.predict(data.X, data.domains)[decided], expected[decided])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"domains": np.zeros(5)}, "domains must have shape"),
        ({"shared_mask": np.ones(3, dtype=bool)}, "shared_mask must be a boolean array of shape"),
        (
            {"domain_masks": {"a": np.ones(6, dtype=bool), "b": np.ones(6, dtype=bool), "zzz": np.ones(6, dtype=bool)}},
            "not in the data: \\['zzz'\\]",
        ),
        ({"domain_masks": {"a": np.ones(6, dtype=bool)}}, "no mask for domains: \\['b'\\]"),
    ],
)
def test_bad_input_is_named(kwargs: dict, message: str) -> None:
    X = np.random.default_rng(0).choice([-1.0, 0.0, 1.0], size=(40, 6))
    y = np.tile([1, -1], 20)
    arguments = {"domains": np.repeat(["a", "b"], 20)} | kwargs
    with pytest.raises(ValueError, match=message):
        HierarchicalMultiDomainRegression().fit(X, y, **arguments)


def test_single_class_and_multiclass_are_rejected() -> None:
    X = np.eye(6)
    with pytest.raises(ValueError, match="1 class"):
        HierarchicalMultiDomainRegression().fit(X, np.ones(6))
    with pytest.raises(ValueError, match="Only binary classification"):
        HierarchicalMultiDomainRegression().fit(X, np.arange(6) % 3)


@parametrize_with_checks([HierarchicalMultiDomainRegression()])
def test_sklearn_compatible(
    estimator: HierarchicalMultiDomainRegression, check: Callable[[HierarchicalMultiDomainRegression], None]
) -> None:
    check(estimator)
