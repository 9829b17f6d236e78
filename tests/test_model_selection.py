"""Tests of the penalty grid, grouped folds, CV, the protocols, non-tie accuracy and the length baselines."""

from __future__ import annotations

import numpy as np
import pytest

from tools.baselines import SpecificOnlyRegression
from tools.hmdr import HierarchicalMultiDomainRegression
from tools.model_names import LENGTH_LR, LONGER
from tools.model_selection import (
    DOMAIN_RATIOS,
    SHARED_RATIOS,
    EvaluationData,
    cv_folds,
    evaluate_in_domain,
    evaluate_out_of_domain,
    grid_search_cv,
    grouped_folds,
    penalty_grid,
    penalty_scales,
    resolve_model,
    row_scores,
    shared_penalty_search,
)
from tools.planted import PlantedData, make_planted


@pytest.fixture(scope="module")
def planted() -> PlantedData:
    return make_planted(n_domains=3, n_concepts=21, n_shared=6, n_pairs_per_domain=120, label_noise=0.1)


def args(data: PlantedData) -> tuple:
    return data.X, data.y, data.domains, data.shared_mask, data.domain_masks


def lengths_for(data: PlantedData, share: float, seed: int = 0) -> np.ndarray:
    """Response lengths where the longer response wins a ``share`` of the pairs."""
    rng = np.random.default_rng(seed)
    short, long = rng.integers(50, 400, data.y.size), rng.integers(400, 900, data.y.size)
    a_longer = np.where(rng.random(data.y.size) < share, data.y > 0, data.y < 0)
    return np.column_stack([np.where(a_longer, long, short), np.where(a_longer, short, long)]).astype(float)


def accuracy(margin: np.ndarray, y: np.ndarray) -> float:
    """Percent correct, written out: a zero margin is a coin (0.5)."""
    return 100 * float(np.mean(np.where(margin == 0, 0.5, np.sign(margin) == y)))


def test_penalty_scales_are_the_smallest_penalties_that_zero_everything(planted: PlantedData) -> None:
    template = HierarchicalMultiDomainRegression(tol=1e-8)
    shared, domain = penalty_scales(template, *args(planted))
    at_max = template.set_params(lambda_shared=shared, lambda_domain=domain).fit(*args(planted))
    assert not at_max.coef_shared_.any() and not at_max.coef_domain_.any()
    below_shared = HierarchicalMultiDomainRegression(lambda_shared=0.9 * shared, lambda_domain=domain).fit(
        *args(planted)
    )
    assert below_shared.coef_shared_.any()
    below_domain = HierarchicalMultiDomainRegression(lambda_shared=10 * shared, lambda_domain=0.9 * domain).fit(
        *args(planted)
    )
    assert below_domain.coef_domain_.any()


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("hmdr", len(SHARED_RATIOS) * len(DOMAIN_RATIOS)),
        ("dirty", len(SHARED_RATIOS) * len(DOMAIN_RATIOS)),
        ("shared", len(SHARED_RATIOS)),
        ("flat", len(SHARED_RATIOS)),
        ("specific", len(SHARED_RATIOS)),
    ],
)
def test_grid_keeps_each_models_parameters_strongest_first(planted: PlantedData, name: str, size: int) -> None:
    _, template = resolve_model(name)
    grid = penalty_grid(template, *args(planted))
    assert len(grid) == size and len({tuple(sorted(p.items())) for p in grid}) == size
    assert all(set(point) <= set(template.get_params()) for point in grid)
    key = "lambda_domain" if name == "specific" else "lambda_shared"
    assert grid[0][key] == max(point[key] for point in grid)  # warm starts run from strong to weak


def test_penalty_grid_does_not_shrink_with_the_number_of_domains() -> None:
    """The paper's grid is 1/|D|^2 .. 1/|D|: with 50 domains every penalty is tiny. This one follows the data."""
    few = make_planted(n_domains=4, n_concepts=24, n_shared=8, n_pairs_per_domain=250, random_state=1)
    many = make_planted(n_domains=50, n_concepts=108, n_shared=8, n_pairs_per_domain=20, random_state=1)
    scale_few = penalty_scales(HierarchicalMultiDomainRegression(), *args(few))[0]
    scale_many = penalty_scales(HierarchicalMultiDomainRegression(), *args(many))[0]
    assert 0.3 < scale_many / scale_few < 3  # same total pairs, similar signal: similar penalties


