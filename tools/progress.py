"""The one progress callback every long operation takes."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int | None], None]
"""``progress(stage, done, total)``: ``done`` units of ``stage`` so far, of ``total`` (None: not known,
such as records read from a file). Each round of a stage starts with ``done`` = 0."""


def silent(stage: str, done: int, total: int | None) -> None:
    """A progress callback that shows nothing."""
