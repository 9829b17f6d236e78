"""Cooperative cancellation of work running on a thread: whoever starts the work holds a flag, the
work calls :func:`checkpoint` where stopping is safe (between LLM calls, between agent steps), and
a set flag stops it there with :class:`OperationCancelled`. Answers already received stay cached."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from tools.errors import WhyprefError


class OperationCancelled(WhyprefError):
    """The caller cancelled the operation; what was done so far is stored."""


_FLAG: ContextVar[threading.Event | None] = ContextVar("cancellation", default=None)


@contextmanager
def cancellable(flag: threading.Event) -> Iterator[None]:
    """Work in this context stops at its next checkpoint once ``flag`` is set."""
    token = _FLAG.set(flag)
    try:
        yield
    finally:
        _FLAG.reset(token)


def checkpoint() -> None:
    flag = _FLAG.get()
    if flag is not None and flag.is_set():
        raise OperationCancelled("cancelled by the caller; answers received so far are cached")
