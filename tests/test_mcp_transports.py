"""The server as a process: `python -m mcp_server` (the `whypref mcp` command) over stdio with the SDK's
stdio client, stdout carrying nothing but protocol messages, and streamable HTTP on 127.0.0.1 with 50
simultaneous tool calls on one store."""

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import typer
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from typer.testing import CliRunner

from cli.mcp import register
from helpers import build_demo_store
from tools.measured import MEASURES
from tools.store import ConceptStore
from tools.workflows import explain_pair

SERVER = [sys.executable, "-m", "mcp_server"]


def test_the_command_registers_as_whypref_mcp(tmp_path):
    app = typer.Typer()
    app.callback()(lambda: None)  # a group, so the command keeps its name
    register(app)
    result = CliRunner().invoke(app, ["mcp", "--help"])
    assert result.exit_code == 0 and "--allow-dir" in result.output and "127.0.0.1" in result.output
    (tmp_path / "notes.db").write_text("not a database")
    refused = CliRunner().invoke(app, ["mcp", "--db", str(tmp_path / "notes.db")])
    message = " ".join(refused.output.replace("│", " ").split())  # unwrapped from typer's error box
    assert refused.exit_code == 2 and "Invalid value for --db" in message and "not a whypref store" in message


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A fitted demo store, built once; each server gets a copy of its own."""
    path = tmp_path_factory.mktemp("template") / "demo.db"
    build_demo_store(path)
    return path


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory, template) -> Path:
    return Path(shutil.copy(template, tmp_path_factory.mktemp("served") / "demo.db"))


@pytest.mark.anyio
async def test_stdio_with_the_sdk_client(demo_db, tmp_path):
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_server", "--db", str(demo_db), "--report-dir", str(tmp_path / "reports")],
        cwd=tmp_path,  # the host's working directory does not matter
    )
    async with Client(params) as client:
        assert client.server_info is not None and client.server_info.name == "whypref"
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"fit", "explain", "import_pairs"} <= tools
        fitted = await client.call_tool("fit", {"mechanism": "human", "ood_repeats": 0})
        assert not fitted.is_error and fitted.structured_content["pairs"] == 24
        explained = await client.call_tool("explain", {"mechanism": "human", "top_k": 2})
        assert explained.structured_content["global_explanation"]["model_id"] == fitted.structured_content["model_id"]
        refused = await client.call_tool("import_pairs", {"path": "/etc/passwd"})
        assert refused.is_error and "reads no files" in refused.content[0].text
        concept = await client.read_resource("concepts://length")
        assert json.loads(concept.contents[0].text)["concept"]["name"] == "Length"
    assert (tmp_path / "reports").is_dir()


def test_stdout_carries_only_protocol_messages(demo_db, tmp_path):
    """Raw JSON-RPC over the pipes, including calls whose library code warns and logs (to stderr)."""
    requests = [
        {"method": "tools/call", "params": {"name": "fit", "arguments": {"mechanism": "judge-verbose"}}},
        {"method": "tools/call", "params": {"name": "explain", "arguments": {"mechanism": "nobody"}}},
        {"method": "resources/read", "params": {"uri": "whypref://models"}},
    ]
    with (tmp_path / "stderr").open("w") as stderr:
        process = subprocess.Popen(
            [*SERVER, "--db", str(demo_db), "--report-dir", str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        lines: list[str] = []
        try:
            send(process, 0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {}})
            lines += read_until(process, 0)
            assert process.stdin is not None
            process.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
            for number, request in enumerate(requests, 1):
                send(process, number, request["method"], request["params"])
                lines += read_until(process, number)
        finally:
            process.terminate()
            process.wait(timeout=10)
    messages = [json.loads(line) for line in lines]  # every line parses: nothing else was printed
    assert all(message["jsonrpc"] == "2.0" for message in messages)
    answers = {message["id"]: message for message in messages if "id" in message}
    assert answers[1]["result"]["structuredContent"]["pairs"] == 16
    assert (
        answers[2]["result"]["isError"] and "no fitted model for 'nobody'" in answers[2]["result"]["content"][0]["text"]
    )
    assert "judge-verbose" in answers[3]["result"]["contents"][0]["text"]
    assert "Tool 'explain' failed" in (tmp_path / "stderr").read_text()  # logs went to stderr


def send(process: subprocess.Popen, number: int, method: str, params: dict[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write(json.dumps({"jsonrpc": "2.0", "id": number, "method": method, "params": params}) + "\n")
    process.stdin.flush()


def read_until(process: subprocess.Popen, number: int, timeout: float = 30) -> list[str]:
    """Lines from the server's stdout up to (and with) the response to request ``number``."""
    assert process.stdout is not None
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], deadline - time.monotonic())
        if not ready:
            break
        line = process.stdout.readline()
        assert line, "the server closed its stdout"
        lines.append(line)
        if json.loads(line).get("id") == number:
            return lines
    raise AssertionError(f"no response to request {number} within {timeout} s")


