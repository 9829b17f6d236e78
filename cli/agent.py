"""``whypref agent``: run, resume and read the discovery agent, with a live table of its rounds."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from cli.console import add_columns, console
from cli.options import DEFAULT_DB, DbOption, SourceOption
from tools.store import ConceptStore

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agent.events import AgentEvent
    from agent.graph import AgentResult

agent_app = typer.Typer(
    help="The discovery agent: propose concepts from the model's errors, keep what raises held-out accuracy.",
    no_args_is_help=True,
)
RunId = Annotated[str, typer.Argument(help="The run's id (printed when it starts).")]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _rounds_table(title: str) -> Table:
    columns = ("round", "concepts", "added", "dropped/merged", "rejected", "in-domain %", "OOD %", "calls", "tokens")
    return add_columns(Table(title=title), columns, text=("added", "dropped/merged"))


class AgentDisplay:
    """A live view of a run: one row per finished round, the current LLM stage's bar, the last event."""

    def __init__(self) -> None:
        self.rounds = _rounds_table("Agent rounds")
        self.bar: tuple[str, int, int] | None = None
        self.status = Text("starting...")
        self.live = Live(self._render(), console=console, refresh_per_second=8, transient=False)

    def _render(self) -> Group:
        parts: list[Any] = [self.rounds]
        if self.bar is not None:
            stage, done, total = self.bar
            parts += [Text(f"{stage}: {done}/{total}"), ProgressBar(total=max(total, 1), completed=done, width=60)]
        return Group(*parts, self.status)

    def __call__(self, event: AgentEvent) -> None:
        if event.kind == "llm":
            self.bar = (event.node, event.done or 0, event.total or 0)
        else:
            self.bar = None
            self.status = Text(
                f"round {event.iteration} · {event.node} · {event.message or ''} · "
                f"{event.calls} calls, {event.tokens:,} tokens"
            )
        if event.node == "decide":
            self.rounds.add_row(
                str(event.iteration),
                str(event.concepts),
                ", ".join(event.added) or "-",
                ", ".join(event.dropped) or "-",
                str(len(event.rejected)),
                _pct(event.in_domain),
                _pct(event.ood),
                str(event.calls),
                f"{event.tokens:,}",
            )
        self.live.update(self._render())

    @contextmanager
    def paused(self) -> Iterator[None]:
        self.live.stop()
        try:
            yield
        finally:
            self.live.start()


def _asker(display: AgentDisplay):
    def ask(payload: dict[str, Any]) -> bool:
        with display.paused():
            console.print(f"Round {payload['iteration']}: the agent proposes to drop or merge:")
            for change in payload["changes"]:
                into = f" into {change['into']}" if change.get("into") else ""
                console.print(f"  {change['action']} {change['concept_id']}{into}: {change['reason']}", highlight=False)
            return typer.confirm("Approve?", default=True)

    return ask


def _print_result(result: AgentResult) -> None:
    console.print(
        f"Run {result.run_id}: {result.status}"
        + (f" ({result.stop_reason})" if result.stop_reason else "")
        + f"; {len(result.concepts)} concepts, held-out in-domain {_pct(result.in_domain)}%, "
        f"out-of-domain {_pct(result.ood)}%; {result.calls} LLM calls, {result.tokens:,} tokens.",
        highlight=False,
    )
    if result.pending_approval is not None:
        console.print(f"Waiting for approval: `whypref agent resume {result.run_id} --approve` (or --reject).")


