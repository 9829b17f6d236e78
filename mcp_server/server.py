"""The server factory, and running it on stdio (IDE hosts) or streamable HTTP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Literal

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from mcp_server import agent_tools, application_tools, concept_tools, data_tools, model_tools, prompts, resources
from mcp_server.http_auth import LOOPBACK, TOKEN_VARIABLE, BearerAndOrigin
from mcp_server.settings import ServerSettings
from mcp_server.workspace import Workspace
from tools.errors import WhyprefError

logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
whypref explains why responses were preferred (by humans, LLM judges, reward models) in terms of
named concepts, per domain. A typical session: import_pairs (or use a store that has data) ->
annotate (measured concepts are free; LLM concepts need an endpoint) -> fit -> explain (global, or
one pair) / predict / compare_mechanisms. discover proposes concepts with the LLM; run_agent improves
the concept set round by round from the model's errors, under a budget of LLM calls. Resources list
concepts (whypref://concepts, concepts://{id}), mechanisms, fitted models (models://{id}) and the
latest report."""


def create_server(settings: ServerSettings) -> MCPServer[Workspace]:
    """A whypref MCP server over the store in ``settings``; the store is opened per request."""
    workspace = Workspace(settings)

    @asynccontextmanager
    async def lifespan(_: MCPServer[Workspace]) -> AsyncIterator[Workspace]:
        await anyio.to_thread.run_sync(workspace.prepare)
        yield workspace

    server: MCPServer[Workspace] = MCPServer(
        "whypref", version=version("whypref"), instructions=INSTRUCTIONS, lifespan=lifespan
    )
    model_tools.register(server, settings)
    application_tools.register(server, settings)
    concept_tools.register(server)
    data_tools.register(server)
    agent_tools.register(server)
    resources.register(server, workspace)
    prompts.register(server)
    return server


def serve(
    settings: ServerSettings,
    transport: Literal["stdio", "http"],
    host: str,
    port: int,
    token: str | None = None,
    allowed_origins: tuple[str, ...] = (),
) -> None:
    """Run until stopped. Under stdio only protocol messages reach stdout; logs go to stderr. Over HTTP
    off the loopback a bearer token is required (the caller checks one was given)."""
    server = create_server(settings)
    if transport == "stdio":
        server.run("stdio")
        return
    if host in LOOPBACK and token is None:
        server.run("streamable-http", host=host, port=port)  # the SDK's Host/Origin checks (403 / 421)
        return
    import uvicorn

    if token is None:
        raise WhyprefError(f"serving on {host} needs a bearer token: set {TOKEN_VARIABLE}")
    security = None if host in LOOPBACK else TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = server.streamable_http_app(host=host, transport_security=security)
    uvicorn.run(BearerAndOrigin(app, token, allowed_origins), host=host, port=port, log_level="warning")
