"""Batch files: ``whypref batch import RESULTS`` reads an OpenAI Batch API or ``vllm run-batch`` output
file into the store's cache (the requests come from any LLM command run with ``whypref --batch-out FILE``);
``batch submit`` and ``batch status`` do the round trip through an endpoint's Batch API."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.console import console, errors
from cli.options import DEFAULT_DB, DbOption
from tools.store import ConceptStore

if TYPE_CHECKING:
    from tools.batch import ImportReport
    from tools.batch_api import BatchJob

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
    _print_import(report)


def _print_import(report: ImportReport) -> None:
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


@batch_app.command("submit")
def submit_command(
    requests: Annotated[Path, typer.Argument(help="A batch input file, as --batch-out wrote it.")],
) -> None:
    """Send a batch file to the endpoint's Batch API (WHYPREF_BASE_URL, WHYPREF_API_KEY; OpenAI's costs
    half of the same calls). Follow it with `whypref batch status ID`."""
    from tools.batch_api import submit
    from tools.settings import Settings

    job = submit(Settings(), requests)
    _print_job(job)
    console.print(f"Next: whypref batch status {job.id} --db STORE (imports the results once it is done)")


@batch_app.command("status")
def status_command(
    batch_id: Annotated[str, typer.Argument(help="The id `batch submit` printed.")],
    db: DbOption = DEFAULT_DB,
    results: Annotated[
        Path | None, typer.Option(help="Where to keep the results (default: BATCH_ID-results.jsonl here).")
    ] = None,
) -> None:
    """Where a submitted batch stands; once it has finished, its results are downloaded and imported into
    the store's cache (then run the command that wrote the batch again: it continues from the cache)."""
    from tools.batch import import_results
    from tools.batch_api import download, status
    from tools.settings import Settings

    settings = Settings()
    job = status(settings, batch_id)
    _print_job(job)
    if not job.finished:
        return
    if not (job.output_file_id or job.error_file_id):
        raise typer.Exit(1)  # refused or cancelled before anything ran: its errors are printed above
    path = download(settings, job, results or Path(f"{job.id}-results.jsonl"))
    console.print(f"Results: {path}", highlight=False)
    with ConceptStore(db, create=False) as store:
        report = import_results(store, path)
    _print_import(report)


def _print_job(job: BatchJob) -> None:
    console.print(
        f"Batch {job.id}: {job.status}; {job.completed} of {job.total} requests done, {job.failed} failed",
        highlight=False,
    )
    for error in job.errors:
        errors.print(error, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(batch_app, name="batch")
