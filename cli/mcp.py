"""The ``whypref mcp`` command: serve a store to IDE assistants and agents over MCP."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cli.options import DEFAULT_DB, DbOption
from mcp_server.settings import DEFAULT_MAX_TEXT_CHARS, ServerSettings
from tools.errors import WhyprefError


def mcp_command(
    db: DbOption = DEFAULT_DB,
    allow_dir: Annotated[
        list[Path],
        typer.Option(
            "--allow-dir",
            exists=True,
            file_okay=False,
            resolve_path=True,
            help="A directory import_pairs may read from (repeatable; default: none).",
        ),
    ] = [],  # noqa: B006
    report_dir: Annotated[
        Path | None, typer.Option(help="Where explanations are written (default: 'reports' beside the store).")
    ] = None,
    max_text_chars: Annotated[
        int, typer.Option(min=100, max=1_000_000, help="Longest inline query or response accepted.")
    ] = DEFAULT_MAX_TEXT_CHARS,
    http: Annotated[bool, typer.Option("--http", help="Streamable HTTP (endpoint /mcp) instead of stdio.")] = False,
    host: Annotated[str, typer.Option(help="HTTP: the address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTP: the port.")] = 8000,
    allow_origin: Annotated[
        list[str], typer.Option(help="HTTP off the loopback: a browser Origin to accept (repeatable).")
    ] = [],  # noqa: B006
) -> None:
    """Serve the store over MCP: stdio for IDE hosts (Claude Desktop, VS Code...), or --http."""
    from mcp_server.http_auth import LOOPBACK, TOKEN_VARIABLE

    token = os.environ.get(TOKEN_VARIABLE) or None
    if http and host not in LOOPBACK and token is None:  # a usage error: said before anything loads
        raise typer.BadParameter(
            f"serving on {host} lets anyone who reaches it read and change the store: set {TOKEN_VARIABLE} "
            "to a secret; clients then send `Authorization: Bearer <it>`",
            param_hint="--host",
        )
    # Imported here: the MCP SDK (and the LLM client the workspace holds) load only for this command.
    from mcp_server.server import serve
    from mcp_server.workspace import Workspace

    settings = ServerSettings.model_validate(
        {"db": db, "allowed_dirs": allow_dir, "report_dir": report_dir, "max_text_chars": max_text_chars}
    )
    try:
        Workspace(settings).prepare()  # checked before serving: a bad store is a usage error, not a traceback
    except WhyprefError as error:
        raise typer.BadParameter(str(error), param_hint="--db") from error
    serve(settings, "http" if http else "stdio", host, port, token, tuple(allow_origin))


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp_command)
