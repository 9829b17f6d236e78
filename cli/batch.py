"""Batch files: ``whypref batch import RESULTS`` reads an OpenAI Batch API or ``vllm run-batch`` output
file into the store's cache (the requests come from any LLM command run with ``whypref --batch-out FILE``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.console import console, errors
from cli.options import DEFAULT_DB, DbOption
from tools.store import ConceptStore

SHOWN_PROBLEMS = 20

batch_app = typer.Typer(help="Run LLM stages through batch files (OpenAI Batch API, vllm run-batch).")


@batch_app.command("import")
def import_command(
    results: Annotated[Path, typer.Argument(help="The output file of the batch (JSONL, one result per line).")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Read a batch's results into the cache; then run the command that wrote the batch again: it continues
    from the cache without calling the endpoint. Lines that failed or whose answer does not fit are listed
    and stay pending (the next run writes them out again); exit status 1 if there are any."""
    from tools.batch import import_results

    with ConceptStore(db, create=False) as store:
        report = import_results(store, results)
    console.print(
        f"{report.lines} results: {report.cached} answers cached, {report.already} already answered, "
        f"{len(report.problems)} not cached",
        highlight=False,
    )
    for problem in report.problems[:SHOWN_PROBLEMS]:
        errors.print(problem, highlight=False, soft_wrap=True)
    if len(report.problems) > SHOWN_PROBLEMS:
        errors.print(f"... and {len(report.problems) - SHOWN_PROBLEMS} more", highlight=False)
    if report.problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(batch_app, name="batch")
