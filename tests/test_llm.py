"""The LLM client: schema-validated answers, re-asks with feedback, the content-hash cache, bounded
concurrency, and retries with backoff over real HTTP."""

import json
from typing import Literal

import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tools.errors import LLMAnswerError, LLMUnavailableError
from tools.llm import LLM, Request, RetryPolicy
from tools.testing import Fault, OpenAIStub, ScriptedChat


class Answer(BaseModel):
    c1: Literal[0, 1, 2]
    c2: Literal[0, 1, 2]


def request(text: str = "compare", stage: str = "compare") -> Request[Answer]:
    return Request(stage, (("system", "Reply with JSON only."), ("user", text)), Answer, max_tokens=50)


def scripted(*answers: str) -> ScriptedChat:
    queue = list(answers)
    return ScriptedChat(responder=lambda messages: queue.pop(0) if len(queue) > 1 else queue[0])


def test_some_invalid_answers_are_missing_the_others_kept(store):
    chat = ScriptedChat(responder=lambda m: "nope" if "bad" in m[1]["content"] else '{"c1": 0, "c2": 0}')
    llm = LLM(chat, "m", store=store, validation_retries=1)
    assert llm.run([request("good"), request("bad")]) == [Answer(c1=0, c2=0), None]
    assert llm.usage.stage("compare").missing == 1 and store.count("llm_cache") == 1


def test_answers_are_cached_in_batches_by_the_callers_thread_and_read_back_at_once(store, monkeypatch):
    import threading

    writes, reads = [], []
    cache_calls, cached_calls = store.cache_calls, store.cached_calls

    def write(calls):
        writes.append((len(calls), threading.get_ident()))
        cache_calls(calls)

    def read(keys):
        reads.append(len(keys))
        return cached_calls(keys)

    monkeypatch.setattr(store, "cache_calls", write)
    monkeypatch.setattr(store, "cached_calls", read)
    chat = ScriptedChat(responder=lambda m: '{"c1": 1, "c2": 0}')
    requests = [request(f"q{i}") for i in range(600)] + [request("q0")]  # one asked twice
    progress = []
    answers = LLM(chat, "m", store=store).run(requests, lambda stage, done, total: progress.append((done, total)))
    assert answers == [Answer(c1=1, c2=0)] * 601 and len(chat.calls) == 600
    assert sum(n for n, _ in writes) == 600 == store.count("llm_cache") and len(writes) <= 600 // 100
    assert {thread for _, thread in writes} == {threading.get_ident()}
    assert progress[0] == (0, 601) and progress[-1] == (601, 601)
    again = LLM(chat, "m", store=store)
    assert again.run(requests) == answers and len(chat.calls) == 600 and again.usage.stage("compare").cached == 600
    assert reads == [600, 600]  # one look-up per run (the store reads 500 keys per query)


def test_valid_and_fenced_answers(store):
    llm = LLM(scripted('```json\n{"c1": 1, "c2": 0}\n```'), "m", store=store)
    assert llm.run([request()]) == [Answer(c1=1, c2=0)]
    assert llm.usage.stage("compare").calls == 1 and llm.usage.stage("compare").prompt_tokens > 0


@pytest.mark.parametrize(
    "bad",
    ['{"c1": 1, "c2": ', '{"c1": 5, "c2": 0}', '{"c1": 1}', "Sure! Here you go.", "[]"],
    ids=["truncated", "off-enum", "missing-key", "prose", "wrong-type"],
)
def test_invalid_answer_is_reasked_with_the_validation_errors(store, bad):
    chat = scripted(bad, '{"c1": 2, "c2": 2}')
    llm = LLM(chat, "m", store=store, validation_retries=2)
    assert llm.run([request()]) == [Answer(c1=2, c2=2)]
    assert len(chat.calls) == 2
    feedback = chat.calls[1][-1]["content"]
    assert chat.calls[1][-2] == {"role": "assistant", "content": bad}
    assert "did not match the required JSON schema" in feedback


def test_an_answer_that_never_validates_is_missing_and_asked_again_next_run(store):
    answers = {"valid": False}

    def responder(messages):
        return '{"c1": 1, "c2": 0}' if answers["valid"] else "nope"

    chat = ScriptedChat(responder=responder)
    llm = LLM(chat, "m", store=store, validation_retries=2)
    with pytest.raises(LLMAnswerError, match="not one of the 2 compare answers fit its schema.*'nope'"):
        llm.run([request(), request("other")])  # a stage without a single valid answer stops, loudly
    assert len(chat.calls) == 6 and llm.usage.stage("compare").missing == 2 and store.count("llm_cache") == 0
    answers["valid"] = True  # the endpoint recovers: a re-run asks again and gets the answers
    again = LLM(chat, "m", store=store, validation_retries=2)
    assert again.run([request(), request("other")]) == [Answer(c1=1, c2=0)] * 2
    assert len(chat.calls) == 8 and again.usage.stage("compare").missing == 0 and store.count("llm_cache") == 2


