"""The ``whypref`` command line (typer + rich). Library errors become one red line and exit status 1."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from tools.cli import agent, applications, concepts, data, mcp, model
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

_errors = Console(stderr=True)


def main() -> None:
    try:
        app()
    except WhyprefError as error:
        _errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(1)
