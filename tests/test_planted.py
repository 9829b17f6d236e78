"""Tests of the planted data generator."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from tools.planted import make_planted


def test_seeded_and_deterministic() -> None:
    first, second = make_planted(random_state=5), make_planted(random_state=5)
    np.testing.assert_array_equal(first.X, second.X)
    np.testing.assert_array_equal(first.y, second.y)
    np.testing.assert_array_equal(first.coef_domain, second.coef_domain)
    assert not np.array_equal(first.X, make_planted(random_state=6).X)


def test_structure_like_comp_rep() -> None:
    data = make_planted(n_domains=4, n_concepts=30, n_shared=6, n_pairs_per_domain=500, density=0.3)
    assert data.X.shape == (2000, 30) and set(np.unique(data.X)) == {-1.0, 0.0, 1.0}
    assert set(np.unique(data.y)) == {-1, 1}
    assert data.shared_mask.sum() == 6 and len(data.concept_names) == 30
    for d, name in enumerate(data.domain_names):
        rows, mask = data.domains == name, data.domain_masks[name]
        assert rows.sum() == 500
        assert np.all(data.X[rows][:, ~mask] == 0)  # other domains' concepts are irrelevant: 0
        assert np.mean(data.X[rows][:, mask] != 0) == pytest.approx(0.3, abs=0.03)
        assert np.all(data.coef_domain[d, ~mask] == 0)
        assert np.count_nonzero(data.coef_domain[d, mask & ~data.shared_mask]) == round(0.5 * 6)
    assert np.all(data.coef_shared[~data.shared_mask] == 0)
    assert np.count_nonzero(data.coef_shared) == round(0.6 * 6)
    nonzero = np.abs(data.coef_domain[data.coef_domain != 0])
    assert nonzero.min() >= 0.5 and nonzero.max() <= 1.5


def test_bayes_probabilities_include_label_noise() -> None:
    data = make_planted(label_noise=0.2, n_pairs_per_domain=1000)
    domain_index = np.searchsorted(data.domain_names, data.domains)
    margin = np.einsum("ij,ij->i", data.X, data.coef_shared + data.coef_domain[domain_index])
    np.testing.assert_allclose(data.proba, 0.8 * expit(margin) + 0.2 * expit(-margin))
    assert np.mean(data.y == 1) == pytest.approx(data.proba.mean(), abs=0.02)
    bayes_accuracy = np.mean(np.where(data.proba > 0.5, 1, -1) == data.y)
    assert bayes_accuracy == pytest.approx(np.mean(np.maximum(data.proba, 1 - data.proba)), abs=0.02)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_shared": 60}, "n_shared < n_concepts"),
        ({"n_concepts": 12}, "one specific concept per domain"),
        ({"label_noise": 0.5}, "label_noise"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_planted(**kwargs)
