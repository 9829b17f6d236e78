"""The library's exception types: one base, so callers can catch everything whypref raises."""

from __future__ import annotations

from pathlib import Path


class WhyprefError(Exception):
    """Base class of every error whypref raises on purpose."""


class InputError(WhyprefError):
    """Bad input: names the file, the line (or record) and the field, so the user can fix it."""

    def __init__(
        self,
        problem: str,
        *,
        file: Path | str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = Path(file) if file is not None else None
        self.line = line
        self.field = field
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file) + (f", line {self.line}" if self.line is not None else ""))
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        return f"{': '.join(where)}: {self.problem}" if where else self.problem


class StoreError(WhyprefError):
    """The concept store cannot be opened or does not hold what was asked for."""
