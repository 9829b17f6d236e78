"""Test doubles for LLMs, for whypref's tests and benchmarks and for users testing their own setup:
a scripted chat model (in process), an OpenAI-compatible HTTP server on 127.0.0.1 with latency and
scripted errors, and a deterministic responder that answers every whypref prompt."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

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
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text, usage_metadata=usage))])


class OpenAIStub:
    """An OpenAI-compatible /v1/chat/completions server on 127.0.0.1 with latency and scripted errors.

    ``fail(n)`` returns an HTTP status to answer the n-th request with (None: answer normally).
    """

    def __init__(self, responder: Responder, latency: float = 0.0, fail: Callable[[int], int | None] | None = None):
        self.responder, self.latency, self.fail = responder, latency, fail or (lambda n: None)
        self.requests = 0
        self.errors = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub._lock:
                    stub.requests += 1
                    number = stub.requests
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    time.sleep(stub.latency)
                    status = stub.fail(number)
                    if status is not None:
                        with stub._lock:
                            stub.errors += 1
                        self._send(
                            status,
                            {"error": {"message": "scripted failure", "type": "server_error"}},
                            {"retry-after-ms": "20"},
                        )
                        return
                    text = stub.responder(body["messages"])
                    self._send(
                        200,
                        {
                            "id": f"chatcmpl-{number}",
                            "object": "chat.completion",
                            "created": 0,
                            "model": body["model"],
                            "choices": [
                                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                            ],
                            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                        },
                    )
                finally:
                    with stub._lock:
                        stub.in_flight -= 1

            def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
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
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> OpenAIStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


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
