"""Tests of the lifts, their bootstrap intervals, the chart and the JSON."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tools.explain import GlobalLift, bootstrap_global_lift, global_lift, local_lift, plot_global_lift
from tools.hmdr import HierarchicalMultiDomainRegression
from tools.planted import PlantedData, make_planted


@pytest.fixture(scope="module")
def planted() -> PlantedData:
    return make_planted(n_domains=3, n_concepts=21, n_shared=6, n_pairs_per_domain=150)


@pytest.fixture(scope="module")
def model(planted: PlantedData) -> HierarchicalMultiDomainRegression:
    return HierarchicalMultiDomainRegression(lambda_shared=0.02, lambda_domain=0.02).fit(
        planted.X, planted.y, planted.domains, planted.shared_mask, planted.domain_masks
    )


def test_global_lift_is_fifty_times_the_weights(model: HierarchicalMultiDomainRegression, planted: PlantedData) -> None:
    lift = global_lift(model, planted.concept_names)
    assert [entry.domain for entry in lift.domains] == planted.domain_names
    entry = lift.domains[2].concepts[4]
    assert entry.concept == planted.concept_names[4]
    assert entry.shared == 50 * model.coef_shared_[4]
    assert entry.domain == 50 * model.coef_domain_[2, 4]
    assert entry.total == pytest.approx(entry.shared + entry.domain)
    assert entry.low is None and entry.high is None


def test_local_lift_hand_checked_case() -> None:
    model = HierarchicalMultiDomainRegression().fit(np.eye(2), [0, 1], ["a", "b"])
    # Hand-set weights: b = (ln 3, 0), s(a) = (0, ln 3), s(b) = 0.
    model.coef_shared_ = np.array([math.log(3), 0.0])
    model.coef_domain_ = np.array([[0.0, math.log(3)], [0.0, 0.0]])
    X = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    lift = local_lift(model, X, ["a", "unseen", "a"])
    # Row 0: p(x) = 1/2, p(x + e_j) = sigmoid(ln 3) = 3/4  ->  +50 % for both concepts of domain a.
    # Row 1: unseen domain, shared weights only: +50 % for concept 0, 0 % for concept 1.
    # Row 2: p(x) = 3/4; p(x + e_0) = sigmoid(2 ln 3) = 9/10  ->  100 * (9/10 - 3/4) / (3/4) = 20 %.
    np.testing.assert_allclose(lift, [[50.0, 50.0], [50.0, 0.0], [20.0, 20.0]])


def test_local_lift_matches_probability_definition(
    model: HierarchicalMultiDomainRegression, planted: PlantedData
) -> None:
    X, domains = planted.X[:5], planted.domains[:5]
    lift = local_lift(model, X, domains)
    base = model.predict_proba(X, domains)[:, 1]
    for j in (0, 7, 20):
        moved = X.copy()
        moved[:, j] += 1.0
        expected = 100 * (model.predict_proba(moved, domains)[:, 1] - base) / base
        np.testing.assert_allclose(lift[:, j], expected)


def test_bootstrap_intervals_are_seeded_and_bracket_strong_weights(
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
    lift = bootstrap_global_lift(*arguments, n_bootstrap=20, random_state=4)
    assert lift == bootstrap_global_lift(*arguments, n_bootstrap=20, random_state=4)
    assert lift.n_bootstrap == 20 and lift.confidence == 0.95
    point = global_lift(model, planted.concept_names)
    for entry, reference in zip(lift.domains, point.domains, strict=True):
        assert [c.total for c in entry.concepts] == [c.total for c in reference.concepts]
        assert all(c.low <= c.high for c in entry.concepts)
    strongest = max(lift.domains[0].concepts, key=lambda c: abs(c.total))
    assert strongest.low < strongest.total < strongest.high and strongest.low * strongest.high > 0


def test_chart_is_written_and_json_round_trips(
    model: HierarchicalMultiDomainRegression, planted: PlantedData, tmp_path: Path
) -> None:
    lift = global_lift(model, planted.concept_names)
    path = plot_global_lift(lift, tmp_path / "lift.png", top_k=5)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    top = lift.top(5)
    assert all(len(entry.concepts) == 5 for entry in top.domains)
    sizes = [abs(c.total) for c in top.domains[0].concepts]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] == max(abs(c.total) for c in lift.domains[0].concepts)
    assert GlobalLift.model_validate_json(lift.model_dump_json()) == lift


def test_concept_names_must_match(model: HierarchicalMultiDomainRegression) -> None:
    with pytest.raises(ValueError, match="got 2 concept names for 21 concepts"):
        global_lift(model, ["a", "b"])
