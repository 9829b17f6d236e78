"""The server's configuration: which store it serves, which directories it may read files from, where
explanation reports go, and how much inline text one argument may carry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_MAX_TEXT_CHARS = 20_000


class ServerSettings(BaseModel):
    """Set once when the server starts (``whypref mcp`` builds it from its options)."""

    model_config = ConfigDict(frozen=True)

    db: Path = Field(description="The concept store (SQLite file); created empty if missing.")
    allowed_dirs: tuple[Path, ...] = Field(
        default=(), description="Directories files may be imported from (none: the server reads no files)."
    )
    report_dir: Path = Field(description="Where explanations are written (PNG chart + JSON); default beside the store.")
    max_text_chars: int = Field(
        default=DEFAULT_MAX_TEXT_CHARS, ge=100, le=1_000_000, description="Longest inline query or response accepted."
    )

    @model_validator(mode="before")
    @classmethod
    def _reports_beside_the_store(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("report_dir") is None and data.get("db") is not None:
            data = {**data, "report_dir": Path(data["db"]).parent / "reports"}
        return data

    @field_validator("db", "report_dir")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        # An IDE host's working directory is arbitrary: logs and results name real locations.
        return path.expanduser().resolve()

    @field_validator("allowed_dirs")
    @classmethod
    def _existing_directories(cls, dirs: tuple[Path, ...]) -> tuple[Path, ...]:
        # Resolved once here, so every later containment check compares real paths (symlinks followed).
        resolved = []
        for directory in dirs:
            real = directory.expanduser().resolve()
            if not real.is_dir():
                raise ValueError(f"{directory}: not an existing directory")
            resolved.append(real)
        return tuple(resolved)
