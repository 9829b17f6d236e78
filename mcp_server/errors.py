"""Errors a handler raises on purpose, as errors the calling model can read.

The SDK passes a ``ToolError``'s (or ``ResourceError``'s) message to the client but hides the text of
any other exception (a crash: logged with its traceback on the server). whypref's own errors are
written for users (file, line, field; what to run next), and a ``ValueError`` is how the library and
its numerical stack reject data they cannot use (a model on one class of labels, say): the model can
act on both, so they are re-raised as the readable kind. Anything else is a bug and stays a crash.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from mcp.server.mcpserver.exceptions import MCPServerError

from tools.errors import WhyprefError

P = ParamSpec("P")
R = TypeVar("R")


def readable_errors(kind: type[MCPServerError]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a (sync) handler so that a ``WhyprefError`` or ``ValueError`` becomes ``kind``, same text."""

    def decorate(handler: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(handler)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return handler(*args, **kwargs)
            except (WhyprefError, ValueError) as error:
                raise kind(str(error)) from error

        return wrapper

    return decorate
