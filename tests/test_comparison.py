"""Mechanism comparison: the agreement matrix and the largest weight differences per domain."""

import numpy as np
import pytest
from scipy.special import expit

from tools.annotation import Annotation, AnnotationConfig
from tools.comparison import agreement_matrix, concept_weights, weight_differences
from tools.concepts import Concept, ConceptValue
from tools.demo_data import DEMO_MECHANISMS, demo_pairs
from tools.errors import WhyprefError
from tools.pairs import Label, LabeledPair, Pair
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


def two_mechanisms(store, n_per_domain: int = 300, seed: int = 0) -> None:
    """Pairs whose labels two mechanisms draw from the same weights, except that ``second`` also rewards
    concept c3 strongly in domain d1 (and nowhere else); 40 of ``second``'s labels are ties."""
    rng = np.random.default_rng(seed)
    domains = np.repeat(["d0", "d1", "d2"], n_per_domain)
    X = rng.choice([-1.0, 0.0, 1.0], size=(domains.size, 5), p=[0.3, 0.4, 0.3])
    base = np.array([1.5, -1.0, 0.8, 0.0, 0.0])
    extra = np.where(domains == "d1", 2.0, 0.0)
    first = np.where(rng.random(domains.size) < expit(X @ base), "A", "B")
    second = np.where(rng.random(domains.size) < expit(X @ base + extra * X[:, 3]), "A", "B").astype(object)
    second[rng.choice(domains.size, 40, replace=False)] = "tie"
    items = [
        LabeledPair(
            pair=Pair(query=f"q{i}", response_a=f"a{i}", response_b=f"b{i}", domain=str(domains[i]), source="t"),
            labels=[Label(mechanism="first", verdict=first[i]), Label(mechanism="second", verdict=second[i])],
        )
        for i in range(domains.size)
    ]
    store.add_labeled_pairs(items)
    concepts = [Concept(name=f"c{j}") for j in range(5)]
    store.upsert_concepts(concepts)
    store.put_values(
        ConceptValue(pair_id=item.pair.id, concept_id=concepts[j].id, annotator="t", value=float(X[i, j]))
        for i, item in enumerate(items)
        for j in range(5)
        if X[i, j]
    )


def test_differences_use_the_same_pairs_and_penalties_and_only_report_what_the_interval_shows(store, monkeypatch):
    two_mechanisms(store)
    result = weight_differences(store, "first", "second", top_k=5, n_bootstrap=100)
    assert result.n_pairs == 900 - 40  # both fitted on the pairs neither tied
    assert set(result.params) == {"lambda_shared", "lambda_domain"}
    by_domain = {d.domain: d for d in result.domains}
    planted = next(c for c in by_domain["d1"].concepts if c.concept == "c3")
    assert planted.difference < -5 and planted.high < 0  # second rewards c3 in d1, first does not
    assert planted.difference == pytest.approx(planted.first - planted.second)
    for domain in ("d0", "d2"):
        assert "c3" not in {c.concept for c in by_domain[domain].concepts}
    assert all(c.low > 0 or c.high < 0 for d in result.domains for c in d.concepts)
    flagged = sum(len(d.concepts) for d in result.domains)
    assert flagged <= 3  # the planted one, and at most a couple of chance findings among 15 comparisons
    one = weight_differences(store, "first", "second", domains=["d1"], top_k=1, n_bootstrap=20)
    assert [d.domain for d in one.domains] == ["d1"] and len(one.domains[0].concepts) <= 1
    with monkeypatch.context() as patched:  # both are in the store now: asked again, read, not refitted
        patched.setattr("tools.comparison.shared_penalty_search", None)
        assert weight_differences(store, "first", "second", top_k=5, n_bootstrap=100) == result
        assert weight_differences(store, "first", "second", domains=["d1"], top_k=1, n_bootstrap=20) == one
    with pytest.raises(WhyprefError, match="no shared non-tie pairs in domain"):
        weight_differences(store, "first", "second", domains=["nowhere"], n_bootstrap=5)


def test_concept_weights_are_the_stored_models_effective_weights(demo):
    store, items = demo
    Annotation(store, None, AnnotationConfig(llm_concepts=False)).run([i.pair for i in items])
    fit_mechanism(store, "human", evaluate=False)
    weights = concept_weights(store, "human")
    _, human = load_model(store, "human")
    for k, domain in enumerate(human.domains_):
        np.testing.assert_allclose(weights.row(str(domain)), human.coef_shared_ + human.coef_domain_[k])
    np.testing.assert_allclose(weights.row("unseen"), human.coef_shared_)
