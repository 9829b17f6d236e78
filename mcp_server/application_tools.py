"""The steer tool: which concepts to steer a response by, so a judge (or any mechanism) prefers it, and,
when asked, a response generated with them by the configured LLM endpoint.

Annotations are evaluated at import (no ``from __future__ import annotations``): the SDK reads them.
"""

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from mcp_server.arguments import DomainName, MechanismName, ModelId
from mcp_server.catalog import check_mechanisms
from mcp_server.errors import readable_errors
from mcp_server.limits import heavy
from mcp_server.progress import ProgressRelay
from mcp_server.settings import ServerSettings
from mcp_server.workspace import workspace_of
from tools.steering import SteeringAdvice, Strategy, advise

_STEERS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)


def register(server: MCPServer[Any], settings: ServerSettings) -> None:
    @server.tool(annotations=_STEERS)
    @heavy
    @readable_errors(ToolError)
    def steer(
        ctx: Context,
        mechanism: Annotated[MechanismName, Field(description="The judge (or mechanism) to steer towards.")],
        domain: Annotated[DomainName, Field(description="The query's domain (another: the shared weights).")],
        k: Annotated[int, Field(ge=1, le=20, description="How many concepts (the paper: 4).")] = 4,
        strategy: Annotated[
            Strategy, Field(description="explanation: the mechanism's top-k rewarded concepts; random: a control.")
        ] = "explanation",
        query: Annotated[
            str | None,
            Field(min_length=1, max_length=settings.max_text_chars, description="The request to respond to."),
        ] = None,
        generate: Annotated[
            bool, Field(description="Also write a response to the query that considers the concepts (needs an LLM).")
        ] = False,
        seed: Annotated[int, Field(ge=0, description="Random strategy: the draw.")] = 0,
        model_id: ModelId | None = None,
    ) -> SteeringAdvice:
        """The concepts a mechanism rewards most in a domain (the largest positive global lift of its fitted
        model), to steer a response by: the paper's judge hack, where a response told to consider the
        judge's top-4 concepts wins far more often against a plain one than with 4 random concepts. With
        generate=true and a query, the configured LLM endpoint writes that response (cached in the store)."""
        workspace = workspace_of(ctx)
        if generate and query is None:
            raise ToolError("generate=true needs the query to respond to")
        with workspace.store() as store:
            check_mechanisms(store, mechanism)
            generator = workspace.llm(store) if generate else None
            return advise(
                store,
                mechanism,
                domain,
                k=k,
                strategy=strategy,
                seed=seed,
                model_id=model_id,
                query=query,
                generator=generator,
                progress=ProgressRelay(ctx),
            )
