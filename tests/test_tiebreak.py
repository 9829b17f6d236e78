"""Tie break: the judge re-asked on its ties with concepts from each source; accuracy against humans."""

import re

import numpy as np
import pytest

from helpers import application_responder
from tools.comparison import concept_weights, weight_gap
from tools.errors import WhyprefError
from tools.llm import LLM
from tools.pairs import Verdict
from tools.steering import top_concepts
from tools.testing import ScriptedChat
from tools.tiebreak import tie_break, tie_subset


def expected_verdict(a: str, b: str, names: list[str]) -> Verdict:
    """What the scripted judge answers in both orders, told to consider ``names`` (its documented rule)."""
    if "List Formatting" in names:
        sa, sb = (len(re.findall(r"^\d+\. ", t, re.MULTILINE)) for t in (a, b))
    elif "Length" in names:
        sa, sb = len(a.strip()), len(b.strip())
    else:
        sa, sb = int(len(a) >= 2 * len(b)), int(len(b) >= 2 * len(a))
    return Verdict.A if sa > sb else Verdict.B if sb > sa else Verdict.TIE


def test_tie_break_per_source_of_concepts(demo_fitted):
    store = demo_fitted
    ids = tie_subset(store, "judge-verbose", "human")
    human = {r["pair_id"]: r["verdict"] for r in store.label_rows(mechanism="human")}
    judge = {r["pair_id"]: r["verdict"] for r in store.label_rows(mechanism="judge-verbose")}
    assert ids == sorted(p for p in judge if judge[p] == "tie" and human[p] != "tie") and len(ids) >= 3

    chat = ScriptedChat(responder=application_responder)
    report = tie_break(store, LLM(chat, "scripted", store=store), "judge-verbose", k=1, seed=2)
    assert report.ties == len(ids) and [r.source for r in report.rows] == ["random", "judge", "human", "difference"]

    # One call per distinct prompt (both orders of every pair): sources that give a domain the same list,
    # and pairs with the same texts (in either order), share their calls.
    def prompts(p: str, row) -> set[tuple]:
        pair, names = store.pair(p), tuple(row.concepts[store.pair(p).domain])
        return {
            (pair.query_text, pair.response_a, pair.response_b, names),
            (pair.query_text, pair.response_b, pair.response_a, names),
        }

    distinct = set().union(*(prompts(p, row) for p in ids for row in report.rows))
    assert len(chat.calls) == len(distinct) > 2 * len(ids)

    ours, theirs = concept_weights(store, "human"), concept_weights(store, "judge-verbose")
    domains = sorted({store.pair(p).domain for p in ids})
    gap = weight_gap(ours, theirs, domains)
    expected_concepts = {
        "human": {d: [c.name for c in top_concepts(ours, d, 1)] for d in domains},
        "judge": {d: [c.name for c in top_concepts(theirs, d, 1)] for d in domains},
        "difference": {d: [c.name for c in top_concepts(gap, d, 1)] for d in domains},
    }
    for row in report.rows:
        if row.source in expected_concepts:
            assert row.concepts == expected_concepts[row.source]
        assert all(len(names) <= 1 for names in row.concepts.values())
        credits = []
        for p in ids:
            pair = store.pair(p)
            verdict = expected_verdict(pair.response_a, pair.response_b, row.concepts[pair.domain])
            credits.append(1.0 if verdict.value == human[p] else 0.5 if verdict is Verdict.TIE else 0.0)
        assert row.accuracy.estimate == pytest.approx(np.mean(credits))
        assert row.gain == pytest.approx(row.accuracy.estimate - 0.5)
        assert row.resolved == sum(c != 0.5 for c in credits) and row.missing == 0
    assert any(row.gain != 0 for row in report.rows)

    calls = len(chat.calls)
    again = tie_break(store, LLM(chat, "scripted", store=store), "judge-verbose", k=1, seed=2)
    assert again == report and len(chat.calls) == calls  # nothing asked twice

    limited = tie_break(
        store, LLM(chat, "scripted", store=store), "judge-verbose", k=3, seed=2, limit=2, sources=["human"]
    )
    assert limited.ties == 2 and [r.source for r in limited.rows] == ["human"]


def test_no_ties_is_a_clear_error(demo_fitted):
    with pytest.raises(WhyprefError, match="'human' has no tie on a pair 'judge-verbose' decided"):
        llm = LLM(ScriptedChat(responder=application_responder), "s")
        tie_break(demo_fitted, llm, "human", reference="judge-verbose")
