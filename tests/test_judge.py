"""The LLM judge as a mechanism: both orders, the flip -> tie rule, labels stored, no call repeated."""

import json

import pytest

from helpers import application_responder
from tools.demo_data import demo_pairs
from tools.judge import judge_name, judge_pairs, judge_requests, label_pairs
from tools.llm import LLM
from tools.pairs import Label, LabeledPair, MechanismKind, Pair, Verdict
from tools.stats import store_stats
from tools.testing import ScriptedChat


def llm_of(responder, store=None) -> tuple[LLM, ScriptedChat]:
    chat = ScriptedChat(responder=responder)
    return LLM(chat, "scripted", store=store), chat


def always(verdict: int):
    return lambda messages: json.dumps({"verdict": verdict})


PAIR = Pair(
    query="How do I boil an egg?",
    response_a="Boil it.",
    response_b="Boil it for 7 minutes, then cool it.",
    domain="cooking",
    source="t",
)


@pytest.mark.parametrize(
    ("answer", "expected"), [(always(1), Verdict.TIE), (always(2), Verdict.TIE), (application_responder, Verdict.B)]
)
def test_a_verdict_that_flips_with_the_order_is_a_tie(answer, expected):
    llm, chat = llm_of(answer)
    [label] = judge_pairs(llm, [PAIR], mechanism="j")
    assert label is not None and label.verdict is expected
    assert len(chat.calls) == 2  # both orders
    shown_first = [call[-1]["content"].split("Response 1:")[1].split("Response 2:")[0].strip() for call in chat.calls]
    assert shown_first == [PAIR.response_a, PAIR.response_b]
    if expected is Verdict.TIE:
        assert label.verdict_ab != label.verdict_ba and label.position_consistent is False


def test_chain_of_thought_asks_for_reasoning_before_the_verdict():
    [plain, cot] = [judge_requests([PAIR], chain_of_thought=flag, max_chars=6000)[0] for flag in (False, True)]
    assert list(cot.schema.model_json_schema()["properties"]) == ["reasoning", "verdict"]
    assert list(plain.schema.model_json_schema()["properties"]) == ["verdict"]
    assert '"reasoning"' in cot.messages[-1][1] and '"reasoning"' not in plain.messages[-1][1]
    llm, _ = llm_of(application_responder)
    [label] = judge_pairs(llm, [PAIR], chain_of_thought=True)
    assert label is not None and label.verdict is Verdict.B


def test_considered_concepts_are_listed_for_the_pairs_domain_only():
    from tools.concepts import Concept

    concepts = {"cooking": [Concept(name="Length", definition="A high score indicates a longer response.")]}
    other = PAIR.model_copy(update={"domain": "coding"})
    cooking, _, coding, _ = judge_requests([PAIR, other], concepts=concepts, max_chars=6000)
    assert "Consider only the following concepts" in cooking.messages[-1][1]
    assert "- Length: A high score" in cooking.messages[-1][1]
    assert "Consider only" not in coding.messages[-1][1]


def test_a_missing_answer_leaves_the_pair_unlabelled():
    def broken_second_order(messages):
        swapped = "Response 1: Boil it for" in messages[1]["content"]  # re-asks append to the conversation
        return "no json" if swapped else json.dumps({"verdict": 1})

    llm, chat = llm_of(broken_second_order)
    assert judge_pairs(llm, [PAIR]) == [None]
    assert len(chat.calls) == 1 + 1 + llm.validation_retries


def test_labels_land_as_a_judge_mechanism_and_a_rerun_calls_nothing(store):
    items = demo_pairs(4)
    store.add_labeled_pairs(items)
    pairs = [item.pair for item in items]
    llm, chat = llm_of(application_responder, store)
    result = label_pairs(store, llm, pairs)
    name = judge_name("scripted")
    assert result.mechanism == name == "judge:scripted" and result.labelled == len(pairs) and result.missing == 0
    kinds = {m.name: m.kind for m in store.mechanisms()}
    assert kinds[name] is MechanismKind.LLM_JUDGE
    rows = store.label_rows(mechanism=name)
    assert len(rows) == len(pairs) and all(r["verdict_ab"] and r["verdict_ba"] for r in rows)
    ties = sum(r["verdict"] == "tie" for r in rows)
    assert result.ties == pytest.approx(ties / len(pairs))
    # Every tie is an answer of 1 in both orders; every other pair has one answer of 1 and one of 2.
    assert result.first_shown == pytest.approx((2 * ties + (len(pairs) - ties)) / (2 * len(pairs)))
    assert 0 < ties < len(pairs)
    stats = store_stats(store)
    assert any(a.mechanism == name and a.reference == "human" for a in stats.agreement)

    calls, digest = len(chat.calls), store.content_digest()
    again = label_pairs(store, LLM(chat, "scripted", store=store), pairs)
    assert len(chat.calls) == calls  # every answer from the cache
    assert again == result and store.content_digest() == digest


def test_the_applications_from_the_command_line(tmp_path, monkeypatch):
    """judge -> fit -> compare -> steer -> tiebreak with `whypref`, against a scripted endpoint on 127.0.0.1."""
    from typer.testing import CliRunner

    from cli import app
    from tools.annotation import Annotation, AnnotationConfig
    from tools.demo_data import DEMO_MECHANISMS
    from tools.store import ConceptStore
    from tools.testing import OpenAIStub

    def invoke(*args, ok=True):
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert (result.exit_code == 0) is ok, result.output
        return result.output

    db = tmp_path / "s.db"
    with ConceptStore(db) as store:
        # The demo pairs and their mirror images (A and B exchanged): the judge then prefers both sides.
        items = demo_pairs(8)
        items += [
            LabeledPair(
                pair=i.pair.model_copy(
                    update={"response_a": i.pair.response_b, "response_b": i.pair.response_a, "source": "mirror"}
                ),
                labels=[Label(mechanism=lab.mechanism, verdict=lab.verdict.flipped()) for lab in i.labels],
            )
            for i in items
        ]
        store.add_labeled_pairs(items, DEMO_MECHANISMS)
        Annotation(store, None, AnnotationConfig(llm_concepts=False)).run([i.pair for i in items])
    with OpenAIStub(application_responder) as stub:
        monkeypatch.setenv("WHYPREF_BASE_URL", stub.base_url)
        monkeypatch.setenv("WHYPREF_MODEL", "stub-model")
        assert "Nothing was spent" in invoke("judge", "--db", db, "--dry-run") and stub.requests == 0
        out = invoke("judge", "--db", db, "--name", "stub-judge")
        # A mirror's two prompts are its original's, swapped: each distinct prompt is asked once.
        assert "Judged 48 of 48 pairs as mechanism stub-judge" in out and stub.requests <= 48
        invoke("fit", "-m", "stub-judge", "--db", db)
        invoke("fit", "-m", "human", "--db", db)
        out = invoke("compare", "--db", db, "--second", "stub-judge", "--top", "2")
        assert "Agreement %" in out and "stub-judge" in out and "Where human and stub-judge differ" in out
        out = invoke("steer", "-m", "stub-judge", "--db", db, "--domain", "coding", "--query", "Sort a list?")
        assert "Concepts (stub-judge in coding" in out
        invoke("steer", "-m", "stub-judge", "--db", db, "--domain", "coding", ok=False)  # no held-out query
        out = invoke("tiebreak", "-m", "stub-judge", "--db", db, "--k", "2")
        assert "Tie break on" in out and "difference" in out
        requests = stub.requests
        invoke("tiebreak", "-m", "stub-judge", "--db", db, "--k", "2")
        assert stub.requests == requests
