"""Steering (judge hack): top-k vs random concepts, generation, evaluation by the judge or a scorer, win rates."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from helpers import application_responder
from tools.comparison import ConceptWeights, concept_weights
from tools.concepts import Concept, ConceptScope
from tools.errors import WhyprefError
from tools.llm import LLM
from tools.pairs import Pair, Verdict
from tools.steering import (
    HTTPScorer,
    JudgeEvaluator,
    ScorerEvaluator,
    SteeringQuery,
    advise,
    held_out_queries,
    random_concepts,
    steer,
    top_concepts,
    win_rate,
)
from tools.testing import ScriptedChat


def weights_of(values: dict[str, float], domain_specific: dict[str, str] | None = None) -> ConceptWeights:
    specific = domain_specific or {}
    concepts = [
        Concept(
            name=n,
            scope=ConceptScope.DOMAIN if n in specific else ConceptScope.SHARED,
            domains=tuple([specific[n]] if n in specific else []),
        )
        for n in values
    ]
    row = np.array(list(values.values()))
    return ConceptWeights("m", "id", concepts, ["cooking"], np.vstack([row, row]))


def test_top_k_takes_the_largest_positive_weights_and_random_k_the_domains_concepts():
    weights = weights_of(
        {"A": 0.5, "B": -2.0, "C": 1.5, "D": 0.0, "E": 0.9, "F": 0.2, "G": 0.1, "H": 3.0},
        domain_specific={"H": "coding", "G": "cooking"},
    )
    assert [c.name for c in top_concepts(weights, "cooking", 3)] == ["H", "C", "E"]
    assert [c.name for c in top_concepts(weights, "cooking", 10)] == ["H", "C", "E", "A", "F", "G"]  # positive only
    draws = [random_concepts(weights, "health", 4, seed=s) for s in range(20)]
    assert all(len(d) == 4 and len({c.name for c in d}) == 4 for d in draws)
    assert {c.name for d in draws for c in d} == {"A", "B", "C", "D", "E", "F"}  # never another domain's concept
    assert random_concepts(weights, "health", 4, seed=3) == draws[3]  # reproducible
    assert len({tuple(c.name for c in d) for d in draws}) > 1
    assert {c.name for c in random_concepts(weights, "cooking", 7, seed=0)} == set("ABCDEFG")


def test_win_rate_is_wins_plus_half_the_ties():
    rate = win_rate("explanation", None, [Verdict.A, Verdict.A, Verdict.TIE, Verdict.B, Verdict.A])
    assert (rate.wins, rate.ties, rate.losses) == (3, 1, 1)
    assert rate.rate is not None and rate.rate.estimate == pytest.approx(3.5 / 5)
    assert rate.rate.low <= 0.7 <= rate.rate.high and rate.rate.low < rate.rate.high
    assert win_rate("random", "x", [Verdict.TIE] * 4).rate.estimate == 0.5
    assert win_rate("random", "x", []).rate is None


def test_steering_the_length_loving_judge(demo_fitted):
    store = demo_fitted
    chat = ScriptedChat(responder=application_responder)
    llm = LLM(chat, "scripted", store=store)
    weights = concept_weights(store, "judge-verbose")
    queries = [
        SteeringQuery(query=f"Question {i} about {d}?", domain=d) for d in ("coding", "health") for i in range(3)
    ]
    result = steer(store, llm, "judge-verbose", queries, JudgeEvaluator(llm), k=4, seed=1)

    by = {(r.query, r.condition): r for r in result.responses}
    assert len(result.responses) == 3 * len(queries)
    for q in queries:
        plain, explained, rand = (by[q.query, c] for c in ("plain", "explanation", "random"))
        assert plain.concepts == [] and plain.verdict is None and "1. " not in plain.response
        assert explained.concepts == [c.name for c in top_concepts(weights, q.domain, 4)]
        assert rand.concepts == [c.name for c in random_concepts(weights, q.domain, 4, seed=f"1:{q.query}")]
        for r in (explained, rand):  # the judge wins a response only when it is clearly longer (Length listed)
            assert r.verdict is (Verdict.A if "Length" in r.concepts else Verdict.TIE)
    assert all("Length" in by[q.query, "explanation"].concepts for q in queries)  # the judge rewards length

    overall = {r.condition: r for r in result.win_rates if r.domain is None}
    assert overall["explanation"].rate.estimate == 1.0
    expected = np.mean([1.0 if "Length" in by[q.query, "random"].concepts else 0.5 for q in queries])
    assert overall["random"].rate.estimate == pytest.approx(expected)
    per_domain = [r for r in result.win_rates if r.domain == "coding"]
    assert {r.condition for r in per_domain} == {"explanation", "random"}
    assert all(r.wins + r.ties + r.losses == 3 for r in per_domain)

    calls = len(chat.calls)
    assert calls == 3 * len(queries) + 2 * 2 * len(queries)  # 3 generations, 2 comparisons in 2 orders
    again = steer(store, LLM(chat, "scripted", store=store), "judge-verbose", queries, JudgeEvaluator(llm), k=4, seed=1)
    assert len(chat.calls) == calls and again == result


def test_a_scorer_evaluates_without_orders():
    pairs = [
        Pair(query="q", response_a=a, response_b=b, domain="d", source="s")
        for a, b in (("long answer", "short"), ("x", "xy"), ("same", "same"))
    ]
    scorer = ScorerEvaluator(lambda query, response: float(len(response)))
    assert scorer.compare(pairs, lambda *args: None) == [Verdict.A, Verdict.B, Verdict.TIE]


class _ScoreHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = {"score": len(body["response"])} if self.path == "/score" else {"value": 1}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def score_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ScoreHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_scorer(score_server):
    assert HTTPScorer(f"{score_server}/score")("q", "four") == 4.0
    with pytest.raises(WhyprefError, match='expected {"score"'):
        HTTPScorer(f"{score_server}/other")("q", "r")
    with pytest.raises(WhyprefError, match="scorer http://127.0.0.1:1/"):
        HTTPScorer("http://127.0.0.1:1/", timeout=2)("q", "r")


def test_advice_for_one_query(demo_fitted):
    store = demo_fitted
    chat = ScriptedChat(responder=application_responder)
    advice = advise(store, "judge-verbose", "health", k=2)
    assert advice.response is None and len(advice.concepts) == 2 and not chat.calls
    assert advice.concepts[0].lift >= advice.concepts[1].lift > 0
    steered = advise(
        store, "judge-verbose", "health", k=2, query="How do I sleep?", generator=LLM(chat, "scripted", store=store)
    )
    assert steered.concepts == advice.concepts and all(c.concept.lower() in steered.response for c in advice.concepts)
    with pytest.raises(WhyprefError, match="needs the query"):
        advise(store, "judge-verbose", "health", generator=LLM(chat, "scripted"))


def test_held_out_queries_skip_what_the_mechanism_saw(demo_fitted):
    from tools.pairs import Label, LabeledPair

    store = demo_fitted
    seen = next(store.pairs(domain="coding"))
    fresh = [
        Pair(query=seen.query_text, response_a="a", response_b="b", domain="coding", source="new"),  # seen query
        Pair(query="A new coding question?", response_a="a", response_b="b", domain="coding", source="new"),
        Pair(query="A new coding question?", response_a="c", response_b="d", domain="coding", source="new"),
        Pair(query="x" * 50, response_a="a", response_b="b", domain="coding", source="new"),  # too long
        Pair(
            query=[
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "More?"},
            ],
            response_a="a",
            response_b="b",
            domain="coding",
            source="new",
        ),  # multi-turn
    ]
    store.add_labeled_pairs([LabeledPair(pair=p, labels=[Label(mechanism="human", verdict="A")]) for p in fresh])
    queries = held_out_queries(store, "judge-verbose", domains=["coding"], per_domain=5, max_query_chars=40)
    assert queries == [SteeringQuery(query="A new coding question?", domain="coding")]
    with pytest.raises(WhyprefError, match="no held-out single-turn query of domain 'health'"):
        held_out_queries(store, "judge-verbose", domains=["health"], per_domain=5)


def test_domains_where_nothing_is_rewarded_are_left_out(store, monkeypatch):
    concepts = [Concept(name="Length"), Concept(name="List Formatting")]
    weights = ConceptWeights("j", "m1", concepts, ["cooking", "health"], np.array([[1.0, 0.5], [-1.0, 0.0], [0, 0]]))
    monkeypatch.setattr("tools.steering.concept_weights", lambda store, mechanism, model_id: weights)
    chat = ScriptedChat(responder=application_responder)
    llm = LLM(chat, "scripted")
    queries = [SteeringQuery(query="Soup?", domain="cooking"), SteeringQuery(query="Sleep?", domain="health")]
    report = steer(store, llm, "j", queries, JudgeEvaluator(llm), k=4)
    assert report.unsteerable == ["health"] and {r.domain for r in report.responses} == {"cooking"}
    assert [r.concepts for r in report.responses if r.condition == "explanation"] == [["Length", "List Formatting"]]
    with pytest.raises(WhyprefError, match="rewards no concept in health: nothing to steer by"):
        steer(store, llm, "j", queries[1:], JudgeEvaluator(llm), k=4)
