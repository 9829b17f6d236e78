"""Data-driven candidates: a phrase planted to predict the preferred response is found, named and valued;
labels that no phrase predicts give none; the discovery agent proposes mined phrases."""

from __future__ import annotations

import numpy as np
import pytest

from tools.annotation import Annotation, AnnotationConfig
from tools.concepts import ConceptKind
from tools.mining import MINED_ANNOTATOR, mine_patterns, mine_store, pattern_values
from tools.pairs import Label, LabeledPair, Pair

FILLER = [
    "Water boils at a lower temperature on a high mountain.",
    "Most recipes work better with fresh ingredients.",
    "A sharp knife is safer than a dull one.",
    "Read the whole recipe before you start cooking.",
    "Taste the dish as you go and adjust the salt.",
    "Clean the kitchen while the oven is still warm.",
    "Good bread needs time more than it needs skill.",
    "Keep spices away from heat and light.",
    "Let meat rest before you cut it.",
    "A timer helps when several things cook at once.",
]


MARKER = "Add a pinch of saffron at the end."


def planted_pairs(n: int, seed: int, phrase_matters: bool) -> list[LabeledPair]:
    """Responses of random filler sentences; in one of them a sentence may be the MARKER (so lengths and
    layout do not tell). With ``phrase_matters`` the one that says it is preferred 90% of the time;
    otherwise labels are coins."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        sentences = [list(rng.choice(FILLER, size=rng.integers(2, 6))) for _ in range(2)]
        has = rng.random() < 0.5
        side = int(rng.integers(0, 2))
        if has:
            sentences[side][int(rng.integers(0, len(sentences[side])))] = MARKER
        texts = [" ".join(s) for s in sentences]
        winner = (side if rng.random() < 0.9 else 1 - side) if phrase_matters and has else int(rng.integers(0, 2))
        pair = Pair(
            query=f"How do I cook dish {i}?", response_a=texts[0], response_b=texts[1], domain=f"d{i % 3}", source="t"
        )
        items.append(LabeledPair(pair=pair, labels=[Label(mechanism="human", verdict="A" if winner == 0 else "B")]))
    return items


def arrays(items: list[LabeledPair]):
    texts = [(i.pair.response_a, i.pair.response_b) for i in items]
    y = np.array([1 if i.labels[0].verdict.value == "A" else -1 for i in items])
    domains = np.array([i.pair.domain for i in items])
    return texts, y, domains, np.arange(len(items))


def test_a_phrase_that_predicts_the_preferred_response_is_found():
    texts, y, domains, groups = arrays(planted_pairs(400, 0, phrase_matters=True))
    found = mine_patterns(texts, y, groups)
    top = found[0]
    # Every n-gram of the marker sentence marks the same pairs: one is taken, and then the others add
    # nothing.
    assert ("saffron" in top.phrase or "pinch" in top.phrase) and len(found) <= 2
    assert top.weight > 0 and top.agreement > 0.8 and top.z > 5 and top.p_value < 0.01 and top.pairs > 100


def test_labels_that_no_phrase_predicts_give_no_stable_phrase():
    texts, y, domains, groups = arrays(planted_pairs(400, 1, phrase_matters=False))
    assert len(mine_patterns(texts, y, groups)) <= 1


def test_mined_candidates_land_as_concepts_with_provenance_and_exact_values(store):
    items = planted_pairs(300, 2, phrase_matters=True)
    store.add_labeled_pairs(items)
    Annotation(store, None, AnnotationConfig(llm_concepts=False)).run([i.pair for i in items])
    result = mine_store(store, "human")
    assert result.concepts and result.named_by == "template"
    concept = next(c for c in store.concepts(kind=ConceptKind.MINED) if c.id == result.concepts[0])
    assert concept.provenance["mined_from"] == "human" and concept.provenance["examples"]
    phrase = concept.provenance["pattern"]
    assert phrase in concept.name and phrase in concept.definition
    values = {
        r["pair_id"]: r["value"]
        for r in store.db.query(
            "select pair_id, value from concept_values where concept_id = ? and annotator = ?",
            [concept.id, MINED_ANNOTATOR],
        )
    }
    for item in items[:50]:
        expected = float(phrase in item.pair.response_a.lower()) - float(phrase in item.pair.response_b.lower())
        assert values[item.pair.id] == pytest.approx(expected)
    # A pair imported later gets the mined concepts' values when its measured ones are computed.
    later = Pair(
        query="q?", response_a="Add saffron, a pinch of saffron.", response_b="Just do it.", domain="d0", source="t"
    )
    store.add_labeled_pairs([LabeledPair(pair=later)])
    Annotation(store, None, AnnotationConfig(llm_concepts=False)).run([later])
    assert pattern_values([later], [concept])[0].value in (0.0, 1.0)
    assert store.pair_values(later.id, MINED_ANNOTATOR)


def test_the_mine_command(tmp_path):
    from typer.testing import CliRunner

    from cli import app
    from tools.store import ConceptStore

    db = tmp_path / "m.db"
    with ConceptStore(db) as store:
        items = planted_pairs(300, 3, phrase_matters=True)
        store.add_labeled_pairs(items)
        Annotation(store, None, AnnotationConfig(llm_concepts=False)).run([i.pair for i in items])
    result = CliRunner().invoke(app, ["mine", "--db", str(db), "--max", "3"])
    assert result.exit_code == 0, result.output
    assert ("saffron" in result.output or "pinch" in result.output) and "optimistic" in result.output


def test_a_phrase_that_only_stands_in_for_length_is_not_taken_beside_length():
    """Labels follow length; "in summary" comes with a long closing paragraph, so it predicts the winner
    on its own, but nothing beyond the log length ratio given as a concept in hand."""
    rng = np.random.default_rng(7)
    texts, y, lengths = [], [], []
    for _ in range(500):
        pair = [" ".join(rng.choice(FILLER, size=rng.integers(1, 8))) for _ in range(2)]
        if rng.random() < 0.6:
            side = int(rng.integers(0, 2))
            pair[side] += " In summary, " + " ".join(rng.choice(FILLER, size=4))
        ratio = np.log(len(pair[0]) / len(pair[1]))
        texts.append((pair[0], pair[1]))
        y.append(1 if rng.random() < 1 / (1 + np.exp(-3 * ratio)) else -1)
        lengths.append(ratio)
    y_, groups = np.array(y), np.arange(len(y))
    alone = mine_patterns(texts, y_, groups)
    summary = {"summary", "in summary", "in summary,"}
    assert summary & {p.phrase for p in alone}
    beside = mine_patterns(texts, y_, groups, base=np.array(lengths)[:, None])
    assert not summary & {p.phrase for p in beside}


def test_the_chance_of_any_phrase_under_coin_labels_is_small():
    """Forty sets of coin-flip labels: each step's family-wise error is 5%, so a discovery in more than a
    few of them would mean the threshold ignores how many phrases were tried."""
    discoveries = 0
    for seed in range(40):
        texts, y, _, groups = arrays(planted_pairs(300, 100 + seed, phrase_matters=False))
        discoveries += bool(mine_patterns(texts, y, groups))
    assert discoveries <= 5


def test_the_agent_proposes_a_mined_phrase_and_keeps_it_when_held_out_accuracy_rises(tmp_path):
    from langgraph.checkpoint.memory import InMemorySaver

    from agent.config import AgentConfig
    from agent.graph import build_graph, start_run
    from helpers import pipeline_responder
    from tools.llm import LLM
    from tools.store import ConceptStore
    from tools.testing import ScriptedChat

    store = ConceptStore(tmp_path / "a.db")
    store.add_labeled_pairs(planted_pairs(400, 4, phrase_matters=True))
    llm = LLM(ScriptedChat(responder=pipeline_responder), "scripted", store=store, validation_retries=0)
    config = AgentConfig(
        mechanism="human",
        relevance=False,
        max_iterations=2,
        batches_per_iteration=1,
        pairs_per_domain=None,
        max_calls=100_000,
    )
    saver = InMemorySaver()
    result = start_run(store, llm, config, saver, run_id="m")
    mined = {c.id: c for c in store.concepts(kind=ConceptKind.MINED)}
    kept = [c for c in result.concepts if c in mined]
    assert len(kept) == 1 and mined[kept[0]].provenance["pattern"] in MARKER.lower()
    assert result.history[-1].in_domain > result.history[0].in_domain + 0.1
    assert {d.concept_id: d.action for d in store.decisions("m")}[kept[0]] == "added"
    # Mined on the training split only: its example pairs are never held-out ones.
    state = build_graph(saver).get_state({"configurable": {"thread_id": "m"}}).values
    assert set(mined[kept[0]].provenance["examples"]) <= set(state["train_ids"])
