"""Where tool handlers run. The SDK runs every sync handler on anyio's shared worker threads (40); a
burst of long calls (fit, evaluate, annotate...) would take them all and leave reads (list_concepts,
resources) unanswered. Heavy handlers therefore compute on a few threads of their own, one per core,
and the rest of a burst waits its turn without holding a shared thread."""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread

P = ParamSpec("P")
R = TypeVar("R")

WORK_THREADS = os.cpu_count() or 1
_work = anyio.CapacityLimiter(WORK_THREADS)


def heavy(handler: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Decorate a sync handler so that it runs on the heavy-work threads."""

    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return await anyio.to_thread.run_sync(functools.partial(handler, *args, **kwargs), limiter=_work)

    return wrapper
