"""whypref's progress callbacks, called on a tool's worker thread, as MCP progress notifications."""

from __future__ import annotations

import time
from typing import Any

import anyio.from_thread
from mcp.server.mcpserver import Context

from tools.cancellation import checkpoint

_INTERVAL = 0.1  # seconds between two reports, at most


class ProgressRelay:
    """A ``(stage, done, total)`` callback that reports progress to the client of one tool call.

    whypref counts each stage (and each round of a stage) from 0, but MCP progress must increase
    over the whole call: the relay adds up the calls of finished rounds and skips any report that
    would not increase. ``total`` None means unknown (records read so far). Reports come at most
    every ``_INTERVAL`` seconds (and at the end of each round): each one is a round trip to the event
    loop, and an import calls back once per record. It must be called from the tool's worker thread
    (where the library runs), never from the event loop.
    """

    def __init__(self, ctx: Context[Any, Any]) -> None:
        self._ctx = ctx
        self._finished = 0  # calls of the rounds already over
        self._round_total = 0
        self._last = 0
        self._last_time = float("-inf")

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        checkpoint()  # a cancelled call stops here, between two units of work
        if done == 0:
            self._finished += self._round_total
            self._round_total = total or 0
        progress = self._finished + done
        now = time.monotonic()
        if progress <= self._last or (done != total and now - self._last_time < _INTERVAL):
            return
        self._last, self._last_time = progress, now
        overall = None if total is None else self._finished + total
        message = f"{stage}: {done}" + ("" if total is None else f"/{total}")
        anyio.from_thread.run(self._ctx.report_progress, progress, overall, message)
