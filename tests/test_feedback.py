"""The regression's feedback (tools.feedback), proposing from given pairs (tools.discovery), and the
store's run usage and concept decisions."""

import re

import numpy as np

from helpers import PlantedOracle
from tools.concepts import Concept, ConceptValue, concept_id
from tools.design import load_design, store_planted
from tools.discovery import Candidate, Discovery, DiscoveryConfig
from tools.feedback import (
    Change,
    ConceptSetScore,
    PruningRules,
    allocate_batches,
    concept_set_design,
    near_duplicates,
    plan_pruning,
    score_concept_set,
    swap_failure_rates,
)
from tools.llm import LLM
from tools.planted import make_planted
from tools.store import ConceptDecision, ConceptStore
from tools.testing import ScriptedChat

DATA = make_planted(
    n_domains=4,
    n_concepts=12,
    n_shared=4,
    n_pairs_per_domain=100,
    shared_active=0.5,
    density=0.5,
    weight_range=(1.5, 2.5),
    random_state=3,
)


def split(ids: list[str]) -> tuple[set[str], set[str]]:
    test = set(ids[::4])
    return set(ids) - test, test


def test_score_gives_held_out_accuracy_errors_and_fold_support(store):
    store_planted(store, DATA, mechanism="m")
    design = load_design(store, "m")
    train, test = split(design.pair_ids)
    score = score_concept_set(design, train, test)
    ids = [concept_id(name) for name in DATA.concept_names]
    weighted = {ids[j] for j in np.flatnonzero(DATA.coef_shared)}
    idle = {c for j, c in enumerate(ids) if not DATA.coef_shared[j] and not DATA.coef_domain[:, j].any()}
    assert min(score.support[c] for c in weighted) >= 0.8  # true weights survive (nearly) every fold
    assert np.mean([score.support[c] for c in idle]) < 0.5
    assert 0.6 < score.in_domain <= 1 and score.ood is not None and set(score.per_domain) == set(DATA.domain_names)
    bank = [p for ids in score.errors.values() for p in ids]
    assert bank and set(bank) <= train and len(bank) < len(train) / 2
    noise = concept_set_design(store, "m", [c for c in design.concept_ids if c in idle], set(design.pair_ids))
    worse = score_concept_set(noise, train, test)
    assert worse.in_domain < score.in_domain and score.gain_over(worse) > 0.05
    assert score.no_worse_than(worse) and not worse.no_worse_than(score)
    assert worse.no_worse_than(score, tolerance=1.0)


def test_chance_score_counts_every_training_pair_as_an_error():
    domains = {"a": "x", "b": "y", "c": "y", "d": "x"}
    chance = ConceptSetScore.chance(domains, ["a", "b", "c"], ["d"])
    assert chance.errors == {"x": ["a"], "y": ["b", "c"]} and chance.in_domain == 0.5 and chance.ood is None


def test_swap_failures_read_both_orders(store):
    store_planted(store, DATA, mechanism="m")
    pairs = [p.id for p in store.pairs()][:4]
    store.upsert_concepts([Concept(name="Flips"), Concept(name="Steady")])
    details = [{"ab": 1, "ba": -1}, {"ab": 1, "ba": 1}, {"ab": 0, "ba": 0}, {"ab": -1, "ba": 0}]
    store.put_values(
        [
            ConceptValue(pair_id=p, concept_id=c, annotator="comp:x", value=0.0, detail=d)
            for p, d in zip(pairs, details, strict=True)
            for c in ("flips", "steady")
        ]
    )
    rates = swap_failure_rates(store, ["flips", "shared0"], set(pairs[:3]))
    assert rates == {"flips": 0.5, "shared0": None}  # 2 decided on the first 3 pairs, 1 flipped; planted: no orders
    assert swap_failure_rates(store, ["steady"], set(pairs))["steady"] == 2 / 3


