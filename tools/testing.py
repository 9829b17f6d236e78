"""Test doubles for LLMs, for whypref's tests and benchmarks and for users testing their own setup: a
chat model whose answers a function of the conversation gives (in process), an OpenAI-compatible HTTP
server on 127.0.0.1 with latency and scripted errors, and a stand-in that answers an OpenAI Batch API
file. Each takes a responder (messages -> answer text); responders that read whypref's own prompts are
test code (``tests/scripted.py``)."""

from __future__ import annotations

import email.policy
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

if TYPE_CHECKING:
    pass

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
        message = AIMessage(content=text, usage_metadata=usage, response_metadata=metadata)
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
    with requests.open(encoding="utf-8") as lines:
        answered = batch_results(lines, responder, fail)
    results.write_text("".join(line + "\n" for line in answered), encoding="utf-8")
    return len(answered)


def batch_results(
    lines: Iterable[str], responder: Responder, fail: Callable[[int], dict[str, Any] | None] | None = None
) -> list[str]:
    """The result lines of a batch's request lines (see :func:`run_batch_file`)."""
    answered = []
    for number, raw in enumerate(lines, 1):
        request = json.loads(raw)
        error = fail(number) if fail is not None else None
        result: dict[str, Any] = {"id": f"batch_req_{number}", "custom_id": request["custom_id"], "error": error}
        if error is None:
            result["response"] = {"status_code": 200, "body": completion(request["body"], responder, number)}
        else:
            result["response"] = {"status_code": 500, "body": {"error": error}}
        answered.append(json.dumps(result))
    return answered


class OpenAIStub:
    """An OpenAI-compatible /v1/chat/completions server on 127.0.0.1 with latency and scripted faults.

    ``fail(n)`` says how to answer the n-th request: None (normally), an HTTP status, or a
    :class:`Fault`; ``refuse(body)`` the same for what a request asks (e.g. a parameter the endpoint
    does not support). Every request body is kept in ``bodies``. It also offers the Batch API
    (``/v1/files``, ``/v1/batches``): a batch is answered by ``responder`` as it is created, and says
    it is in progress the first time it is asked about, completed after that.
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
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like real endpoints: clients pool their connections

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                parts = self.path.strip("/").split("/")  # v1 batches ID, or v1 files ID content
                if parts[1:2] == ["batches"] and parts[2] in stub.batches:
                    batch = stub.batches[parts[2]]
                    self._send(200, batch)
                    batch["status"] = "completed"  # asked once while "in progress"
                elif parts[1:2] == ["files"] and parts[2] in stub.files:
                    self._send_text(200, stub.files[parts[2]].decode())
                else:
                    self._send(404, {"error": {"message": f"no {self.path}", "type": "invalid_request_error"}})

            def do_POST(self) -> None:
                try:
                    raw = self.rfile.read(int(self.headers["Content-Length"]))
                    if self.path.endswith("/files"):
                        self._send(200, stub._keep_file(self.headers["Content-Type"], raw))
                        return
                    body = json.loads(raw)
                except (ValueError, TypeError, ConnectionError):  # a client that gave up mid-request
                    self.close_connection = True
                    return
                if self.path.endswith("/batches"):
                    self._send(200, stub._start_batch(body))
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
        # serve_forever checks for shutdown every poll_interval (0.5 s by default): every test would wait it.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def _keep_file(self, content_type: str, raw: bytes) -> dict[str, Any]:
        """An uploaded (multipart) file, kept under a new id."""
        form = BytesParser(policy=email.policy.default).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        upload = next(
            part for part in form.iter_parts() if part.get_param("name", header="content-disposition") == "file"
        )
        data = upload.get_payload(decode=True)
        assert isinstance(data, bytes)
        with self._lock:
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = data
        name = upload.get_filename() or "upload"
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": 0,
            "filename": name,
            "purpose": "batch",
            "status": "processed",
        }

    def _start_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        answered = batch_results(self.files[body["input_file_id"]].decode().splitlines(), self.responder)
        with self._lock:
            batch_id, output_id = f"batch_{len(self.batches) + 1}", f"file-{len(self.files) + 1}"
            self.files[output_id] = "".join(line + "\n" for line in answered).encode()
            counts = {"total": len(answered), "completed": len(answered), "failed": 0}
            self.batches[batch_id] = {
                "id": batch_id,
                "object": "batch",
                "endpoint": body["endpoint"],
                "input_file_id": body["input_file_id"],
                "completion_window": body["completion_window"],
                "created_at": 0,
                "status": "in_progress",
                "output_file_id": output_id,
                "request_counts": counts,
            }
        return self.batches[batch_id]

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
