"""The discovery agent's graph, and running, resuming and reading a run.

sample -> (annotate the starting set | propose) -> merge -> annotate -> fit -> validate -> approve ->
decide -> propose ... until a stop rule; then finish. A stage that could cross a budget sends the
graph straight to finish. State is checkpointed after every node in ``<store>.agent.sqlite`` (thread id
= run id), so a killed run resumes at the node it was in; that node's LLM answers are in the store's
cache, so nothing is paid twice.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StreamMode
from pydantic import BaseModel

from agent import nodes
from agent.budget import recording_usage
from agent.config import AgentConfig
from agent.events import AgentEvent
from agent.nodes import AgentContext
from agent.state import AgentState, IterationRecord
from tools.cancellation import OperationCancelled
from tools.errors import LLMError, WhyprefError
from tools.llm import LLM
from tools.store import ConceptDecision, ConceptStore

RUN_KIND = "agent"
Approver = Callable[[dict[str, Any]], bool]  # the interrupt's payload -> approve the drops?


class AgentResult(BaseModel):
    run_id: str
    status: str  # finished, or awaiting approval
    stop_reason: str | None
    iterations: int
    concepts: list[str]
    in_domain: float | None
    ood: float | None
    calls: int
    tokens: int
    history: list[IterationRecord]
    pending_approval: dict[str, Any] | None = None


Stage = Literal["propose", "merge", "annotate", "fit", "finish"]


def _after(next_node: Stage) -> Callable[[AgentState], Stage]:
    """Route to ``next_node``, or to finish once a node has set a stop reason."""

    def route(state: AgentState) -> Stage:
        return "finish" if state.get("stop_reason") else next_node

    return route


def _first(state: AgentState) -> Literal["annotate", "propose"]:
    """A starting set is annotated and scored first; no starting set: propose."""
    return "annotate" if state["concepts"] else "propose"


AgentGraph = CompiledStateGraph[AgentState, AgentContext, AgentState, AgentState]
_STREAM: list[StreamMode] = ["updates", "custom"]


def build_graph(checkpointer: BaseCheckpointSaver) -> AgentGraph:
    graph = StateGraph(AgentState, context_schema=AgentContext)
    stages = (nodes.sample, nodes.propose, nodes.merge, nodes.annotate, nodes.fit, nodes.validate, nodes.approve)
    for node in (*stages, nodes.decide, nodes.finish):
        graph.add_node(node)  # named after the function
    graph.add_edge(START, "sample")
    graph.add_conditional_edges("sample", _first, ["annotate", "propose"])
    graph.add_conditional_edges("propose", _after("merge"), ["merge", "finish"])
    graph.add_conditional_edges("merge", _after("annotate"), ["annotate", "finish"])
    graph.add_conditional_edges("annotate", _after("fit"), ["fit", "finish"])
    graph.add_edge("fit", "validate")
    graph.add_edge("validate", "approve")
    graph.add_edge("approve", "decide")
    graph.add_conditional_edges("decide", _after("propose"), ["propose", "finish"])
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer)


def checkpoint_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".agent.sqlite")


@contextmanager
def sqlite_checkpointer(store_path: Path) -> Iterator[SqliteSaver]:
    """The checkpoints of a store's agent runs, in their own SQLite file next to it."""
    with SqliteSaver.from_conn_string(str(checkpoint_path(store_path))) as saver:
        yield saver


def lock_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".agent.lock")