@agent_app.command("run")
def run_command(
    db: DbOption = DEFAULT_DB,
    mechanism: Annotated[str, typer.Option("--mechanism", "-m", help="Whose choices to explain.")] = "human",
    budget_calls: Annotated[int, typer.Option(min=0, help="LLM calls at most (re-asks included).")] = 500,
    budget_tokens: Annotated[int | None, typer.Option(min=0, help="LLM tokens at most (estimated ahead).")] = None,
    iterations: Annotated[int, typer.Option(min=1, help="Rounds at most.")] = 5,
    minutes: Annotated[float | None, typer.Option(min=0, help="Wall time at most (this invocation).")] = None,
    patience: Annotated[int, typer.Option(min=1, help="Stop after this many rounds without held-out gain.")] = 2,
    domain: Annotated[list[str], typer.Option(help="Only these domains (repeatable).")] = [],  # noqa: B006
    source: SourceOption = None,
    pairs_per_domain: Annotated[int, typer.Option(min=4, help="Pairs sampled per domain.")] = 200,
    batches: Annotated[int, typer.Option(min=1, help="Batches of error pairs shown to the LLM per round.")] = 6,
    measured: Annotated[bool, typer.Option(help="Start from the free, code-measured concepts.")] = True,
    approve: Annotated[bool, typer.Option(help="Ask before dropping or merging kept concepts.")] = False,
    seed: int = 0,
    run_id: Annotated[str | None, typer.Option(help="Id of the run (default: a new random one).")] = None,
) -> None:
    """Improve the store's concept set for a mechanism, round by round, under a budget. Proposes concepts
    from the pairs the regression gets wrong, annotates them, and keeps a change only if held-out accuracy
    (in-domain and out-of-domain) does not fall. Concepts it turns away are deleted from the store; the
    reasons (with each concept as it was) are kept: see `whypref agent history`."""
    from agent.config import AgentConfig
    from agent.graph import new_run_id, sqlite_checkpointer, start_run
    from cli.concepts import make_llm

    config = AgentConfig(
        mechanism=mechanism,
        domains=domain,
        source=source,
        pairs_per_domain=pairs_per_domain,
        max_calls=budget_calls,
        max_tokens=budget_tokens,
        max_iterations=iterations,
        max_seconds=None if minutes is None else 60 * minutes,
        patience=patience,
        batches_per_iteration=batches,
        measured=measured,
        approve=approve,
        seed=seed,
    )
    run_id = run_id or new_run_id()
    with ConceptStore(db, create=False) as store, sqlite_checkpointer(db) as saver:
        llm = make_llm(store)
        console.print(f"Agent run {run_id} (resume with `whypref agent resume {run_id}`)")
        display = AgentDisplay()
        with display.live:
            result = start_run(store, llm, config, saver, run_id=run_id, on_event=display, approver=_asker(display))
    _print_result(result)


@agent_app.command("resume")
def resume_command(
    run_id: RunId,
    db: DbOption = DEFAULT_DB,
    approve: Annotated[
        bool | None, typer.Option("--approve/--reject", help="Answer a pending approval (default: ask).")
    ] = None,
) -> None:
    """Continue a run that was killed (or waits for approval) where it stopped; answers already paid
    for come from the store's cache."""
    from agent.graph import resume_run, sqlite_checkpointer
    from cli.concepts import make_llm

    with ConceptStore(db, create=False) as store, sqlite_checkpointer(db) as saver:
        llm = make_llm(store)
        display = AgentDisplay()
        approver = _asker(display) if approve is None else (lambda payload: approve)
        with display.live:
            result = resume_run(store, llm, run_id, saver, on_event=display, approver=approver)
    _print_result(result)


@agent_app.command("history")
def history_command(run_id: RunId, db: DbOption = DEFAULT_DB) -> None:
    """Per-round metrics of a run and why each concept was added, kept, merged, dropped or rejected."""
    from agent.graph import history, sqlite_checkpointer

    with ConceptStore(db, create=False) as store, sqlite_checkpointer(db) as saver:
        result, decisions = history(store, run_id, saver)
    table = _rounds_table(f"Run {run_id}")
    for r in result.history:
        table.add_row(
            str(r.iteration),
            str(r.concepts),
            ", ".join(r.added) or "-",
            ", ".join(r.dropped + r.merged) or "-",
            str(len(r.rejected)),
            _pct(r.in_domain),
            _pct(r.ood),
            str(r.calls),
            f"{r.tokens:,}",
        )
    console.print(table)
    changes = Table(title="Concept decisions")
    for column in ("round", "concept", "action", "reason"):
        changes.add_column(column)
    for d in decisions:
        changes.add_row(str(d.iteration), d.concept_id, d.action, d.reason)
    console.print(changes)
    _print_result(result)


def register(app: typer.Typer) -> None:
    app.add_typer(agent_app, name="agent")
