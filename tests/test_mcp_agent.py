"""run_agent through the MCP server and `whypref agent` on the command line, against an OpenAI-compatible
server on 127.0.0.1 that answers like an LLM over planted data (PlantedOracle, tests/helpers.py)."""

import pytest
from mcp.client.client import Client
from typer.testing import CliRunner

from cli import app
from helpers import oracle, planted_store
from mcp_server.server import create_server
from mcp_server.settings import ServerSettings
from tools.store import ConceptStore
from tools.testing import OpenAIStub


@pytest.fixture
def planted_endpoint(monkeypatch):
    with OpenAIStub(oracle()) as stub:
        monkeypatch.setenv("WHYPREF_BASE_URL", stub.base_url)
        monkeypatch.setenv("WHYPREF_MODEL", "oracle")
        monkeypatch.setenv("WHYPREF_API_KEY", "test")
        yield stub


@pytest.fixture
def db(tmp_path):
    planted_store(tmp_path / "planted.db").close()
    return tmp_path / "planted.db"


@pytest.mark.anyio
async def test_run_agent_reports_progress_and_its_decisions(planted_endpoint, db):
    reports: list[tuple[float, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        reports.append((value, message))

    async with Client(create_server(ServerSettings(db=db))) as client:
        missing = await client.call_tool("run_agent", {"mechanism": "planted"})
        assert missing.is_error and "budget_calls" in missing.content[0].text  # the budget is required

        args = {"budget_calls": 2000, "mechanism": "planted", "iterations": 2, "pairs_per_domain": 40, "batches": 2}
        ran = await client.call_tool("run_agent", args, progress_callback=progress)
        assert not ran.is_error, ran.content
        result = ran.structured_content["result"]
        assert result["status"] == "finished" and len(result["history"]) == 2
        assert 0 < result["calls"] <= 2000 and result["calls"] == planted_endpoint.requests
        decisions = ran.structured_content["decisions"]
        assert decisions and all(d["reason"] for d in decisions)
        assert {d["action"] for d in decisions} >= {"kept"}  # the starting set, at least
        values = [value for value, _ in reports]
        assert values and all(b > a for a, b in zip(values, values[1:], strict=False))
        assert any("propose" in (message or "") for _, message in reports)

        wrong = await client.call_tool("run_agent", {"budget_calls": 10, "mechanism": "nobody"})
        assert wrong.is_error and "nobody" in wrong.content[0].text
        again = await client.call_tool("run_agent", {"budget_calls": 10, "resume_run_id": result["run_id"]})
        assert again.is_error and "has finished" in again.content[0].text


def test_agent_commands(planted_endpoint, db):
    runner = CliRunner()
    common = ["--db", str(db), "-m", "planted", "--no-measured", "--pairs-per-domain", "40", "--batches", "2"]
    ran = runner.invoke(app, ["agent", "run", *common, "--iterations", "2", "--budget-calls", "3000", "--run-id", "r1"])
    assert ran.exit_code == 0, ran.output
    assert "Run r1: finished (iterations: 2 done)" in ran.output and "Agent rounds" in ran.output
    shown = runner.invoke(app, ["agent", "history", "r1", "--db", str(db)])
    assert shown.exit_code == 0, shown.output
    assert "Concept decisions" in shown.output and "starting-noise-a" in shown.output
    with ConceptStore(db, create=False) as store:
        assert store.run("r1")["config"]["max_calls"] == 3000 and store.decisions("r1")
    tight = runner.invoke(app, ["agent", "run", *common, "--budget-calls", "5", "--run-id", "r2"])
    assert tight.exit_code == 0 and "call budget" in tight.output
    resumed = runner.invoke(app, ["agent", "resume", "r2", "--db", str(db)])
    assert resumed.exit_code == 1 and "has finished (call budget" in str(resumed.exception)
    unknown = runner.invoke(app, ["agent", "history", "nope", "--db", str(db)])
    assert unknown.exit_code == 1 and "no run 'nope'" in str(unknown.exception)
