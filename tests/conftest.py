"""Shared fixtures. The real preference data is read in place from ../shared/data/raw (never copied)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
