"""Progress events the nodes write to LangGraph's custom stream (``stream_mode="custom"``)."""

from __future__ import annotations

from typing import Literal

from langgraph.config import get_stream_writer
from pydantic import BaseModel


class AgentEvent(BaseModel):
    """What a node did (``kind="node"``), how far an LLM stage is (``"llm"``), or why the run stopped."""

    kind: Literal["node", "llm", "stop"]
    run_id: str
    iteration: int
    node: str
    message: str = ""
    added: list[str] = []
    dropped: list[str] = []  # dropped or merged
    rejected: list[str] = []
    in_domain: float | None = None
    ood: float | None = None
    concepts: int | None = None
    calls: int = 0  # LLM calls the run has spent so far (0 in llm events)
    tokens: int = 0
    done: int | None = None  # llm: requests answered in the stage
    total: int | None = None


def emit(event: AgentEvent) -> None:
    get_stream_writer()(event.model_dump())
