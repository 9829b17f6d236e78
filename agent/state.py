"""The graph state: ids and metrics only (concepts and their values live in the store)."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from pydantic import BaseModel


class IterationRecord(BaseModel):
    """One round, as ``whypref agent history`` shows it."""

    iteration: int
    concepts: int
    added: list[str]
    dropped: list[str]
    merged: list[str]
    rejected: list[str]
    in_domain: float
    ood: float | None
    cv_accuracy: float
    calls: int
    tokens: int


class AgentState(TypedDict, total=False):
    run_id: str
    iteration: int
    train_ids: list[str]  # pairs the regression is fitted on (and errors are proposed from)
    test_ids: list[str]  # held-out pairs every change is validated on
    concepts: list[str]  # the accepted concept set
    candidates: list[str]  # this round's new concepts: in the store, not accepted yet
    current: dict[str, Any] | None  # ConceptSetScore of the accepted set
    scored: dict[str, Any] | None  # ConceptSetScore of concepts + candidates
    plan: dict[str, Any] | None  # Plan: the change validate chose (and its fallback without drops)
    history: Annotated[list[dict[str, Any]], operator.add]  # IterationRecord per round
    stale: int  # rounds in a row without held-out gain
    stop_reason: str | None
