"""Failures of an LLM endpoint are loud, fast and lose nothing: a fault-injecting OpenAI-compatible
server on 127.0.0.1 (401, 404, 400, 429 with Retry-After, 5xx, hangs, junk) and a closed port."""

from __future__ import annotations

import json
import logging
import time
from typing import Literal

import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel
from typer.testing import CliRunner

from cli import app
from helpers import pipeline_responder
from tools.errors import (
    LLMAuthenticationError,
    LLMBadRequestError,
    LLMNotFoundError,
    LLMUnavailableError,
)
from tools.llm import LLM, Request, RetryPolicy, choice_request
from tools.store import ConceptStore
from tools.testing import Fault, OpenAIStub, closed_port_url

FAST = RetryPolicy(max_retries=3, deadline=10.0, circuit_breaker=8, base_delay=0.02, max_delay=0.1)


class Answer(BaseModel):
    c1: Literal[0, 1, 2]


def ok(messages) -> str:
    return '{"c1": 1}'


def request(text: str = "compare") -> Request[Answer]:
    return Request("compare", (("system", "Reply with JSON only."), ("user", text)), Answer, max_tokens=20)


def client(url: str, store: ConceptStore | None = None, *, timeout: float = 5.0, **kwargs) -> LLM:
    chat = ChatOpenAI(base_url=url, api_key="x", model="stub", max_retries=0, timeout=timeout)
    return LLM(chat, "stub", store=store, policy=kwargs.pop("policy", FAST), endpoint=url, **kwargs)


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        (Fault(401, "Incorrect API key provided: sk-...xyz."), LLMAuthenticationError, "WHYPREF_API_KEY"),
        (Fault(403, "Project does not have access to this model."), LLMAuthenticationError, "WHYPREF_API_KEY"),
        (Fault(404, "The model `gpt-9` does not exist."), LLMNotFoundError, "WHYPREF_MODEL"),
        (Fault(400, "This model's maximum context length is 8192 tokens."), LLMBadRequestError, "HTTP 400"),
    ],
    ids=["401", "403", "404", "400-context"],
)
def test_configuration_errors_stop_at_once_with_the_endpoints_message(store, fault, error, words):
    with OpenAIStub(ok, fail=lambda n: fault) as stub:
        llm = client(stub.base_url, store)
        started = time.monotonic()
        with pytest.raises(error) as caught:
            llm.run([request(f"q{i}") for i in range(20)])
        elapsed = time.monotonic() - started
    assert fault.message in str(caught.value) and words in str(caught.value) and stub.base_url in str(caught.value)
    assert elapsed < 3 and stub.requests <= llm.max_concurrency  # no retries of what retrying cannot fix
    assert store.count("llm_cache") == 0


def test_the_schema_is_sent_strict(store):
    with OpenAIStub(ok) as stub:
        assert client(stub.base_url, store).run([request()])[0] == Answer(c1=1)
    format_ = stub.bodies[0]["response_format"]
    assert format_["type"] == "json_schema" and format_["json_schema"]["strict"] is True
    assert format_["json_schema"]["schema"]["additionalProperties"] is False


@pytest.mark.parametrize(
    ("refusal", "check"),
    [
        (
            "'strict' is not supported for response_format",
            lambda bodies: "strict" not in bodies[-1]["response_format"]["json_schema"],
        ),
        (
            "Unsupported value: 'temperature' does not support 0 with this model.",
            lambda bodies: "temperature" not in bodies[-1],
        ),
    ],
    ids=["strict", "temperature"],
)
def test_a_refused_parameter_is_dropped_once_and_said(store, caplog, refusal, check):
    with OpenAIStub(ok, fail=lambda n: Fault(400, refusal) if n == 1 else None) as stub:
        llm = client(stub.base_url, store)
        with caplog.at_level(logging.WARNING, logger="whypref.llm"):
            assert llm.run([request("a"), request("b")]) == [Answer(c1=1)] * 2
    # The refused request is sent once more without the parameter (the other one may have been sent
    # with it before the refusal came back, and succeeded).
    [again] = [body for body in stub.bodies[1:] if body["messages"] == stub.bodies[0]["messages"]]
    assert check([again]) and stub.requests == 3
    assert any(refusal in record.getMessage() or "temperature" in record.getMessage() for record in caplog.records)


