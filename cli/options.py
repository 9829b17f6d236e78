"""Options several commands share."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class RunOptions:
    """Options given before the command (``whypref --batch-out FILE annotate ...``), set afresh by every
    invocation and read where the command builds its LLM."""

    batch_out: Path | None = None


RUN = RunOptions()
