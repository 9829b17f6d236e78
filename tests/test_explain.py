"""Tests of the lifts (bounded, in probability points, symmetric in A/B), their bootstrap, the chart."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from tools.explain import (
    GlobalLift,
    bootstrap_global_lift,
    first_preferred,
    global_lift,
    local_lift,
    plot_global_lift,
)
from tools.hmdr import HierarchicalMultiDomainRegression
from tools.planted import PlantedData, make_planted


@pytest.fixture(scope="module")
def planted() -> PlantedData:
    return make_planted(n_domains=3, n_concepts=21, n_shared=6, n_pairs_per_domain=150)


@pytest.fixture(scope="module")
def model(planted: PlantedData) -> HierarchicalMultiDomainRegression:
    return HierarchicalMultiDomainRegression(lambda_shared=0.01, lambda_domain=0.02).fit(
        planted.X, planted.y, planted.domains, planted.shared_mask, planted.domain_masks
    )


def test_global_lift_is_the_mean_probability_change_over_the_domains_pairs(
    model: HierarchicalMultiDomainRegression, planted: PlantedData
) -> None:
    lift = global_lift(model, planted.X, planted.domains, planted.concept_names)
    assert [entry.domain for entry in lift.domains] == planted.domain_names
    d = 2
    rows = planted.domains == planted.domain_names[d]
    margin = model.decision_function(planted.X[rows], planted.domains[rows])
    weights = model.coef_shared_ + model.coef_domain_[d]
    for entry in lift.domains[d].concepts:
        j = planted.concept_names.index(entry.concept)
        # Written out with the logistic function: both responses, one unit in their favour.
        expected = 100 * np.mean((expit(margin + weights[j]) - expit(margin - weights[j])) / 2)
        shared = 100 * np.mean((expit(margin + model.coef_shared_[j]) - expit(margin - model.coef_shared_[j])) / 2)
        assert entry.lift == pytest.approx(expected, abs=1e-9)
        assert entry.shared == pytest.approx(shared, abs=1e-9)
        assert entry.specific == pytest.approx(entry.lift - entry.shared)
        assert entry.paper_lift == pytest.approx(50 * weights[j])
        assert -50 < entry.lift < 50
    listed = {c.concept for c in lift.domains[d].concepts}
    varies = np.any(planted.X[rows] != 0, axis=0)
    # Drivers: a weight in the domain, and a difference on some of its pairs.
    assert listed == {planted.concept_names[j] for j in np.flatnonzero((weights != 0) & varies)}
    sizes = [abs(c.lift) for c in lift.domains[d].concepts]
    assert sizes == sorted(sizes, reverse=True)


def test_lifts_stay_bounded_for_huge_weights() -> None:
    model = HierarchicalMultiDomainRegression().fit(np.eye(2), [0, 1], ["a", "b"])
    model.coef_shared_ = np.array([40.0, -40.0])  # 50 * b would print +2000% and -2000%
    model.coef_domain_ = np.zeros((2, 2))
    # Both concepts differ on each pair and cancel out: the margin is 0, where a unit moves P the most.
    lift = global_lift(model, np.ones((2, 2)), np.array(["a", "b"]), ["up", "down"])
    values = {c.concept: c.lift for c in lift.domains[0].concepts}
    assert values["up"] == pytest.approx(50.0) and values["down"] == pytest.approx(-50.0)


def test_global_lift_is_the_same_with_a_and_b_swapped(
    model: HierarchicalMultiDomainRegression, planted: PlantedData
) -> None:
    stored = global_lift(model, planted.X, planted.domains, planted.concept_names)
    swapped = global_lift(model, -planted.X, planted.domains, planted.concept_names)
    assert stored == swapped  # exactly, not approximately


def test_local_lift_hand_checked_case() -> None:
    model = HierarchicalMultiDomainRegression().fit(np.eye(2), [0, 1], ["a", "b"])
    # Hand-set weights: b = (ln 3, 0), s(a) = (0, ln 3), s(b) = 0.
    model.coef_shared_ = np.array([math.log(3), 0.0])
    model.coef_domain_ = np.array([[0.0, math.log(3)], [0.0, 0.0]])
    X = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, -1.0]])
    lift = local_lift(model, X, ["a", "unseen", "a"])
    # Row 0: no difference, no lift. Row 1: unseen domain, b only: margin ln 3, P(A) = 3/4; without
    # concept 0 it is 1/2 (+25 pp); concept 1 has no shared weight. Row 2: margin 0, P(A) = 1/2;
    # without concept 0 the margin is -ln 3 (P = 1/4): +25 pp; without concept 1, +ln 3: -25 pp.
    np.testing.assert_allclose(lift, [[0.0, 0.0], [25.0, 0.0], [25.0, -25.0]], atol=1e-12)


def test_local_lift_matches_its_definition(model: HierarchicalMultiDomainRegression, planted: PlantedData) -> None:
    X, domains = planted.X[:5], planted.domains[:5]
    lift = local_lift(model, X, domains)
    base = model.predict_proba(X, domains)[:, 1]
    for j in (0, 7, 20):
        without = X.copy()
        without[:, j] = 0.0
        expected = 100 * (base - model.predict_proba(without, domains)[:, 1])
        np.testing.assert_allclose(lift[:, j], expected, atol=1e-10)


def test_swapping_a_and_b_gives_the_same_explanation_exactly(
    model: HierarchicalMultiDomainRegression, planted: PlantedData
) -> None:
    """The swap test: x -> -x. Each response keeps its lift (A's becomes B's), to the last bit."""
    X, domains = planted.X, planted.domains
    stored, swapped = local_lift(model, X, domains), local_lift(model, -X, domains)
    assert np.array_equal(swapped, -stored)
    margin = model.decision_function(X, domains)
    assert np.array_equal(first_preferred(-model.decision_function(-X, domains)), first_preferred(margin))


def test_bootstrap_intervals_are_seeded_and_bracket_strong_lifts(
    model: HierarchicalMultiDomainRegression, planted: PlantedData
) -> None:
    arguments = (
        model,
        planted.X,
        planted.y,
        planted.domains,
        planted.concept_names,
        planted.shared_mask,
        planted.domain_masks,
    )
    lift = bootstrap_global_lift(*arguments, n_bootstrap=30, random_state=4)
    assert lift == bootstrap_global_lift(*arguments, n_bootstrap=30, random_state=4)
    assert lift.n_bootstrap == 30 and lift.confidence == 0.95
    point = global_lift(model, planted.X, planted.domains, planted.concept_names)
    for entry, reference in zip(lift.domains, point.domains, strict=True):
        assert [c.lift for c in entry.concepts] == [c.lift for c in reference.concepts]
        assert all(c.low <= c.high and 0 <= c.selected <= 1 for c in entry.concepts)
    strongest = lift.domains[0].concepts[0]
    assert strongest.low < strongest.lift < strongest.high and strongest.low * strongest.high > 0
    assert strongest.selected == 1.0 and not strongest.unstable


def test_bootstrap_resamples_whole_query_groups(model: HierarchicalMultiDomainRegression, planted: PlantedData) -> None:
    """Pairs of one query are not independent: resampling them together widens the intervals."""
    groups = np.arange(planted.y.size) // 10
    arguments = (model, planted.X, planted.y, planted.domains, planted.concept_names)
    alone = bootstrap_global_lift(*arguments, planted.shared_mask, planted.domain_masks, n_bootstrap=40)
    grouped = bootstrap_global_lift(
        *arguments, planted.shared_mask, planted.domain_masks, groups=groups, n_bootstrap=40
    )
    assert alone != grouped


def test_chart_is_written_with_a_title_and_survives_tiny_bootstraps(
    model: HierarchicalMultiDomainRegression, planted: PlantedData, tmp_path: Path
) -> None:
    lift = bootstrap_global_lift(
        model, planted.X, planted.y, planted.domains, planted.concept_names, n_bootstrap=2, random_state=1
    )
    path = plot_global_lift(lift, tmp_path / "lift.png", top_k=5, title="planted: 450 pairs")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    top = lift.top(5)
    assert all(len(entry.concepts) <= 5 for entry in top.domains)
    assert GlobalLift.model_validate_json(lift.model_dump_json()) == lift


def test_concept_names_must_match(model: HierarchicalMultiDomainRegression, planted: PlantedData) -> None:
    with pytest.raises(ValueError, match="got 2 concept names for 21 concepts"):
        global_lift(model, planted.X, planted.domains, ["a", "b"])
