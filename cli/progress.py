"""A rich progress display for multi-stage LLM work: one bar per stage."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
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

from cli.console import add_columns
from tools.progress import Progress as ProgressCallback

if TYPE_CHECKING:
    from tools.llm import Estimate, Usage


@contextmanager
def stage_progress(console: Console) -> Iterator[ProgressCallback]:
    """Yields a callback (stage, done, total); each round of calls of a stage gets its own bar. When the
    output is not a terminal (CI, nohup, a pipe), plain lines instead, at most one per 10% or 30 s."""
    if not console.is_terminal:
        yield _plain_lines(console)
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<14}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        current: dict[str, TaskID] = {}
        rounds: Counter[str] = Counter()

        def update(stage: str, done: int, total: int | None) -> None:
            if done == 0:
                rounds[stage] += 1
                label = stage if rounds[stage] == 1 else f"{stage} ({rounds[stage]})"
                current[stage] = progress.add_task(label, total=total)
            progress.update(current[stage], completed=done)

        yield update


def print_estimate(console: Console, estimates: dict[str, Estimate], note: str = "") -> None:
    from tools.llm import Estimate

    table = Table(title="Dry run: what this would spend" + (f" ({note})" if note else ""))
    priced = all(e.usd is not None for e in estimates.values())
    add_columns(
        table,
        ("stage", "calls", "cached", "prompt tokens", "completion tokens", *(("USD",) if priced else ())),
        text=("stage",),
    )

    def money(e: Estimate) -> tuple[str, ...]:
        return (f"{e.usd:.4f}",) if priced and e.usd is not None else ()

    for stage, e in estimates.items():
        table.add_row(stage, str(e.calls), str(e.cached), f"{e.prompt_tokens:,}", f"{e.completion_tokens:,}", *money(e))
    total = Estimate(
        calls=sum(e.calls for e in estimates.values()),
        cached=sum(e.cached for e in estimates.values()),
        prompt_tokens=sum(e.prompt_tokens for e in estimates.values()),
        completion_tokens=sum(e.completion_tokens for e in estimates.values()),
        usd=sum(e.usd or 0.0 for e in estimates.values()) if priced else None,
    )
    table.add_row(
        "total",
        str(total.calls),
        str(total.cached),
        f"{total.prompt_tokens:,}",
        f"{total.completion_tokens:,}",
        *money(total),
        style="bold",
    )
    console.print(table)
    console.print(
        "Tokens are estimates (about 4 characters a token). Nothing was spent."
        + ("" if priced else " Set WHYPREF_PRICES for a cost in money.")
    )


def print_cost(console: Console, usage: Usage, llm_name: str) -> None:
    console.print(f"Cost: {usage.line()} on {llm_name}", highlight=False)


def _plain_lines(console: Console) -> ProgressCallback:
    started: dict[str, float] = {}
    shown: dict[str, tuple[float, int]] = {}

    def update(stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if done == 0:
            started[stage], shown[stage] = now, (now, 0)
            console.print(f"{stage}: {'?' if total is None else total} to do", highlight=False)
            return
        last_time, last_done = shown.get(stage, (now, 0))
        # Without a total, a line every 30 s only.
        tenth = total is not None and (done - last_done) * 10 >= max(total, 1)
        if done == total or now - last_time >= 30 or tenth:
            shown[stage] = (now, done)
            elapsed = now - started.get(stage, now)
            of = "" if total is None else f"/{total}"
            console.print(f"{stage}: {done}{of} ({elapsed:.0f} s)", highlight=False)

    return update
