"""Shared fixtures. The real preference data is read in place from ../shared/data/raw (never copied)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import pipeline_responder, served_endpoint
from tools.store import ConceptStore

RAW = Path(os.environ.get("WHYPREF_RAW_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"))


@pytest.fixture(scope="session")
def raw() -> Path:
    assert RAW.is_dir(), f"the shared raw data is expected at {RAW} (set WHYPREF_RAW_DATA)"
    return RAW


@pytest.fixture
def store(tmp_path: Path):
    with ConceptStore(tmp_path / "store.db") as s:
        yield s


@pytest.fixture
def endpoint(monkeypatch):
    """The endpoint answering every whypref prompt (discovery, annotation)."""
    with served_endpoint(monkeypatch, pipeline_responder) as stub:
        yield stub


@pytest.fixture
def demo_fitted(store):
    """The demo set with measured concepts, and HMDR fitted for humans and the length-loving judge."""
    from tools.annotation import Annotation, AnnotationConfig
    from tools.demo_data import DEMO_MECHANISMS, demo_pairs
    from tools.workflows import fit_mechanism

    items = demo_pairs(24)
    store.add_labeled_pairs(items, DEMO_MECHANISMS)
    Annotation(store, None, AnnotationConfig(llm_concepts=False)).run([i.pair for i in items])
    # Held-out accuracy is tested with the protocols; these tests need only the stored models.
    fit_mechanism(store, "human", evaluate=False)
    fit_mechanism(store, "judge-verbose", evaluate=False)
    return store


# The longest modules start first, so that the workers (pytest -n auto) finish about together (xdist's
# own order, by number of tests, is turned off in pyproject.toml: --no-loadscope-reorder).
LONGEST_FIRST = (  # measured module totals (`pytest --durations=0`), longest first
    "test_embedded_model.py",
    "test_workflows.py",
    "test_mcp_transports.py",
    "test_agent.py",
    "test_mcp_server.py",
    "test_llm_failures.py",
    "test_report.py",
    "test_demo_endpoint.py",
    "test_mcp_agent.py",
    "test_mining.py",
    "test_campaign.py",
    "test_judge.py",
    "test_mcp_llm.py",
    "test_public_api.py",
    "test_mcp_applications.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