@contextmanager
def _only_run(store: ConceptStore, run_id: str) -> Iterator[None]:
    """Hold the store's agent lock: runs add and delete the store's concepts, so two at once would
    break each other. The OS releases the lock when the process dies, so a killed run never blocks."""
    with open(lock_path(store.path), "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another run"
            raise WhyprefError(
                f"{holder} is working on {store.path}; one agent run at a time per store: wait for it to finish, "
                f"then start or resume {run_id!r}"
            ) from None
        handle.truncate(0)
        handle.write(f"agent run {run_id!r} (process {os.getpid()})")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def new_run_id() -> str:
    return f"agent-{uuid.uuid4().hex[:10]}"


def _thread(run_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": run_id}}


def _drive(
    graph: AgentGraph,
    context: AgentContext,
    run_id: str,
    start: Any,
    on_event: Callable[[AgentEvent], None] | None,
    approver: Approver | None,
) -> AgentResult:
    """Stream the graph from ``start`` to its end, or to an approval nobody is there to give. An LLM
    error stops the run where it is, marked interrupted with the cause: `agent resume` goes on from there."""
    with (
        recording_usage(context.llm, context.store, run_id),
        _interrupted_on((LLMError, OperationCancelled), context.store, run_id),
    ):
        while True:
            pending = None
            stream = graph.stream(start, _thread(run_id), context=context, stream_mode=_STREAM)
            for mode, payload in cast(Iterator[tuple[str, dict[str, Any]]], stream):  # (mode, payload) per list mode
                if mode == "custom" and on_event is not None:
                    on_event(AgentEvent(**payload))
                elif mode == "updates" and "__interrupt__" in payload:
                    pending = payload["__interrupt__"][0].value
            if pending is None or approver is None:
                return result(graph, context.store, run_id)
            start = Command(resume=approver(pending))


@contextmanager
def _interrupted_on(
    kind: type[Exception] | tuple[type[Exception], ...], store: ConceptStore, run_id: str
) -> Iterator[None]:
    try:
        yield
    except kind as error:
        store.finish_run(run_id, "interrupted", {"error": str(error)})
        raise


def start_run(
    store: ConceptStore,
    llm: LLM,
    config: AgentConfig,
    checkpointer: BaseCheckpointSaver,
    *,
    run_id: str | None = None,
    on_event: Callable[[AgentEvent], None] | None = None,
    approver: Approver | None = None,
) -> AgentResult:
    """Run the agent on a store from the start; its record and options are kept under ``run_id``."""
    run_id = run_id or new_run_id()
    if store.has_run(run_id):
        raise WhyprefError(f"run {run_id!r} exists: resume it (`whypref agent resume {run_id}`) or pick another id")
    with _only_run(store, run_id):
        store.start_run(run_id, RUN_KIND, config.model_dump(mode="json"))
        context = AgentContext(store, llm, config)
        return _drive(build_graph(checkpointer), context, run_id, {"run_id": run_id}, on_event, approver)


def _agent_run(store: ConceptStore, run_id: str) -> dict[str, Any]:
    run = store.run(run_id)
    if run["kind"] != RUN_KIND:
        raise WhyprefError(f"run {run_id!r} is a {run['kind']} run, not an agent run")
    return run


def resume_run(
    store: ConceptStore,
    llm: LLM,
    run_id: str,
    checkpointer: BaseCheckpointSaver,
    *,
    on_event: Callable[[AgentEvent], None] | None = None,
    approver: Approver | None = None,
) -> AgentResult:
    """Continue a run that was killed or waits for approval, with the options it was started with."""
    run = _agent_run(store, run_id)
    if run["status"] == "finished":
        raise WhyprefError(f"run {run_id!r} has finished ({run['stats'].get('stop_reason')}); start a new one")
    graph = build_graph(checkpointer)
    snapshot = graph.get_state(_thread(run_id))
    if not snapshot.next and not snapshot.values:
        raise WhyprefError(
            f"run {run_id!r} has no checkpoint to resume from (was {checkpoint_path(store.path)} moved?)"
        )
    start: Any = None
    if snapshot.interrupts:
        if approver is None:
            raise WhyprefError(f"run {run_id!r} waits for approval of drops and merges: say whether to approve")
        start = Command(resume=approver(snapshot.interrupts[0].value))
    context = AgentContext(store, llm, AgentConfig(**run["config"]))
    with _only_run(store, run_id):
        return _drive(graph, context, run_id, start, on_event, approver)


def result(graph: AgentGraph, store: ConceptStore, run_id: str) -> AgentResult:
    """Where a run stands, from its checkpoint and its usage in the store."""
    snapshot = graph.get_state(_thread(run_id))
    values = snapshot.values
    current = values.get("current") or {}
    usage = store.run_usage(run_id)
    return AgentResult(
        run_id=run_id,
        status="awaiting approval" if snapshot.interrupts else "finished" if not snapshot.next else "stopped",
        stop_reason=values.get("stop_reason"),
        iterations=values.get("iteration", 0),
        concepts=values.get("concepts", []),
        in_domain=current.get("in_domain"),
        ood=current.get("ood"),
        calls=usage.calls,
        tokens=usage.tokens,
        history=[IterationRecord(**h) for h in values.get("history", [])],
        pending_approval=snapshot.interrupts[0].value if snapshot.interrupts else None,
    )


def history(
    store: ConceptStore, run_id: str, checkpointer: BaseCheckpointSaver
) -> tuple[AgentResult, list[ConceptDecision]]:
    """A run's per-iteration metrics and every concept decision it recorded."""
    _agent_run(store, run_id)
    return result(build_graph(checkpointer), store, run_id), store.decisions(run_id)
