"""The import tool: preference files from the allowed directories into the store (one transaction).

Annotations are evaluated at import (no ``from __future__ import annotations``): the SDK reads them.
"""

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from mcp_server.arguments import DomainName, MechanismName
from mcp_server.errors import readable_errors
from mcp_server.limits import heavy
from mcp_server.progress import ProgressRelay
from mcp_server.workspace import workspace_of
from tools.importers import FORMATS, ColumnMapping, ImportOptions, import_file
from tools.importers.reading import confined_to
from tools.pairs import MechanismKind, NonEmptyName
from tools.store import ImportSummary

FormatName = Literal[tuple(FORMATS)]  # type: ignore[valid-type]  # built from FORMATS: the schema lists them all


def register(server: MCPServer[Any]) -> None:
    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True))
    @heavy
    @readable_errors(ToolError)
    def import_pairs(
        ctx: Context,
        path: Annotated[
            str,
            Field(
                min_length=1,
                max_length=4096,
                description="A file or dataset folder inside the server's allowed directories "
                "(relative paths start from the first of them).",
            ),
        ],
        format: Annotated[
            FormatName | None,  # type: ignore[valid-type]
            Field(description="Default: from the name (.jsonl, .csv, .json, dataset folder names)."),
        ] = None,
        source: Annotated[
            NonEmptyName | None, Field(description="Source name (default: file stem or dataset).")
        ] = None,
        domain: Annotated[DomainName | None, Field(description="A constant domain for every pair.")] = None,
        mechanism: Annotated[MechanismName, Field(description="Who produced a generic file's main verdict.")] = "human",
        mechanism_kind: MechanismKind = MechanismKind.HUMAN,
        mapping: Annotated[
            ColumnMapping, Field(description="Generic files: which columns hold the query, responses and verdicts.")
        ] = ColumnMapping(),  # noqa: B008 - an immutable default, copied by pydantic
        allow_empty_responses: bool = False,
    ) -> ImportSummary:
        """Import preference pairs and their labels: whypref's own JSONL, generic JSONL/CSV/JSON (chosen /
        rejected or A/B + winner columns), ICAI annotated pairs, or a public set (Auto-J, LLMEval2, PandaLM,
        LLMBar, AlpacaEval). One transaction: a bad record anywhere is reported with its file, line and
        field, and nothing is written. Importing the same file twice changes nothing."""
        workspace = workspace_of(ctx)
        resolved = workspace.files.resolve(path)
        options = ImportOptions(
            mapping=mapping,
            domain=domain,
            source=source,
            mechanism=mechanism,
            mechanism_kind=mechanism_kind,
            allow_empty_responses=allow_empty_responses,
        )
        relay = ProgressRelay(ctx)
        # Files are checked again as they are opened (a name can be swapped for a symlink after the
        # check above), and a dataset's helper files (LLMBar's questions) are looked for only inside.
        with workspace.store() as store, confined_to(workspace.files.roots):
            return import_file(store, resolved, format, options, progress=relay)
