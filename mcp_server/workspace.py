"""What every request works on: the store, the allowed directories, the report folder and the LLM."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mcp.server.mcpserver import Context

from mcp_server.paths import AllowedDirectories
from mcp_server.settings import ServerSettings
from tools.errors import WhyprefError
from tools.llm import LLM
from tools.settings import Settings
from tools.store import ConceptStore

logger = logging.getLogger(__name__)


class Workspace:
    """The server's runtime state, yielded by its lifespan.

    It holds no open connection: sync tools run on worker threads, so each call opens its own
    (``store()``); SQLite's WAL mode lets them read while one writes, and writers queue.
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.files = AllowedDirectories(settings.allowed_dirs)
        self.llm_settings = Settings()  # WHYPREF_BASE_URL etc., read once per server

    def prepare(self) -> None:
        """Create the store (or check it is one) and the report folder, once at start-up."""
        existed = self.settings.db.exists()
        with ConceptStore(self.settings.db, create=True):
            pass
        self.settings.report_dir.mkdir(parents=True, exist_ok=True)
        logger.info(
            "whypref MCP server on %s (%s); files from: %s; reports in %s; LLM: %s",
            self.settings.db,
            "existing store" if existed else "new empty store",
            ", ".join(map(str, self.settings.allowed_dirs)) or "nowhere",
            self.settings.report_dir,
            self.llm_settings.base_url or "none configured",
        )

    @contextmanager
    def store(self) -> Iterator[ConceptStore]:
        with ConceptStore(self.settings.db, create=False) as store:
            yield store

    @property
    def has_llm(self) -> bool:
        # The embedded model is not started by the server: loading 1.2 GB into an IDE host's
        # subprocess on a tool call is a surprise, and llama.cpp may write to the stdio channel.
        return self.llm_settings.base_url is not None

    def llm(self, cache: ConceptStore) -> LLM:
        """The configured endpoint's LLM, caching its answers in ``cache``."""
        if not self.has_llm:
            raise WhyprefError(
                "no LLM endpoint configured: set WHYPREF_BASE_URL, WHYPREF_MODEL and WHYPREF_API_KEY in the "
                "server's environment (measured concepts need none: annotate with measured_only=true)"
            )
        return LLM.from_settings(self.llm_settings, cache)


def workspace_of(ctx: Context[Any, Any]) -> Workspace:
    """The workspace the lifespan yielded, from a request's context."""
    workspace = ctx.request_context.lifespan_context
    assert isinstance(workspace, Workspace), "the server was not created by create_server"
    return workspace
