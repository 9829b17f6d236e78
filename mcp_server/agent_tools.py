"""The ``run_agent`` tool: the discovery agent under a budget, with its rounds reported as progress.

It runs on the tool's worker thread (the library drives its own asyncio loop for LLM calls) and relays
the agent's streamed events to the client as MCP progress. Human approval is a terminal feature; here
drops and merges follow the held-out rule alone. Annotations are evaluated at import (the SDK reads them).
"""

import time
from typing import Annotated, Any

import anyio.from_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from agent.config import AgentConfig
from agent.events import AgentEvent
from agent.graph import AgentResult, resume_run, sqlite_checkpointer, start_run
from mcp_server.arguments import DomainName, MechanismName, SourceName
from mcp_server.errors import readable_errors
from mcp_server.limits import heavy
from mcp_server.workspace import workspace_of
from tools.cancellation import checkpoint

_LLM_WORK = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)
_INTERVAL = 0.1  # seconds between two LLM-stage reports, at most


class DecisionSummary(BaseModel):
    iteration: int
    concept_id: str
    action: str = Field(description="added, kept, merged, dropped or rejected.")
    reason: str


class AgentOutcome(BaseModel):
    result: AgentResult = Field(description="Where the run ended: its concept set, held-out accuracy, spending.")
    decisions: list[DecisionSummary] = Field(description="Why each concept was added, kept, merged, dropped, rejected.")


class AgentProgress:
    """Agent events as MCP progress: one step per event (so it always increases), LLM stages throttled."""

    def __init__(self, ctx: Context[Any, Any]) -> None:
        self._ctx, self._count, self._last = ctx, 0, float("-inf")

    def __call__(self, event: AgentEvent) -> None:
        checkpoint()  # a cancelled or disconnected run stops between two steps, resumable
        now = time.monotonic()
        if event.kind == "llm" and event.done != event.total and now - self._last < _INTERVAL:
            return
        self._count += 1
        self._last = now
        if event.kind == "llm":
            message = f"round {event.iteration} {event.node}: {event.done}/{event.total}"
        else:
            message = f"round {event.iteration} {event.node}: {event.message} ({event.calls} calls spent)"
        anyio.from_thread.run(self._ctx.report_progress, self._count, None, message)


def register(server: MCPServer[Any]) -> None:
    @server.tool(annotations=_LLM_WORK)
    @heavy
    @readable_errors(ToolError)
    def run_agent(
        ctx: Context,
        budget_calls: Annotated[
            int, Field(ge=1, le=1_000_000, description="LLM calls the run may spend at most (re-asks included).")
        ],
        mechanism: MechanismName = "human",
        domains: Annotated[tuple[DomainName, ...], Field(max_length=100, description="Only these domains.")] = (),
        source: SourceName | None = None,
        budget_tokens: Annotated[int | None, Field(ge=1, description="LLM tokens at most (estimated ahead).")] = None,
        iterations: Annotated[int, Field(ge=1, le=50, description="Rounds at most.")] = 5,
        patience: Annotated[int, Field(ge=1, le=20, description="Stop after this many rounds without gain.")] = 2,
        pairs_per_domain: Annotated[int, Field(ge=4, le=10_000, description="Pairs sampled per domain.")] = 200,
        batches: Annotated[int, Field(ge=1, le=100, description="Batches of error pairs shown per round.")] = 6,
        resume_run_id: Annotated[
            str | None,
            Field(
                pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Continue this killed run instead (its options hold)."
            ),
        ] = None,
    ) -> AgentOutcome:
        """Improve the store's concept set for a mechanism, round by round, under a budget of LLM calls:
        propose concepts from the pairs the regression gets wrong (more where held-out accuracy is lowest),
        annotate them, refit, drop concepts never weighted across CV folds, flipping with the order or
        duplicating another, and keep a change only if held-out accuracy (in-domain and out-of-domain) does
        not fall. Concepts it turns away are deleted from the store; every decision is returned with its
        reason. Needs an LLM endpoint."""
        workspace = workspace_of(ctx)
        progress = AgentProgress(ctx)
        with workspace.store() as store, sqlite_checkpointer(workspace.settings.db) as saver:
            llm = workspace.llm(store)
            if resume_run_id is not None:
                result = resume_run(store, llm, resume_run_id, saver, on_event=progress)
            else:
                config = AgentConfig(
                    mechanism=mechanism,
                    domains=list(domains),
                    source=source,
                    pairs_per_domain=pairs_per_domain,
                    max_calls=budget_calls,
                    max_tokens=budget_tokens,
                    max_iterations=iterations,
                    patience=patience,
                    batches_per_iteration=batches,
                )
                result = start_run(store, llm, config, saver, on_event=progress)
            decisions = [
                DecisionSummary(iteration=d.iteration, concept_id=d.concept_id, action=d.action, reason=d.reason)
                for d in store.decisions(result.run_id)
            ]
        return AgentOutcome(result=result, decisions=decisions)