def test_near_duplicates_and_pruning_plan():
    rng = np.random.default_rng(0)
    a = rng.choice([-1.0, 0.0, 1.0], size=200)
    X = np.column_stack([a, -a, rng.choice([-1.0, 1.0], size=200), np.zeros(200)])
    ids = ["a", "minus-a", "other", "constant"]
    duplicates = near_duplicates(X, ids, 0.95)
    assert [(first, second) for first, second, _ in duplicates] == [("a", "minus-a")]
    score = ConceptSetScore(
        concept_ids=ids,
        params={},
        cv_accuracy=0.7,
        in_domain=0.7,
        ood=0.7,
        per_domain={},
        errors={},
        support={"a": 1.0, "minus-a": 0.8, "other": 0.6, "constant": 0.0},
    )
    changes = plan_pruning(score, {"other": 0.9, "a": 0.1}, duplicates, PruningRules())
    assert [(c.concept_id, c.action, c.into) for c in changes] == [
        ("minus-a", "merged", "a"),
        ("other", "dropped", None),
        ("constant", "dropped", None),
    ]
    assert "flipped" in changes[1].reason and "0% of CV folds" in changes[2].reason
    assert isinstance(changes[0], Change) and "r = -1.00" in changes[0].reason


def test_batches_go_where_held_out_accuracy_is_lowest():
    score = ConceptSetScore.chance({"a": "x", "b": "y", "c": "z"}, ["a", "b", "c"], ["a", "b", "c"])
    score = score.model_copy(update={"per_domain": {"x": 0.9, "y": 0.6, "z": 0.5}})
    counts = allocate_batches(score, 10)
    assert sum(counts.values()) == 10 and counts["z"] >= counts["y"] > counts["x"] >= 1
    assert allocate_batches(score.model_copy(update={"errors": {}}), 10) == {}


def test_proposing_from_given_pairs_names_the_known_concepts(store):
    store_planted(store, DATA, mechanism="m")
    chat = ScriptedChat(responder=PlantedOracle(DATA, ["shared0", "shared1"], ["Noise A", "Noise B"], per_batch=2))
    llm = LLM(chat, "oracle", store=store)
    errors = [p.id for p in store.pairs(domain="domain1")][:12]
    discovery = Discovery(store, llm, DiscoveryConfig(mechanism="m", batch_size=4))
    proposed = discovery.propose_from_pairs(errors, {"domain1": 2, "domain0": 3}, known=["shared0", "Clarity"])
    prompts = [call[-1]["content"] for call in chat.calls]
    assert len(prompts) == 2  # domain0 has no given pairs: no batch there
    assert all("already known" in p and "shared0, Clarity" in p for p in prompts)
    shown = {int(n) for p in prompts for n in re.findall(r"planted query (\d+)", p)}
    assert shown <= {int(store.pair(p).query_text.split()[-1]) for p in errors}
    assert "shared0" not in proposed and set(proposed) <= {"shared1", "noise-a", "noise-b"}
    assert all(c.domains == {"domain1": c.domains["domain1"]} for c in proposed.values())
    # A kept concept always survives a merge; two kept ones are never compared.
    kept = {
        "structure": Candidate("Structure", descriptions=["organised"]),
        "structured": Candidate("Structured", descriptions=["x"]),
    }
    new = {"structure-steps": Candidate("Structure Steps", descriptions=["steps"])}
    merged, merges = Discovery(
        store, LLM(ScriptedChat(responder=lambda m: '{"verdicts": []}'), "x"), discovery.config
    ).merge({**kept, **new}, fixed=kept.keys())
    assert merges == [] and set(merged) == {"structure", "structured", "structure-steps"}
    assert Candidate.of(Concept(name="Kept", definition="A high score...")).descriptions == ["A high score..."]


def test_run_usage_and_decisions_are_kept(tmp_path):
    path = tmp_path / "s.db"
    with ConceptStore(path) as store:
        store.add_run_usage("r", 2, 10, 5)
        store.add_run_usage("r", 1, 1, 1)
        decision = ConceptDecision(run_id="r", iteration=1, concept_id="x", action="dropped", reason="why")
        store.record_decisions([decision, decision])
        store.db.execute("drop table concept_decisions")  # a store made before these tables existed
    with ConceptStore(path) as store:
        assert store.run_usage("r").calls == 3 and store.run_usage("r").tokens == 17
        assert store.run_usage("other").calls == 0 and store.decisions("r") == []
        store.record_decisions([decision])
        assert store.decisions("r") == [decision]
