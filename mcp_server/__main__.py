"""``python -m mcp_server``: the same command as ``whypref mcp``."""

import typer

from cli.mcp import mcp_command

typer.run(mcp_command)
