"""The steer tool through the SDK's in-memory client: concepts without any LLM, a generated response with
an OpenAI-compatible endpoint on 127.0.0.1 (scripted), and readable errors."""

from pathlib import Path
from typing import Any

import pytest
from mcp.client.client import Client

from helpers import application_responder, served_endpoint
from mcp_server.server import create_server
from mcp_server.settings import ServerSettings
from tools.annotation import Annotation, AnnotationConfig
from tools.comparison import concept_weights
from tools.demo_data import DEMO_MECHANISMS, demo_pairs
from tools.steering import random_concepts, top_concepts
from tools.store import ConceptStore
from tools.workflows import fit_mechanism

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(tmp_path: Path, monkeypatch) -> ServerSettings:
    monkeypatch.delenv("WHYPREF_BASE_URL", raising=False)
    with ConceptStore(tmp_path / "demo.db") as store:
        items = demo_pairs(8)
        store.add_labeled_pairs(items, DEMO_MECHANISMS)
        Annotation(store, None, AnnotationConfig(llm_concepts=False)).run([i.pair for i in items])
        fit_mechanism(store, "judge-verbose")
    return ServerSettings(db=tmp_path / "demo.db", max_text_chars=500)


@pytest.fixture
def generator(monkeypatch):
    with served_endpoint(monkeypatch, application_responder) as stub:
        yield stub


async def steer(settings: ServerSettings, arguments: dict[str, Any], progress=None):
    async with Client(create_server(settings)) as client:
        return await client.call_tool("steer", arguments, progress_callback=progress)


async def test_steer_returns_the_judges_top_concepts_without_an_llm(settings):
    result = await steer(settings, {"mechanism": "judge-verbose", "domain": "coding", "k": 3})
    assert not result.is_error, result.content
    out = result.structured_content
    with ConceptStore(settings.db, create=False) as store:
        weights = concept_weights(store, "judge-verbose")
    expected = top_concepts(weights, "coding", 3)
    assert [c["concept"] for c in out["concepts"]] == [c.name for c in expected]
    assert out["concepts"][0]["definition"] == expected[0].definition
    lifts = [c["lift"] for c in out["concepts"]]
    assert lifts == sorted(lifts, reverse=True) and lifts[-1] > 0
    assert out["response"] is None and out["strategy"] == "explanation" and out["model_id"] == weights.model_id

    drawn = (
        await steer(
            settings, {"mechanism": "judge-verbose", "domain": "coding", "k": 3, "strategy": "random", "seed": 5}
        )
    ).structured_content
    assert [c["concept"] for c in drawn["concepts"]] == [c.name for c in random_concepts(weights, "coding", 3, 5)]


async def test_steer_generates_a_response_with_an_endpoint(settings, generator):
    reports = []

    async def progress(value, total, message):
        reports.append(message)

    arguments = {"mechanism": "judge-verbose", "domain": "health", "query": "How can I sleep better?", "generate": True}
    result = await steer(settings, arguments, progress)
    assert not result.is_error, result.content
    out = result.structured_content
    assert all(c["concept"].lower() in out["response"] for c in out["concepts"])
    assert generator.requests == 1 and reports and reports[-1].startswith("generate")
    again = await steer(settings, arguments)
    assert again.structured_content == out and generator.requests == 1  # cached in the store


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"mechanism": "judge-verbose", "domain": "coding", "query": "Hi?", "generate": True}, "no LLM endpoint"),
        ({"mechanism": "judge-verbose", "domain": "coding", "generate": True}, "needs the query"),
        ({"mechanism": "gpt-9", "domain": "coding"}, "unknown mechanism(s) gpt-9"),
        ({"mechanism": "human", "domain": "coding"}, "no fitted model for 'human'"),
        ({"mechanism": "judge-verbose", "domain": "coding", "k": 0}, "k"),
        ({"mechanism": "judge-verbose", "domain": "coding", "query": "x" * 501}, "query"),
    ],
)
async def test_steer_errors_are_readable(settings, arguments, message):
    result = await steer(settings, arguments)
    assert result.is_error and message in result.content[0].text
