"""The ``whypref`` command line (typer + rich). Library errors become one red line and exit status 1."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text
from typer.core import TyperGroup

from cli import agent, applications, batch, concepts, data, mcp, model
from cli.console import console, errors
from cli.options import RUN
from tools.batch import BatchWritten
from tools.errors import WhyprefError


class _Commands(TyperGroup):
    """The command group: a stage that wrote its requests to a batch file ends the run normally."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BatchWritten as written:  # the stage's requests are in the file: the run did what was asked
            console.print(str(written), highlight=False)
            ctx.exit(0)


app = typer.Typer(
    cls=_Commands,
    name="whypref",
    help="Why was this response preferred? Concept-based explanations of human votes, LLM judges and reward models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data.register(app)
model.register(app)
concepts.register(app)
mcp.register(app)
applications.register(app)
agent.register(app)
batch.register(app)


@app.callback()
def _options(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="Log to stderr: -v retries and stages, -vv debug.")
    ] = 0,
    batch_out: Annotated[
        Path | None,
        typer.Option(
            help="LLM stages write their uncached requests to this OpenAI Batch API JSONL (vllm run-batch reads it "
            "too) instead of calling the endpoint; `whypref batch import` reads the results back.",
        ),
    ] = None,
) -> None:
    """Why was this response preferred? Concept-based explanations of human votes, LLM judges and reward models."""
    RUN.batch_out = batch_out
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose < 2:  # the HTTP clients log every request at INFO
        for noisy in ("httpx", "httpcore", "openai"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main() -> None:
    try:
        app()
    except WhyprefError as error:
        errors.print(Text.assemble(("error:", "bold red"), " ", str(error)), soft_wrap=True)
        sys.exit(1)
