"""Options several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DbOption = Annotated[
    Path,
    typer.Option("--db", envvar="WHYPREF_DB", help="The concept store (SQLite file).", show_default=True),
]
DEFAULT_DB = Path("whypref.db")
SourceOption = Annotated[str | None, typer.Option("--source", help="Only pairs of this source.")]
DomainOption = Annotated[str | None, typer.Option("--domain", help="Only pairs of this domain.")]