def test_grouped_folds_never_split_a_group_and_balance_strata() -> None:
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(120), rng.integers(1, 6, 120))
    strata = (groups % 4).astype(str)
    folds = grouped_folds(strata, groups, 5, random_state=7)
    again = grouped_folds(strata, groups, 5, random_state=7)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    tested = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(tested), np.arange(groups.size))  # every row tested exactly once
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
    for stratum in np.unique(strata):
        counts = [np.sum(strata[test] == stratum) for _, test in folds]
        assert max(counts) - min(counts) <= 5  # within one group's size
    other = grouped_folds(strata, groups, 5, random_state=8)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(folds, other, strict=True))


def test_grid_search_picks_lowest_log_loss_and_refits(planted: PlantedData) -> None:
    result = grid_search_cv("hmdr", *args(planted), n_splits=3)
    losses = [row.log_loss for row in result.table]
    assert result.best_params == result.table[int(np.argmin(losses))].params
    direct = HierarchicalMultiDomainRegression(**result.best_params).fit(*args(planted))
    np.testing.assert_allclose(result.estimator.coef_domain_, direct.coef_domain_)
    np.testing.assert_allclose(result.estimator.coef_shared_, direct.coef_shared_)
    assert grid_search_cv("hmdr", *args(planted), n_splits=3).table == result.table


def test_fit_path_equals_separate_fits(planted: PlantedData) -> None:
    template = HierarchicalMultiDomainRegression(tol=1e-9)
    grid = penalty_grid(template, *args(planted))[:6]
    path = template.fit_path(*args(planted), params=grid)
    assert not hasattr(template, "coef_shared_")  # the template itself stays unfitted
    for point, fitted in zip(grid, path, strict=True):
        alone = HierarchicalMultiDomainRegression(tol=1e-9, **point).fit(*args(planted))
        np.testing.assert_allclose(fitted.coef_shared_, alone.coef_shared_, atol=1e-7)
        np.testing.assert_allclose(fitted.coef_domain_, alone.coef_domain_, atol=1e-7)


def test_row_scores_count_predicted_ties_half_and_leave_reference_ties_out() -> None:
    scores = row_scores(np.array([1, -1, 1, 0, -1]), np.array([2.0, 0.5, 0.0, 3.0, -1.0]))
    np.testing.assert_array_equal(scores[[0, 1, 2, 4]], [1.0, 0.0, 0.5, 1.0])
    assert np.isnan(scores[3])


def test_in_domain_protocol_scores_non_tie_pairs_beside_length(planted: PlantedData) -> None:
    y = planted.y.copy()
    y[::10] = 0  # ties
    lengths = lengths_for(planted, share=0.5)
    data = EvaluationData(planted.X, y, planted.domains, planted.shared_mask, planted.domain_masks, lengths=lengths)
    result = evaluate_in_domain(["hmdr"], data, n_splits=4)
    assert result == evaluate_in_domain(["hmdr"], data, n_splits=4)
    assert [r.model for r in result.rows] == ["hmdr", LONGER, LENGTH_LR]
    hmdr, longer = result.row("hmdr"), result.row(LONGER)
    assert hmdr.n_pairs == np.sum(y != 0) and hmdr.n_ties == np.sum(y == 0)
    # "Longer wins" needs no training: its held-out accuracy is its accuracy on every non-tie pair.
    expected = np.mean(np.sign(lengths[y != 0, 0] - lengths[y != 0, 1]) == y[y != 0])
    assert longer.non_tie_accuracy == pytest.approx(100 * expected)
    tie_inclusive = (expected * np.sum(y != 0) + 0.5 * np.sum(y == 0)) / y.size
    assert longer.accuracy_with_ties == pytest.approx(100 * tie_inclusive)
    # The planted set's Bayes accuracy is 71%; lengths here say nothing (50%).
    assert 58 < hmdr.non_tie_accuracy < 75 and hmdr.low < hmdr.non_tie_accuracy < hmdr.high
    gap = next(d for d in result.differences if d.model == "hmdr" and d.baseline == LONGER)
    assert gap.difference == pytest.approx(hmdr.non_tie_accuracy - longer.non_tie_accuracy)
    assert gap.low < gap.difference < gap.high
    # The planted concepts explain far more than the lengths do.
    assert hmdr.explains_more_than_length == "yes" and "explains more than length: yes" in result.verdict("hmdr")
    assert set(hmdr.per_domain) == set(planted.domain_names)