def test_an_unexpected_error_of_the_chat_model_is_not_swallowed(store):
    def boom(messages):
        raise RuntimeError("connection reset")

    llm = LLM(ScriptedChat(responder=boom), "m", store=store)
    with pytest.raises(RuntimeError, match="connection reset"):
        llm.run([request()])
    assert store.count("llm_cache") == 0


def test_cache_makes_a_rerun_free_and_keys_on_content(store):
    chat = scripted('{"c1": 0, "c2": 1}')
    first = LLM(chat, "m", store=store)
    first.run([request("a"), request("b")])
    second = LLM(chat, "m", store=store)
    assert second.run([request("a"), request("b")]) == [Answer(c1=0, c2=1)] * 2
    assert len(chat.calls) == 2 and second.usage.total.calls == 0 and second.usage.total.cached == 2
    assert second.estimate([request("a"), request("c")]).model_dump() | {"prompt_tokens": 0} == {
        "calls": 1,
        "cached": 1,
        "prompt_tokens": 0,
        "completion_tokens": 100,
        "usd": None,  # no price known for model "m"
    }
    LLM(chat, "other-model", store=store).run([request("a")])
    LLM(chat, "m", store=store, temperature=0.7).run([request("a")])
    assert len(chat.calls) == 4  # another model or temperature is another question


def test_concurrency_is_bounded_over_http(store):
    with OpenAIStub(lambda messages: '{"c1": 1, "c2": 1}', latency=0.2) as stub:
        chat = ChatOpenAI(base_url=stub.base_url, api_key="x", model="stub", max_retries=0)
        llm = LLM(chat, "stub", store=store, max_concurrency=4)
        answers = llm.run([request(f"q{i}") for i in range(12)])
    assert answers == [Answer(c1=1, c2=1)] * 12
    assert stub.max_in_flight == 4


def test_consecutive_runs_share_pooled_connections_without_losing_calls(store):
    """Each stage is one ``run``; keep-alive connections pooled by the first must still work in the next."""
    with OpenAIStub(lambda messages: '{"c1": 1, "c2": 1}') as stub:
        chat = ChatOpenAI(base_url=stub.base_url, api_key="x", model="stub", max_retries=0)
        llm = LLM(chat, "stub", store=store, max_concurrency=2)
        for stage in range(3):
            assert llm.run([request(f"stage {stage} q{i}") for i in range(4)]) == [Answer(c1=1, c2=1)] * 4
    assert stub.requests == 12 and llm.usage.total.missing == 0


def test_an_error_in_progress_returns_only_once_the_calls_in_flight_have_stopped(store):
    """The caller closes its store when ``run`` raises (a cancelled MCP call): no cache write may follow."""
    import time

    def stop(stage: str, done: int, total: int | None) -> None:
        if done > 0:  # once calls are in flight
            raise KeyboardInterrupt("stop")

    with OpenAIStub(lambda messages: '{"c1": 1, "c2": 1}', latency=0.3) as stub:
        chat = ChatOpenAI(base_url=stub.base_url, api_key="x", model="stub", max_retries=0)
        llm = LLM(chat, "stub", store=store, max_concurrency=4)
        with pytest.raises(KeyboardInterrupt):
            llm.run([request(f"q{i}") for i in range(12)], stop)
        cached = store.count("llm_cache")
        time.sleep(0.8)  # longer than a call: anything still in flight would have been cached by now
        assert store.count("llm_cache") == cached and stub.requests < 12
        assert cached >= 1  # the answers that came back before the stop were paid for: kept


def test_rate_limits_and_server_errors_are_retried_with_backoff(store):
    failing = {1: 429, 2: 500, 4: 429, 7: 503}
    with OpenAIStub(lambda messages: json.dumps({"c1": 0, "c2": 2}), latency=0.01, fail=failing.get) as stub:
        chat = ChatOpenAI(base_url=stub.base_url, api_key="x", model="stub", max_retries=0)
        llm = LLM(chat, "stub", store=store, max_concurrency=2, policy=RetryPolicy(base_delay=0.01))
        answers = llm.run([request(f"q{i}") for i in range(6)])
    assert answers == [Answer(c1=0, c2=2)] * 6
    assert stub.errors == 4 and stub.requests == 10
    assert llm.usage.total.missing == 0 and llm.usage.total.prompt_tokens == 60  # the stub's usage, per answer


def test_retries_exhausted_stop_the_stage_with_the_endpoints_message(store):
    with OpenAIStub(lambda messages: "{}", fail=lambda n: Fault(500, "overloaded, try later")) as stub:
        chat = ChatOpenAI(base_url=stub.base_url, api_key="x", model="stub", max_retries=0)
        llm = LLM(chat, "stub", store=store, policy=RetryPolicy(max_retries=2, base_delay=0.01))
        with pytest.raises(LLMUnavailableError, match="still failing after 2 retries: overloaded, try later"):
            llm.run([request()])
    assert stub.requests == 3 and store.count("llm_cache") == 0
