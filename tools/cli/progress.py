"""A rich progress display for multi-stage LLM work: one bar per stage."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from tools.llm import Estimate, Usage


@contextmanager
def stage_progress(console: Console) -> Iterator[Callable[[str, int, int], None]]:
    """Yields a callback (stage, done, total); each round of calls of a stage gets its own bar."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        current: dict[str, TaskID] = {}
        rounds: Counter[str] = Counter()

        def update(stage: str, done: int, total: int) -> None:
            if done == 0:
                rounds[stage] += 1
                label = stage if rounds[stage] == 1 else f"{stage} ({rounds[stage]})"
                current[stage] = progress.add_task(label, total=total)
            progress.update(current[stage], completed=done)

        yield update


def print_estimate(console: Console, estimates: dict[str, Estimate], note: str = "") -> None:
    from tools.llm import Estimate

    table = Table(title="Dry run: what this would spend" + (f" ({note})" if note else ""))
    for column in ("stage", "calls", "cached", "prompt tokens", "completion tokens"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage, e in estimates.items():
        table.add_row(stage, str(e.calls), str(e.cached), f"{e.prompt_tokens:,}", f"{e.completion_tokens:,}")
    total = Estimate(
        calls=sum(e.calls for e in estimates.values()),
        cached=sum(e.cached for e in estimates.values()),
        prompt_tokens=sum(e.prompt_tokens for e in estimates.values()),
        completion_tokens=sum(e.completion_tokens for e in estimates.values()),
    )
    table.add_row(
        "total",
        str(total.calls),
        str(total.cached),
        f"{total.prompt_tokens:,}",
        f"{total.completion_tokens:,}",
        style="bold",
    )
    console.print(table)
    console.print("Tokens are estimates (about 4 characters a token). Nothing was spent.")


def print_cost(console: Console, usage: Usage, model_id: str) -> None:
    console.print(f"[bold]Cost:[/] {usage.line()} on {model_id}", highlight=False)
