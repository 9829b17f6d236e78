"""Mechanism comparison: the agreement matrix and the largest weight differences per domain."""

import numpy as np
import pytest

from tools.annotation import Annotation, AnnotationConfig
from tools.comparison import agreement_matrix, concept_weights, weight_differences
from tools.demo_data import DEMO_MECHANISMS, demo_pairs
from tools.errors import WhyprefError
from tools.pairs import Label, LabeledPair
from tools.stats import store_stats
from tools.workflows import fit_mechanism, load_model


@pytest.fixture
def demo(store):
    items = demo_pairs(8)
    store.add_labeled_pairs(items, DEMO_MECHANISMS)
    # A third mechanism on half the pairs: always A.
    store.add_labeled_pairs(
        [LabeledPair(pair=i.pair, labels=[Label(mechanism="always-a", verdict="A")]) for i in items[::2]]
    )
    return store, items


def test_agreement_matrix_both_ways(demo):
    store, items = demo
    matrix = agreement_matrix(store)
    assert matrix.mechanisms == ["always-a", "human", "judge-verbose"]
    assert len(matrix.cells) == 6  # every ordered pair shares pairs
    human = {i.pair.id: next(lab for lab in i.labels if lab.mechanism == "human").verdict.value for i in items}
    half = [i.pair.id for i in items[::2]]
    decided = [p for p in half if human[p] != "tie"]
    # always-a against humans: 1 where humans chose A, 0 otherwise (humans never tie on the demo set)
    assert matrix.accuracy("human", "always-a") == pytest.approx(np.mean([human[p] == "A" for p in decided]))
    # humans against always-a (never a tie): the same pairs, the same credit
    cell = next(c for c in matrix.cells if c.reference == "always-a" and c.mechanism == "human")
    assert cell.shared_pairs == len(half)
    stats = store_stats(store)
    reported = next(a for a in stats.agreement if {a.reference, a.mechanism} == {"human", "judge-verbose"})
    assert matrix.accuracy(reported.reference, reported.mechanism) == reported.accuracy
    judge_as_reference = next(c for c in matrix.cells if c.reference == "judge-verbose" and c.mechanism == "human")
    assert judge_as_reference.scored_pairs < len(items)  # the judge's ties are left out when it is the reference
    only = agreement_matrix(store, mechanisms=["human", "always-a"], domain="coding")
    assert {(c.reference, c.mechanism) for c in only.cells} == {("human", "always-a"), ("always-a", "human")}
    assert all(c.domain == "coding" for c in only.cells)
    with pytest.raises(WhyprefError, match="no labels of gpt-9"):
        agreement_matrix(store, mechanisms=["human", "gpt-9"])


def test_weight_differences_are_aligned_effective_weights(demo):
    store, items = demo
    Annotation(store, None, AnnotationConfig(llm_concepts=False)).run([i.pair for i in items])
    fit_mechanism(store, "human")
    fit_mechanism(store, "judge-verbose")
    result = weight_differences(store, "human", "judge-verbose", top_k=3)
    assert [d.domain for d in result.domains] == ["coding", "cooking", "health"]
    _, human = load_model(store, "human")
    _, judge = load_model(store, "judge-verbose")
    ids = [c.id for c in concept_weights(store, "human").concepts]
    for entry in result.domains:
        k = list(human.domains_).index(entry.domain)
        effective_h = human.coef_shared_ + human.coef_domain_[k]
        effective_j = judge.coef_shared_ + judge.coef_domain_[list(judge.domains_).index(entry.domain)]
        diffs = 50 * (effective_h - effective_j)
        assert len(entry.concepts) == min(3, int(np.sum(diffs != 0)))
        assert [abs(c.difference) for c in entry.concepts] == sorted(np.abs(diffs)[np.abs(diffs) > 0])[::-1][:3]
        for c in entry.concepts:
            j = ids.index(c.concept_id)
            assert c.first == pytest.approx(50 * effective_h[j]) and c.second == pytest.approx(50 * effective_j[j])
            assert c.difference == pytest.approx(c.first - c.second)
    one = weight_differences(store, "human", "judge-verbose", domains=["health"], top_k=1)
    assert [d.domain for d in one.domains] == ["health"] and len(one.domains[0].concepts) == 1
    with pytest.raises(WhyprefError, match="have no domain nowhere to compare"):
        weight_differences(store, "human", "judge-verbose", domains=["nowhere"])
