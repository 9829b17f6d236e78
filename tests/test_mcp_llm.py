"""discover / annotate / inline explanations through the MCP server, against an OpenAI-compatible server
on 127.0.0.1 that answers every whypref prompt like an LLM (scripted), with progress reported."""

import pytest
from mcp.client.client import Client

from mcp_server.server import create_server
from mcp_server.settings import ServerSettings
from tools.demo_data import DEMO_MECHANISMS, demo_pairs
from tools.measured import MEASURES
from tools.store import ConceptStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(tmp_path) -> ServerSettings:
    with ConceptStore(tmp_path / "demo.db") as store:
        store.add_labeled_pairs(demo_pairs(4), DEMO_MECHANISMS)
    return ServerSettings(db=tmp_path / "demo.db")


class Progress:
    def __init__(self) -> None:
        self.reports: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.reports.append((progress, total, message))

    def check_increasing(self) -> None:
        values = [progress for progress, _, _ in self.reports]
        assert values and all(b > a for a, b in zip(values, values[1:], strict=False)), values


async def test_discover_annotate_fit_explain_with_an_llm(endpoint, settings):
    inline = {
        "query": "How do I boil an egg?",
        "response_a": "1. Boil water.\n2. Add the egg for seven minutes.\n3. Cool it in cold water.",
        "response_b": "Boil water, add the egg for seven minutes, then cool it.",
        "domain": "cooking",
    }
    async with Client(create_server(settings)) as client:
        dry = await client.call_tool("discover", {"batches": 1, "dry_run": True})
        assert not dry.is_error and dry.structured_content["estimate"]["propose"]["calls"] > 0
        assert dry.structured_content["result"] is None and endpoint.requests == 0  # a dry run spends nothing

        progress = Progress()
        discovered = await client.call_tool("discover", {"batches": 1}, progress_callback=progress)
        assert not discovered.is_error, discovered.content
        result = discovered.structured_content["result"]
        assert "structure" in result["concepts"] and result["batches"] == 3
        assert "stub-model" in discovered.structured_content["llm"]["model"]
        progress.check_increasing()
        assert {message.split(":")[0] for _, _, message in progress.reports} >= {"propose", "define"}

        progress = Progress()
        annotated = await client.call_tool("annotate", {}, progress_callback=progress)
        assert not annotated.is_error, annotated.content
        assert annotated.structured_content["result"]["values_written"] > 0
        assert annotated.structured_content["result"]["measured_values"] == 12 * len(MEASURES)
        progress.check_increasing()

        fitted = await client.call_tool("fit", {"mechanism": "human", "ood_repeats": 0})
        assert not fitted.is_error, fitted.content

        with ConceptStore(settings.db, create=False) as store:
            before, requests = store.content_digest(), endpoint.requests
        explained = await client.call_tool("explain", {"mechanism": "human", "pair": inline, "top_k": 40})
        assert not explained.is_error, explained.content
        pair = explained.structured_content["pair"]
        values = pair["explanation"]["values"]
        assert pair["unvalued_concepts"] == []  # LLM concepts valued on the fly
        assert values["Structure"] == 1.0 and values["Engagement"] == 0.0  # the swap rule zeroes position bias
        assert endpoint.requests > requests
        with ConceptStore(settings.db, create=False) as store:
            assert store.content_digest() == before  # nothing stored, not even the LLM cache


async def test_without_an_llm_inline_pairs_list_the_concepts_left_out(endpoint, settings, monkeypatch):
    async with Client(create_server(settings)) as client:
        await client.call_tool("discover", {"batches": 1})
        await client.call_tool("annotate", {})
        await client.call_tool("fit", {"mechanism": "human", "ood_repeats": 0})
    monkeypatch.delenv("WHYPREF_BASE_URL")
    requests = endpoint.requests
    pair = {"query": "q", "response_a": "1. one\n2. two", "response_b": "one, two", "domain": "cooking"}
    async with Client(create_server(settings)) as client:
        predicted = await client.call_tool("predict", {"mechanism": "human", "pair": pair})
    assert not predicted.is_error, predicted.content
    unvalued = predicted.structured_content["unvalued_concepts"]
    assert "Structure" in unvalued and "Length" not in unvalued and endpoint.requests == requests


async def test_a_cancelled_call_stops_spending(endpoint, settings, monkeypatch):
    """The client gives up on a long annotate: the server stops asking the endpoint within a call or so,
    and what was answered stays cached."""
    import anyio

    monkeypatch.setenv("WHYPREF_MAX_CONCURRENCY", "1")
    endpoint.latency = 0.5
    async with Client(create_server(settings)) as client:
        added = await client.call_tool("add_concept", {"name": "Warmth", "definition": "A high score: warm."})
        assert not added.is_error
        with anyio.move_on_after(2.0):
            await client.call_tool("annotate", {"relevance": False})  # 24 calls of 0.5 s: 12 s
        await anyio.sleep(1.5)  # the call in flight finishes, then the next checkpoint stops the work
        stopped_at = endpoint.requests
        await anyio.sleep(2.0)
        assert 1 <= stopped_at <= 6 and endpoint.requests == stopped_at
        with ConceptStore(settings.db) as store:
            assert store.count("llm_cache") >= stopped_at - 1  # answers received before the cancel are kept
