"""Test doubles for LLMs, for whypref's tests and benchmarks and for users testing their own setup:
a scripted chat model (in process), an OpenAI-compatible HTTP server on 127.0.0.1 with latency and
scripted errors, and a deterministic responder that answers every whypref prompt."""

from __future__ import annotations

import json
import math
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

if TYPE_CHECKING:
    from tools.planted import PlantedData

Responder = Callable[[list[dict[str, str]]], str]  # messages as {"role", "content"} -> answer text


def _plain(messages: list[BaseMessage]) -> list[dict[str, str]]:
    roles = {"system": "system", "human": "user", "ai": "assistant"}
    return [{"role": roles[m.type], "content": str(m.content)} for m in messages]


class ScriptedChat(BaseChatModel):
    """A chat model whose answers come from a function of the conversation; it counts its calls."""

    responder: Any
    _calls: list[list[dict[str, str]]] = PrivateAttr(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def calls(self) -> list[list[dict[str, str]]]:
        return self._calls

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        plain = _plain(messages)
        with self._lock:
            self._calls.append(plain)
        text = self.responder(plain)
        usage = {"input_tokens": sum(len(m["content"]) // 4 for m in plain), "output_tokens": len(text) // 4}
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        metadata: dict[str, Any] = {}
        if kwargs.get("logprobs"):  # the responder gives {token: probability}, as the OpenAIStub reads it
            text, metadata["logprobs"] = _logprobs(text)
        message = AIMessage(content=text, usage_metadata=usage, response_metadata=metadata)  # type: ignore[arg-type]
        return ChatResult(generations=[ChatGeneration(message=message)])


@dataclass(frozen=True)
class Fault:
    """What the stub answers a request with instead of a normal answer: an HTTP error with the
    endpoint's own message and headers (e.g. ``Retry-After``), a hang of ``delay`` seconds first,
    or a 200 whose body is ``raw`` text (not JSON)."""

    status: int = 500
    message: str = "scripted failure"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: str | None = None


def _logprobs(text: str) -> tuple[str, dict[str, Any]]:
    """For a request asking for log-probabilities, the responder's text is ``{token: probability}``;
    the answer is the likeliest token, with the others as its top log-probabilities."""
    probabilities = json.loads(text)
    ranked = sorted(probabilities.items(), key=lambda item: -item[1])
    top = [{"token": t, "logprob": math.log(p) if p > 0 else -100.0, "bytes": list(t.encode())} for t, p in ranked]
    return ranked[0][0], {"content": [{**top[0], "top_logprobs": top}]}


def completion(body: dict[str, Any], responder: Responder, number: int) -> dict[str, Any]:
    """The chat completion an OpenAI-compatible endpoint returns for a request ``body``, the text from
    ``responder`` (token log-probabilities too when the request asks for them)."""
    text = responder(body["messages"])
    message: dict[str, Any] = {"role": "assistant", "content": text}
    choice: dict[str, Any] = {"index": 0, "finish_reason": "stop", "message": message}
    if body.get("logprobs"):
        message["content"], choice["logprobs"] = _logprobs(text)
    return {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [choice],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def run_batch_file(
    requests: Path,
    results: Path,
    responder: Responder,
    fail: Callable[[int], dict[str, Any] | None] | None = None,
) -> int:
    """Do what the OpenAI Batch API or ``vllm run-batch`` does with an input file: answer every request
    line with ``responder`` and write one result line per request (``fail(n)``, when it returns an
    error object, fails the n-th instead). Returns the number of results written."""
    written = 0
    with requests.open(encoding="utf-8") as lines, results.open("w", encoding="utf-8") as out:
        for number, raw in enumerate(lines, 1):
            request = json.loads(raw)
            error = fail(number) if fail is not None else None
            result: dict[str, Any] = {"id": f"batch_req_{number}", "custom_id": request["custom_id"], "error": error}
            if error is None:
                result["response"] = {"status_code": 200, "body": completion(request["body"], responder, number)}
            else:
                result["response"] = {"status_code": 500, "body": {"error": error}}
            out.write(json.dumps(result) + "\n")
            written += 1
    return written


class OpenAIStub:
    """An OpenAI-compatible /v1/chat/completions server on 127.0.0.1 with latency and scripted faults.

    ``fail(n)`` says how to answer the n-th request: None (normally), an HTTP status, or a
    :class:`Fault`; ``refuse(body)`` the same for what a request asks (e.g. a parameter the endpoint
    does not support). Every request body is kept in ``bodies``.
    """

    def __init__(
        self,
        responder: Responder,
        latency: float = 0.0,
        fail: Callable[[int], int | Fault | None] | None = None,
        refuse: Callable[[dict[str, Any]], Fault | None] | None = None,
    ):
        self.responder, self.latency, self.fail = responder, latency, fail or (lambda n: None)
        self.refuse = refuse or (lambda body: None)
        self.requests = 0
        self.errors = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like real endpoints: clients pool their connections

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                try:
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                except (ValueError, TypeError, ConnectionError):  # a client that gave up mid-request
                    self.close_connection = True
                    return
                with stub._lock:
                    stub.requests += 1
                    number = stub.requests
                    stub.bodies.append(body)
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    time.sleep(stub.latency)
                    fault = stub.fail(number) or stub.refuse(body)
                    if isinstance(fault, int):
                        fault = Fault(status=fault, headers={"retry-after-ms": "20"})
                    if fault is not None:
                        with stub._lock:
                            stub.errors += 1
                        time.sleep(fault.delay)
                        if fault.raw is not None:
                            self._send_text(200, fault.raw)
                        else:
                            payload = {"error": {"message": fault.message, "type": "invalid_request_error"}}
                            self._send(fault.status, payload, fault.headers)
                        return
                    self._send(200, completion(body, stub.responder, number))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout): nothing to answer
                finally:
                    with stub._lock:
                        stub.in_flight -= 1

            def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
                self._send_text(status, json.dumps(payload), headers)

            def _send_text(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> OpenAIStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> str:
    """The base URL of a port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _keys(text: str) -> list[str]:
    """Concept keys listed in a prompt ('c1: Name: definition' lines), with their names."""
    return [
        line.split(":")[0].strip()
        for line in text.splitlines()
        if line.strip()[:1] == "c" and ":" in line and line.split(":")[0].strip()[1:].isdigit()
    ]


def _names(text: str) -> dict[str, str]:
    return {
        line.split(":")[0].strip(): line.split(":")[1].strip()
        for line in text.splitlines()
        if line.strip()[:1] == "c" and ":" in line and line.split(":")[0].strip()[1:].isdigit()
    }


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0] if start in text else ""


def pipeline_responder(messages: list[dict[str, str]]) -> str:
    """A deterministic stand-in for an LLM across every whypref prompt.

    Proposals depend on what the batch shows (code blocks, doctor advice, lists); merges join names
    sharing 'Struct'; comparisons judge 'Structure' and 'Code Examples' from the texts (consistent
    under swapping) and always answer 1 for 'Engagement' (position bias, which the swap rule zeroes).
    Asked about one response (Prob-rep), P(yes) is 0.9 / 0.15 for those two by the text, 0.5 otherwise.
    """
    system, user = messages[0]["content"], messages[-1]["content"]
    if system.startswith("You organise"):
        return json.dumps({"subdomains": ["general"], "tasks": ["how-to"]})
    if system.startswith("You label"):
        n = user.count("\n[")
        return json.dumps({"tags": [{"index": i, "subdomain": "general", "task": "how-to"} for i in range(1, n + 2)]})
    if system.startswith("You study"):
        concepts = [
            {"name": "Structure", "description": "A good response is organised in steps."},
            {"name": "Engagement", "description": "A good response is engaging."},
        ]
        if "```" in user:
            concepts.append({"name": "Code Examples", "description": "A good response shows code."})
        if "doctor" in user:
            concepts.append({"name": "Safety Advice", "description": "A good response says when to see a doctor."})
        if "Rejected response" in user:
            concepts.append({"name": "Structured Steps", "description": "A good response lists numbered steps."})
        return json.dumps({"concepts": concepts})
    if system.startswith("You decide whether"):
        lines = user.splitlines()
        verdicts = []
        for n, line in enumerate(lines):
            if line.startswith("["):
                pair_text = line + lines[n + 1]  # '[i] "A": ...' then '    vs "B": ...'
                verdicts.append({"index": int(line[1 : line.index("]")]), "same": pair_text.count("Struct") >= 2})
        return json.dumps({"verdicts": verdicts})
    if system.startswith("You write precise"):
        n = sum(1 for line in user.splitlines() if line.startswith("["))
        return json.dumps(
            {
                "definitions": [
                    {
                        "index": i,
                        "definition": f"A high score indicates the response has property {i}; a low score, not.",
                    }
                    for i in range(1, n + 1)
                ]
            }
        )
    if system.startswith("You decide which"):
        names = _names(user)
        return json.dumps({key: name != "Creativity" for key, name in names.items()})
    if system.startswith("You compare"):
        first, second = _between(user, "Response 1:", "Response 2:"), _between(user, "Response 2:", "Concepts:")
        answers = {}
        for key, name in _names(user).items():
            if name == "Engagement":
                answers[key] = 1
            elif name in ("Structure", "Structured Steps"):
                answers[key] = _side("1. " in first, "1. " in second)
            elif name == "Code Examples":
                answers[key] = _side("```" in first, "```" in second)
            else:
                answers[key] = 0
        return json.dumps(answers)
    if system.startswith("You judge one property"):  # Prob-rep: the answer is {token: probability}
        response = _between(user, "Response:", "Property:")
        name = _between(user, "Property:", ".").strip()
        shows = {"Structure": "1. " in response, "Code Examples": "```" in response}.get(name)
        p_yes = 0.5 if shows is None else 0.9 if shows else 0.15
        return json.dumps({"yes": p_yes, "no": 1.0 - p_yes})
    if system.startswith("You rate"):
        response = _between(user, "Response:", "Concepts:")
        return json.dumps(
            {
                key: (7 if "1. " in response else 2) if name.startswith("Struct") else 4
                for key, name in _names(user).items()
            }
        )
    raise AssertionError(f"unexpected prompt: {system[:60]}")


def _side(first: bool, second: bool) -> int:
    return 1 if first and not second else 2 if second and not first else 0


def _concept_names(text: str) -> list[str]:
    """Names of the '- Name: definition' list after 'the following concepts' (judge and generate prompts)."""
    listed = text.split("following concepts", 1)[1] if "following concepts" in text else ""
    return [line[2:].split(":")[0].strip() for line in listed.splitlines() if line.startswith("- ")]


def application_responder(messages: list[dict[str, str]]) -> str:
    """A deterministic judge and generator for the applications (prompts judge.md and generate.md).

    The judge prefers the clearly longer response (twice as long or more), consistently in both orders;
    otherwise it answers 1, a position bias that the two orders turn into a tie. Told to consider
    only some concepts, it decides by 'List Formatting' (more numbered lines) if listed, else by
    'Length' (any difference). The generator writes a fixed paragraph, a numbered list of the concepts it is
    told to consider, and a long paragraph only when 'Length' is among them.
    """
    system, user = messages[0]["content"], messages[-1]["content"]
    if system.startswith("You are a fair judge"):
        first, second = _between(user, "Response 1:", "Response 2:"), user.split("Response 2:", 1)[1]
        for marker in ("Consider only", "Which response"):
            second = second.split(marker, 1)[0]
        names = _concept_names(user)
        la, lb = len(first.strip()), len(second.strip())
        if "List Formatting" in names:
            a, b = (len(re.findall(r"^\d+\. ", text, re.MULTILINE)) for text in (first, second))
        elif "Length" in names:
            a, b = la, lb
        else:
            a, b = int(la >= 2 * lb), int(lb >= 2 * la)
        verdict = 2 if b > a else 1
        answer: dict[str, object] = {"verdict": verdict}
        if '"reasoning"' in user:
            answer = {"reasoning": f"Response {verdict} is better.", **answer}
        return json.dumps(answer)
    if system.startswith("You are a helpful assistant"):
        names = _concept_names(user)
        text = "Here is my answer to the request, in plain words: do the simple thing first, then check that it worked."
        if names:
            text += "\n" + "\n".join(f"{i}. About {name.lower()}." for i, name in enumerate(names, 1))
        if "Length" in names:
            text += "\n" + "This part explains every step in much more detail, with background and examples. " * 3
        return json.dumps({"response": text})
    raise AssertionError(f"unexpected prompt: {system[:60]}")


class PlantedOracle:
    """A scripted LLM over planted data (``tools.design.store_planted``) for the discovery agent.

    Proposing, it names ``per_batch`` concepts from a fixed pool that interleaves the true concepts it
    knows (planted concept names) with distractors, skipping the names the prompt says are known.
    Comparing, it answers a true concept by its planted value, a distractor by a fixed pseudo-random
    value (consistent in both orders, unrelated to the labels), and a ``biased`` name always with 1
    (position bias, which the swap rule zeroes). Every concept is relevant; merges join equal names.
    """

    def __init__(
        self,
        data: PlantedData,
        known: Sequence[str],
        distractors: Sequence[str],
        biased: Sequence[str] = (),
        per_batch: int = 3,
    ) -> None:
        self.data, self.per_batch, self.biased = data, per_batch, set(biased)
        self.column = {name: j for j, name in enumerate(data.concept_names)}
        step = max(1, round(len(distractors) / max(1, len(known))))  # one true name, then distractors
        pool: list[str] = []
        fakes = [*distractors, *biased]
        for k, name in enumerate(known):
            pool += [name, *fakes[k * step : (k + 1) * step]]
        self.pool = pool + fakes[len(known) * step :]

    def __call__(self, messages: list[dict[str, str]]) -> str:
        system, user = messages[0]["content"], messages[-1]["content"]
        if system.startswith("You study"):
            avoid = {
                name.strip()
                for marker in ("common ones:", "every one of them:")
                for name in _between(user + "\n", marker, "\n").rstrip(".").split(",")
            }
            free = [name for name in self.pool if name not in avoid]
            # Where to start in the pool depends on the pairs shown, not on the names known: the measured
            # library growing by a concept must not change what a scripted run proposes.
            shown = re.sub(r"(?:common ones:|every one of them:)[^\n]*", "", user)
            start = zlib.crc32(shown.encode()) % max(1, len(free))
            names = (free[start:] + free[:start])[: self.per_batch]
            return json.dumps({"concepts": [{"name": n, "description": f"A good response shows {n}."} for n in names]})
        if system.startswith("You decide whether"):
            pairs = re.findall(r'^\[(\d+)\] "(.*?)":.*\n\s+vs "(.*?)":', user, re.MULTILINE)
            return json.dumps({"verdicts": [{"index": int(i), "same": a.lower() == b.lower()} for i, a, b in pairs]})
        if system.startswith("You write precise"):
            names = re.findall(r"^\[\d+\] (.*)$", user, re.MULTILINE)
            return json.dumps(
                {
                    "definitions": [
                        {"index": i, "definition": f"A high score indicates the response shows {n}; a low score, not."}
                        for i, n in enumerate(names, 1)
                    ]
                }
            )
        if system.startswith("You decide which"):
            return json.dumps(dict.fromkeys(_names(user), True))
        if system.startswith("You compare"):
            row = int(re.search(r"planted query (\d+)", user).group(1))  # type: ignore[union-attr]
            a_first = "Response 1: planted response A" in user
            return json.dumps({key: self._answer(name, row, a_first) for key, name in _names(user).items()})
        raise AssertionError(f"unexpected prompt: {system[:60]}")

    def _answer(self, name: str, row: int, a_first: bool) -> int:
        if name in self.biased:
            return 1
        if name in self.column:
            value = self.data.X[row, self.column[name]]
        else:
            draw = zlib.crc32(f"{name}/{row}".encode()) % 10
            value = -1 if draw < 3 else 1 if draw < 6 else 0
        if value == 0:
            return 0
        return 1 if (value > 0) == a_first else 2