def test_grouped_splits_stop_a_model_from_memorising_queries() -> None:
    """Pairs of one query share its concept fingerprint and its verdict: a random split leaks the answer."""
    rng = np.random.default_rng(0)
    n_queries, per_query, n_concepts = 60, 8, 30
    fingerprint = rng.choice([-1.0, 0.0, 1.0], size=(n_queries, n_concepts))
    verdict = rng.choice([-1, 1], size=n_queries)
    query = np.repeat(np.arange(n_queries), per_query)
    signs = rng.choice([-1, 1], size=query.size)  # which response is shown first
    X, y = fingerprint[query] * signs[:, None], verdict[query] * signs
    domains = np.where(query % 2 == 0, "even", "odd")
    template = HierarchicalMultiDomainRegression(lambda_shared=1e-4, lambda_domain=1e-4)
    leaky = evaluate_in_domain([template], EvaluationData(X, y, domains), tune=False)
    grouped = evaluate_in_domain([template], EvaluationData(X, y, domains, groups=query), tune=False)
    assert leaky.rows[0].non_tie_accuracy > 75
    assert grouped.rows[0].non_tie_accuracy < 65
    assert grouped.splits.startswith("grouped by query") and leaky.splits == "random pairs"


def test_out_of_domain_protocol_predicts_held_out_domain_with_shared_weights(planted: PlantedData) -> None:
    template = HierarchicalMultiDomainRegression(lambda_shared=0.01, lambda_domain=0.01)
    data = EvaluationData(planted.X, planted.y, planted.domains, planted.shared_mask, planted.domain_masks)
    result = evaluate_out_of_domain([template], data, tune=False)
    held_out = planted.domain_names[1]
    train, test = planted.domains != held_out, planted.domains == held_out
    masks = {d: m for d, m in planted.domain_masks.items() if d != held_out}
    model = HierarchicalMultiDomainRegression(lambda_shared=0.01, lambda_domain=0.01).fit(
        planted.X[train], planted.y[train], planted.domains[train], planted.shared_mask, masks
    )
    assert result.rows[0].per_domain[held_out] == pytest.approx(
        accuracy(planted.X[test] @ model.coef_shared_, planted.y[test])
    )


def test_out_of_domain_leaves_out_query_groups_that_reach_the_held_out_domain(planted: PlantedData) -> None:
    groups = np.arange(planted.y.size)
    first, second = np.flatnonzero(planted.domains == "domain0")[0], np.flatnonzero(planted.domains == "domain1")
    groups[second[:30]] = groups[first]  # 30 pairs of domain1 share a query with a pair of domain0
    template = HierarchicalMultiDomainRegression(lambda_shared=0.01, lambda_domain=0.01)
    data = EvaluationData(planted.X, planted.y, planted.domains, planted.shared_mask, planted.domain_masks, groups)
    with_groups = evaluate_out_of_domain([template], data, tune=False)
    train = (planted.domains != "domain0") & ~np.isin(groups, groups[planted.domains == "domain0"])
    test = planted.domains == "domain0"
    masks = {d: m for d, m in planted.domain_masks.items() if d != "domain0"}
    model = HierarchicalMultiDomainRegression(lambda_shared=0.01, lambda_domain=0.01).fit(
        planted.X[train], planted.y[train], planted.domains[train], planted.shared_mask, masks
    )
    expected = accuracy(planted.X[test] @ model.coef_shared_, planted.y[test])
    assert with_groups.rows[0].per_domain["domain0"] == pytest.approx(expected)


def test_specific_only_cannot_be_evaluated_out_of_domain(planted: PlantedData) -> None:
    data = EvaluationData(planted.X, planted.y, planted.domains, planted.shared_mask, planted.domain_masks)
    with pytest.raises(ValueError, match="cannot predict out of domain"):
        evaluate_out_of_domain([SpecificOnlyRegression()], data, tune=False)


def test_shared_penalty_search_fits_both_label_sets_at_one_configuration(planted: PlantedData) -> None:
    flipped = np.where(np.random.default_rng(2).random(planted.y.size) < 0.2, -planted.y, planted.y)
    params, (first, second) = shared_penalty_search(
        "hmdr", planted.X, [planted.y, flipped], planted.domains, planted.shared_mask, planted.domain_masks
    )
    for fitted, y in ((first, planted.y), (second, flipped)):
        assert fitted.get_params()["lambda_shared"] == params["lambda_shared"]
        direct = HierarchicalMultiDomainRegression(**params).fit(
            planted.X, y, planted.domains, planted.shared_mask, planted.domain_masks
        )
        np.testing.assert_allclose(fitted.coef_shared_, direct.coef_shared_)


def test_cv_folds_cap_the_number_of_folds_on_tiny_sets() -> None:
    domains, y = np.array(["a"] * 3), np.array([1, -1, 1])
    assert len(cv_folds(domains, y, np.array([0, 1, 2]), 5, 0)) == 3
    with pytest.raises(ValueError, match="too few query groups"):
        cv_folds(domains, y, np.zeros(3, dtype=int), 5, 0)


def test_unknown_model_name_is_named() -> None:
    with pytest.raises(ValueError, match="unknown model 'lasso'"):
        resolve_model("lasso")