def test_an_endpoint_without_json_schema_gets_json_object_with_the_schema_in_the_prompt(store):
    refusal = "response_format type json_schema is not supported"
    with OpenAIStub(ok, fail=lambda n: Fault(400, refusal) if n <= 2 else None) as stub:
        assert client(stub.base_url, store).run([request()]) == [Answer(c1=1)]
    last = stub.bodies[-1]
    assert last["response_format"] == {"type": "json_object"}
    system = last["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("Reply with JSON only.")
    assert "JSON schema" in system["content"] and '"c1"' in system["content"]


def test_rate_limits_wait_as_long_as_the_server_asks(store):
    faults = {1: Fault(429, "Rate limit reached", headers={"retry-after": "1"})}
    with OpenAIStub(ok, fail=faults.get) as stub:
        llm = client(stub.base_url, store)
        started = time.monotonic()
        assert llm.run([request()]) == [Answer(c1=1)]
    assert time.monotonic() - started >= 1.0 and stub.requests == 2


def test_server_errors_are_retried_until_the_endpoint_recovers(store):
    with OpenAIStub(ok, fail=lambda n: Fault(503, "upstream busy") if n <= 3 else None) as stub:
        assert client(stub.base_url, store).run([request()]) == [Answer(c1=1)]
    assert stub.requests == 4


def test_a_refused_connection_fails_in_seconds(store):
    llm = client(closed_port_url(), store)
    started = time.monotonic()
    with pytest.raises(LLMUnavailableError, match="connection failed") as caught:
        llm.run([request(f"q{i}") for i in range(50)])
    assert time.monotonic() - started < 5 and "WHYPREF_BASE_URL" in str(caught.value)


def test_a_hanging_endpoint_fails_within_the_timeout_and_deadline(store):
    policy = RetryPolicy(max_retries=5, deadline=3.0, circuit_breaker=4, base_delay=0.05)
    with OpenAIStub(ok, fail=lambda n: Fault(200, delay=30)) as stub:
        llm = client(stub.base_url, store, timeout=0.5, policy=policy, max_concurrency=2)
        started = time.monotonic()
        with pytest.raises(LLMUnavailableError, match="timed out"):
            llm.run([request(f"q{i}") for i in range(10)])
        elapsed = time.monotonic() - started
    assert elapsed < 4.5


def test_the_embedded_policy_does_not_retry_a_timeout(store):
    """A one-slot local server goes on generating a timed-out answer; asking again queues behind it."""
    policy = RetryPolicy(retry_timeouts=False)
    with OpenAIStub(ok, fail=lambda n: Fault(200, delay=5)) as stub:
        llm = client(stub.base_url, store, timeout=0.5, policy=policy, max_concurrency=1)
        with pytest.raises(LLMUnavailableError, match="WHYPREF_TIMEOUT"):
            llm.run([request()])
    assert stub.requests == 1


def test_junk_from_the_endpoint_is_retried_as_a_transient_failure(store):
    with OpenAIStub(ok, fail=lambda n: Fault(raw="<html>502 Bad Gateway</html>") if n == 1 else None) as stub:
        llm = client(stub.base_url, store)
        answers = llm.run([request()])
    assert answers == [Answer(c1=1)] and stub.requests == 2  # a proxy's error page is a transient failure


def test_answers_before_a_fatal_error_are_kept_and_a_rerun_pays_only_the_rest(store):
    with OpenAIStub(ok, fail=lambda n: Fault(401, "key revoked") if n > 3 else None) as stub:
        llm = client(stub.base_url, store, max_concurrency=1)
        with pytest.raises(LLMAuthenticationError):
            llm.run([request(f"q{i}") for i in range(6)])
    assert store.count("llm_cache") == 3
    with OpenAIStub(ok) as stub:
        assert client(stub.base_url, store).run([request(f"q{i}") for i in range(6)]) == [Answer(c1=1)] * 6
    assert stub.requests == 3


def test_choice_answers_read_probabilities_from_token_logprobs(store):
    with OpenAIStub(lambda messages: json.dumps({"Yes": 0.6, "no": 0.3, "maybe": 0.1})) as stub:
        [choice] = client(stub.base_url, store).run([choice_request("probe", (("user", "Is it?"),), ("yes", "no"))])
    assert choice is not None and choice.probabilities["yes"] == pytest.approx(0.6 / 0.9)
    body = stub.bodies[0]
    assert body["logprobs"] is True and body["top_logprobs"] >= 5 and "response_format" not in body


def test_an_endpoint_without_logprobs_says_to_use_another_representation(store):
    refusal = "logprobs are not supported for this model"
    with (
        OpenAIStub(ok, fail=lambda n: Fault(400, refusal)) as stub,
        pytest.raises(LLMBadRequestError, match="--representation comp"),
    ):
        client(stub.base_url, store).run([choice_request("probe", (("user", "Is it?"),), ("yes", "no"))])


# -- the command line --------------------------------------------------------------------------------
runner = CliRunner()


@pytest.fixture
def demo_db(tmp_path):
    from tools.demo_data import DEMO_MECHANISMS, demo_pairs

    db = tmp_path / "demo.db"
    with ConceptStore(db) as store:
        store.add_labeled_pairs(demo_pairs(4), DEMO_MECHANISMS)
    return db


@pytest.fixture
def with_a_concept(demo_db):
    from tools.concepts import Concept

    with ConceptStore(demo_db, create=False) as store:
        store.add_concept(Concept(name="Warmth", definition="A high score indicates a warm tone."))
    return demo_db


def test_annotate_and_discover_exit_non_zero_with_the_endpoints_message(with_a_concept, monkeypatch):
    demo_db = with_a_concept
    with OpenAIStub(pipeline_responder, fail=lambda n: Fault(401, "Incorrect API key provided")) as stub:
        monkeypatch.setenv("WHYPREF_BASE_URL", stub.base_url)
        monkeypatch.setenv("WHYPREF_MODEL", "stub-model")
        for command in (["annotate", "--db", str(demo_db)], ["discover", "--db", str(demo_db), "--batches", "1"]):
            started = time.monotonic()
            result = runner.invoke(app, command)
            assert result.exit_code != 0 and "Incorrect API key provided" in str(result.exception)
            assert time.monotonic() - started < 10
    with ConceptStore(demo_db, create=False) as store:
        assert not [c for c in store.concepts() if c.kind.value in ("llm", "generic")]  # nothing pretended
        assert not any(c == "warmth" for c in store.value_counts())  # no value made up either


def test_discover_stores_nothing_when_no_answer_fits(demo_db, monkeypatch):
    with OpenAIStub(lambda messages: "I cannot answer that.") as stub:
        monkeypatch.setenv("WHYPREF_BASE_URL", stub.base_url)
        monkeypatch.setenv("WHYPREF_MODEL", "stub-model")
        result = runner.invoke(app, ["discover", "--db", str(demo_db), "--batches", "1"])
    assert result.exit_code != 0 and "fit its schema" in str(result.exception) and "I cannot" in str(result.exception)
    with ConceptStore(demo_db, create=False) as store:
        assert store.concepts() == []


def test_openai_base_url_is_honoured(demo_db, monkeypatch):
    with OpenAIStub(pipeline_responder) as stub:
        monkeypatch.delenv("WHYPREF_BASE_URL", raising=False)
        monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("WHYPREF_MODEL", "stub-model")
        result = runner.invoke(app, ["discover", "--db", str(demo_db), "--batches", "1"])
    assert result.exit_code == 0, result.output
    assert stub.requests > 0 and "embedded" not in result.output.lower()


def test_the_cache_is_keyed_by_the_model_not_by_where_it_is_served(store, monkeypatch):
    from tools.settings import Settings

    monkeypatch.setenv("WHYPREF_MODEL", "stub-model")
    with OpenAIStub(ok) as first:
        monkeypatch.setenv("WHYPREF_BASE_URL", first.base_url)
        LLM.from_settings(Settings(), store).run([request("a")])
    with OpenAIStub(ok) as moved:  # the same model on another port
        monkeypatch.setenv("WHYPREF_BASE_URL", moved.base_url)
        llm = LLM.from_settings(Settings(), store)
        assert llm.run([request("a")]) == [Answer(c1=1)] and moved.requests == 0
        assert llm.name == "stub-model" and moved.base_url in llm.endpoint
        monkeypatch.setenv("WHYPREF_MODEL_LABEL", "stub-model-v2")  # another model under the same name
        assert LLM.from_settings(Settings(), store).run([request("a")]) == [Answer(c1=1)] and moved.requests == 1


def test_several_endpoints_take_calls_in_turn_and_a_failing_one_is_retried_on_another(store, monkeypatch):
    from tools.settings import Settings

    monkeypatch.setenv("WHYPREF_MODEL", "stub-model")
    monkeypatch.setenv("WHYPREF_MAX_RETRIES", "3")
    down = lambda n: Fault(503, "overloaded")  # noqa: E731
    with OpenAIStub(ok) as first, OpenAIStub(ok) as second, OpenAIStub(ok, fail=down) as failing:
        monkeypatch.setenv("WHYPREF_BASE_URL", f"{first.base_url}, {second.base_url}")
        llm = LLM.from_settings(Settings(), store)
        assert llm.run([request(f"q{i}") for i in range(10)]) == [Answer(c1=1)] * 10
        assert first.requests == second.requests == 5 and first.base_url in llm.endpoint
        monkeypatch.setenv("WHYPREF_BASE_URL", f"{failing.base_url},{second.base_url}")
        llm = LLM.from_settings(Settings(), store)
        answers = llm.run([request(f"r{i}") for i in range(6)])
        assert answers == [Answer(c1=1)] * 6 and failing.requests > 0 and second.requests == 5 + 6
        monkeypatch.setenv("WHYPREF_BASE_URL", first.base_url)  # one of them alone: the cache is the model's
        assert LLM.from_settings(Settings(), store).run([request("q0"), request("r0")]) == [Answer(c1=1)] * 2
        assert first.requests == 5


def test_a_configuration_error_names_the_endpoint_that_gave_it(store, monkeypatch):
    from tools.settings import Settings

    monkeypatch.setenv("WHYPREF_MODEL", "stub-model")
    refused = lambda n: Fault(401, "Incorrect API key provided")  # noqa: E731
    with OpenAIStub(ok) as good, OpenAIStub(ok, fail=refused) as bad:
        monkeypatch.setenv("WHYPREF_BASE_URL", f"{good.base_url},{bad.base_url}")
        with pytest.raises(LLMAuthenticationError) as caught:
            LLM.from_settings(Settings(), store).run([request("a"), request("b")])
    assert caught.value.endpoint == bad.base_url and "Incorrect API key" in str(caught.value)


def test_an_answer_cut_at_its_token_limit_is_asked_again_not_a_crash(store):
    """The SDK refuses a structured answer that stopped at max_tokens (LengthFinishReasonError): whypref
    re-asks, saying the answer was cut, and takes the next one."""
    cut = {
        "id": "chatcmpl-cut",
        "object": "chat.completion",
        "created": 0,
        "model": "stub",
        "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": '{"c1'}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
    }
    with OpenAIStub(ok, fail=lambda n: Fault(raw=json.dumps(cut)) if n == 1 else None) as stub:
        llm = client(stub.base_url, store)
        assert llm.run([request()]) == [Answer(c1=1)]
    assert stub.requests == 2 and "cut off at the length limit" in stub.bodies[1]["messages"][-1]["content"]
    assert stub.bodies[1]["messages"][-2] == {"role": "assistant", "content": '{"c1'}
    assert llm.usage.stage("compare").completion_tokens == 20 + 5  # the cut answer's tokens count too