# -- streamable HTTP --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served(db: Path, log: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[int]:
    """A server process over ``db`` with these extra arguments, until the block ends: its port."""
    port = free_port()
    with log.open("w") as stderr:
        command = [*SERVER, "--db", str(db), "--http", "--port", str(port), *args]
        process = subprocess.Popen(command, stdout=stderr, stderr=stderr, env=env)  # uvicorn logs on stdout
        try:
            deadline = time.monotonic() + 30
            while process.poll() is None and time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            assert process.poll() is None, log.read_text()
            yield port
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def http_server(tmp_path_factory, template) -> Iterator[tuple[str, Path, Path]]:
    """A server process on 127.0.0.1 over its own fitted store: (URL, store, log of its output)."""
    root = tmp_path_factory.mktemp("http")
    db, log = Path(shutil.copy(template, root / "demo.db")), root / "stderr"
    with served(db, log) as port:
        yield f"http://127.0.0.1:{port}/mcp", db, log


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def test_off_the_loopback_a_bearer_token_is_required(tmp_path):
    db = tmp_path / "s.db"
    ConceptStore(db).close()
    env = {k: v for k, v in os.environ.items() if k != "WHYPREF_MCP_TOKEN"}
    refused = subprocess.run(
        [*SERVER, "--db", str(db), "--http", "--host", "0.0.0.0"], capture_output=True, text=True, env=env
    )
    assert refused.returncode == 2 and "WHYPREF_MCP_TOKEN" in refused.stderr
    with served(db, tmp_path / "log", "--host", "0.0.0.0", env=env | {"WHYPREF_MCP_TOKEN": "s3cret"}) as port:
        url = f"http://127.0.0.1:{port}/mcp"
        accept = {"Accept": "application/json, text/event-stream"}

        def post(**headers: str) -> httpx.Response:
            return httpx.post(url, json=INITIALIZE, headers=accept | headers, timeout=10)

        assert post().status_code == 401 and "bearer token" in post().text
        assert post(Authorization="Bearer wrong").status_code == 401
        assert post(Authorization="Bearer s3cret", Origin="http://evil.example").status_code == 403
        ok = post(Authorization="Bearer s3cret", Host="whatever.example:80")
        assert ok.status_code == 200 and "whypref" in ok.text


@pytest.mark.anyio
async def test_streamable_http_on_the_loopback(http_server):
    url, db, log = http_server
    async with Client(url) as client:
        assert client.server_info is not None and client.server_info.name == "whypref"
        prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
        assert prompts == {"explain_disagreement", "judge_rewards"}
        compared = await client.call_tool("compare_mechanisms", {"reference": "human"})
        assert compared.structured_content["agreement"]["judge-verbose"] == pytest.approx(0.75)
    assert f"Uvicorn running on {url.removesuffix('/mcp')}" in log.read_text()  # bound to 127.0.0.1 by default


@pytest.mark.anyio
async def test_fifty_simultaneous_calls_on_one_store(http_server):
    url, db, _ = http_server
    with ConceptStore(db, create=False) as store:
        pair_ids = [pair.id for pair in store.pairs()][:10]
        expected_p_a = {p: explain_pair(store, "human", p).p_a for p in pair_ids}
        [human_model] = store.models(mechanism="human")
        counts = {table: store.count(table) for table in ("pairs", "labels", "concepts", "concept_values", "models")}

    calls: list[tuple[str, dict[str, Any]]] = (
        [("predict", {"mechanism": "human", "pair_id": p}) for p in pair_ids]
        + [("explain", {"mechanism": "human", "pair_id": p, "top_k": 3}) for p in pair_ids]
        + [("add_concept", {"name": f"Concurrent {i}", "definition": "A high score indicates ..."}) for i in range(10)]
        + [("list_concepts", {})] * 10
        + [("compare_mechanisms", {"top_k": 1})] * 5
        + [("fit", {"mechanism": "human", "ood_repeats": 0})] * 5
    )
    assert len(calls) == 50
    answers: list[Any] = [None] * len(calls)

    async def one(client: Client, index: int) -> None:
        tool, arguments = calls[index]
        answers[index] = await client.call_tool(tool, arguments)

    clients = [Client(url) for _ in range(5)]  # five sessions, ten calls each, all at once
    async with clients[0], clients[1], clients[2], clients[3], clients[4], anyio.create_task_group() as group:
        for index in range(len(calls)):
            group.start_soon(one, clients[index % 5], index)

    fitted: set[str] = set()
    for (tool, arguments), answer in zip(calls, answers, strict=True):
        assert not answer.is_error, (tool, answer.content)
        out = answer.structured_content
        if tool == "predict":
            assert out["p_a"] == pytest.approx(expected_p_a[arguments["pair_id"]])
        elif tool == "explain":
            assert out["pair"]["explanation"]["p_a"] == pytest.approx(expected_p_a[arguments["pair_id"]], abs=5e-3)
        elif tool == "add_concept":
            assert out["concept"]["name"] == arguments["name"]
        elif tool == "list_concepts":
            assert len(MEASURES) <= len(out["concepts"]) <= len(MEASURES) + 10
        elif tool == "compare_mechanisms":
            assert out["agreement"]["judge-verbose"] == pytest.approx(0.75)
        else:  # concepts added meanwhile are columns of zeros: another model id, the same accuracy
            fitted.add(out["model_id"])
            assert out["pairs"] == 24 and out["in_domain"]["scores"][0]["accuracy"] == pytest.approx(
                human_model.held_out.non_tie_accuracy, abs=0.05
            )

    with ConceptStore(db, create=False) as store:
        assert next(store.db.query("pragma integrity_check"))["integrity_check"] == "ok"
        after = {table: store.count(table) for table in counts}
        added = {c.id for c in store.concepts() if c.id.startswith("concurrent")}
    assert after == {
        **counts,
        "concepts": counts["concepts"] + 10,
        "models": counts["models"] + len(fitted - {human_model.id}),
    }
    assert added == {f"concurrent-{i}" for i in range(10)}
