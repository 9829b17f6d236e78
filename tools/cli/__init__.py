"""The ``whypref`` command line (typer + rich). Library errors become one red line and exit status 1."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from rich.text import Text

from tools.cli import agent, applications, concepts, data, mcp, model
from tools.cli.console import errors
from tools.errors import WhyprefError

app = typer.Typer(
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


@app.callback()
def _options(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="Log to stderr: -v retries and stages, -vv debug.")
    ] = 0,
) -> None:
    """Why was this response preferred? Concept-based explanations of human votes, LLM judges and reward models."""
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
