"""Where tool handlers run. The SDK runs every sync handler on anyio's shared worker threads (40); a
burst of long calls (fit, evaluate, annotate...) would take them all and leave reads (list_concepts,
resources) unanswered. Heavy handlers therefore compute on a few threads of their own, one per core,
and the rest of a burst waits its turn without holding a shared thread."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread

from tools.cancellation import cancellable

P = ParamSpec("P")
R = TypeVar("R")

WORK_THREADS = os.cpu_count() or 1
_work = anyio.CapacityLimiter(WORK_THREADS)


def heavy(handler: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Decorate a sync handler so that it runs on the heavy-work threads. When the client cancels the
    call (or disconnects), the handler's thread stops at its next checkpoint (progress reports: between
    LLM calls and agent steps) instead of spending the rest of its budget."""

    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        flag = threading.Event()

        def run() -> R:
            with cancellable(flag):
                return handler(*args, **kwargs)

        try:
            return await anyio.to_thread.run_sync(run, limiter=_work, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            flag.set()
            raise

    return wrapper
