"""Tests of the grid, cross-validation, the protocols, tie accuracy and bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from tools.baselines import SpecificOnlyRegression
from tools.hmdr import HierarchicalMultiDomainRegression
from tools.model_selection import (
    bootstrap_ci,
    evaluate_in_domain,
    evaluate_out_of_domain,
    grid_search_cv,
    model_grid,
    paper_grid,
    resolve_model,
    tie_accuracy,
)
from tools.planted import PlantedData, make_planted


@pytest.fixture(scope="module")
def planted() -> PlantedData:
    return make_planted(n_domains=3, n_concepts=21, n_shared=6, n_pairs_per_domain=120, label_noise=0.1)


def args(data: PlantedData) -> tuple:
    return data.X, data.y, data.domains, data.shared_mask, data.domain_masks


def test_paper_grid_for_eight_domains() -> None:
    grid = paper_grid(8)
    pairs = {(point["lambda_shared"], point["lambda_domain"]) for point in grid}
    shared_values, domain_values = [1 / 64, 2 / 64, 1 / 16, 1 / 8], [1 / 64, 2 / 64, 1 / 16]
    assert pairs == {(s, d) for s in shared_values for d in domain_values if s >= d}
    assert len(grid) == 9 and all(point["alpha"] == 1 / 8 for point in grid)
    strength = [point["lambda_domain"] for point in grid]
    assert strength == sorted(strength, reverse=True)  # strongest first, for warm starts


@pytest.mark.parametrize(("name", "size"), [("hmdr", 9), ("dirty", 9), ("shared", 4), ("flat", 4), ("specific", 3)])
def test_model_grid_keeps_each_models_parameters(name: str, size: int) -> None:
    _, template = resolve_model(name)
    grid = model_grid(template, 8)
    assert len(grid) == size
    assert all(set(point) <= set(template.get_params()) for point in grid)


def test_grid_search_picks_best_mean_and_refits(planted: PlantedData) -> None:
    result = grid_search_cv("hmdr", *args(planted), n_splits=3)
    means = [row.mean_accuracy for row in result.table]
    assert len(result.table) == 9
    assert result.best_params == result.table[int(np.argmax(means))].params
    assert all(len(row.fold_accuracy) == 3 for row in result.table)
    direct = HierarchicalMultiDomainRegression(**result.best_params).fit(*args(planted))
    np.testing.assert_allclose(result.estimator.coef_domain_, direct.coef_domain_)
    np.testing.assert_allclose(result.estimator.coef_shared_, direct.coef_shared_)
    again = grid_search_cv("hmdr", *args(planted), n_splits=3)
    assert again.table == result.table


def test_grid_search_warm_path_scores_like_cold_fits(planted: PlantedData) -> None:
    grid, template = paper_grid(3)[:3], HierarchicalMultiDomainRegression(tol=1e-8)
    warm = grid_search_cv(template, *args(planted), param_grid=grid, n_splits=3)
    cold = [grid_search_cv(template, *args(planted), param_grid=[point], n_splits=3).table[0] for point in grid]
    # Same folds (same seed); solutions agree to the solver's tolerance, so the accuracies match.
    assert [row.fold_accuracy for row in warm.table] == [row.fold_accuracy for row in cold]


def test_tie_accuracy_counts_ties_as_half() -> None:
    assert tie_accuracy([1, -1, 0, 0, 1], [1, 1, 1, -1, -1]) == pytest.approx((1 + 0 + 0.5 + 0.5 + 0) / 5)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean() -> None:
    values = np.random.default_rng(3).normal(0.7, 0.05, size=25)
    first = bootstrap_ci(values, n_resamples=2000, random_state=1)
    assert first == bootstrap_ci(values, n_resamples=2000, random_state=1)
    assert first.low < values.mean() < first.high and first.estimate == pytest.approx(values.mean())
    wider = bootstrap_ci(values, confidence=0.99, n_resamples=2000, random_state=1)
    assert wider.low < first.low and wider.high > first.high
    assert bootstrap_ci([0.5, 0.5]).low == 0.5


def test_in_domain_protocol(planted: PlantedData) -> None:
    y = planted.y.copy()
    y[::10] = 0  # ties
    X, _, domains, shared, masks = args(planted)
    template = HierarchicalMultiDomainRegression(lambda_shared=0.03, lambda_domain=0.03)
    result = evaluate_in_domain(template, X, y, domains, shared, masks, tune=False, n_repeats=4)
    assert result == evaluate_in_domain(template, X, y, domains, shared, masks, tune=False, n_repeats=4)
    assert len(result.splits) == 4 and result.protocol == "in_domain"
    n_test = len(y) // 8
    assert all(split.n_test == n_test for split in result.splits)
    assert all(split.n_train < len(y) - n_test for split in result.splits)  # ties left out of training
    assert 0.55 < result.accuracy.estimate < 0.95  # learns something, and ties cap it
    assert result.accuracy.low <= result.accuracy.estimate <= result.accuracy.high
    assert set(result.per_domain) == set(planted.domain_names)


def test_in_domain_protocol_with_tuning_records_choices(planted: PlantedData) -> None:
    result = evaluate_in_domain("shared", *args(planted), n_repeats=2)
    grid = model_grid(resolve_model("shared")[1], 3)
    assert all(split.params in grid for split in result.splits)


def test_out_of_domain_protocol_predicts_held_out_domain_with_shared_weights(planted: PlantedData) -> None:
    template = HierarchicalMultiDomainRegression(lambda_shared=0.03, lambda_domain=0.03)
    result = evaluate_out_of_domain(template, *args(planted), tune=False)
    assert [split.held_out_domain for split in result.splits] == planted.domain_names
    held_out = planted.domain_names[1]
    train, test = planted.domains != held_out, planted.domains == held_out
    masks = {d: m for d, m in planted.domain_masks.items() if d != held_out}
    model = HierarchicalMultiDomainRegression(lambda_shared=0.03, lambda_domain=0.03).fit(
        planted.X[train], planted.y[train], planted.domains[train], planted.shared_mask, masks
    )
    expected = np.mean(np.where(planted.X[test] @ model.coef_shared_ > 0, 1, -1) == planted.y[test])
    assert result.per_domain[held_out] == pytest.approx(expected)


def test_out_of_domain_with_tuning_runs_every_seed(planted: PlantedData) -> None:
    result = evaluate_out_of_domain("hmdr", *args(planted), n_seeds=2)
    assert len(result.splits) == 2 * len(planted.domain_names)


def test_specific_only_cannot_be_evaluated_out_of_domain(planted: PlantedData) -> None:
    with pytest.raises(ValueError, match="cannot predict out of domain"):
        evaluate_out_of_domain(SpecificOnlyRegression(), *args(planted), tune=False)


def test_unknown_model_name_is_named() -> None:
    with pytest.raises(ValueError, match="unknown model 'lasso'"):
        resolve_model("lasso")
