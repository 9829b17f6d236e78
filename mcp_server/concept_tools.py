"""Tools over concepts: list_concepts, add_concept, and the LLM stages discover and annotate.

discover and annotate are long: they run on the tool's worker thread (the library drives its own
asyncio loop inside ``LLM.run``) and report progress to the client through a ``ProgressRelay``.
Annotations are evaluated at import (no ``from __future__ import annotations``): the SDK reads them.
"""

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from mcp_server.arguments import DomainName, MechanismName, SourceName
from mcp_server.catalog import concept_detail, concept_list
from mcp_server.errors import readable_errors
from mcp_server.limits import heavy
from mcp_server.progress import ProgressRelay
from mcp_server.results import AnnotateOutcome, ConceptDetail, ConceptList, DiscoverOutcome, LLMUse, answer
from mcp_server.workspace import workspace_of
from tools import operations
from tools.annotation import AnnotationConfig, Representation
from tools.concepts import Concept, ConceptKind, ConceptScope
from tools.discovery import Discovery, DiscoveryConfig
from tools.llm import LLM
from tools.operations import Selection
from tools.pairs import NonEmptyName

_LLM_WORK = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)


def _use(llm: LLM) -> LLMUse:
    return LLMUse(model=llm.name, usage=llm.usage.line())


def register(server: MCPServer[Any]) -> None:
    @server.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    @readable_errors(ToolError)
    def list_concepts(
        ctx: Context,
        kind: Annotated[ConceptKind | None, Field(description="Only concepts of this kind.")] = None,
    ) -> Annotated[CallToolResult, ConceptList]:
        """Every concept in the store: id, name, kind (llm, generic, measured, manual), scope (shared or
        domain-specific), definition and how many values it has."""
        with workspace_of(ctx).store() as store:
            listed = concept_list(store, kind)
        names = ", ".join(c.name for c in listed.concepts)
        return answer(listed, f"{len(listed.concepts)} concepts: {names}")

    @server.tool(
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False),
    )
    @readable_errors(ToolError)
    def add_concept(
        ctx: Context,
        name: Annotated[NonEmptyName, Field(pattern=r"[A-Za-z0-9]", description="The concept's name.")],
        definition: Annotated[
            str,
            Field(
                min_length=10,
                max_length=2000,
                description="What a high and a low value mean: 'A high score indicates ...; a low score indicates ...'",
            ),
        ],
        domains: Annotated[
            tuple[DomainName, ...], Field(max_length=100, description="Specific to these domains (default: shared).")
        ] = (),
    ) -> ConceptDetail:
        """Add a concept by hand. It has no values until pairs are annotated (annotate) with an LLM."""
        with workspace_of(ctx).store() as store:
            new_id = store.add_concept(
                Concept(
                    name=name,
                    definition=definition,
                    kind=ConceptKind.MANUAL,
                    scope=ConceptScope.DOMAIN if domains else ConceptScope.SHARED,
                    domains=domains,
                    provenance={"added_by": "mcp"},
                )
            )
            detail = concept_detail(store, new_id)
        assert detail is not None
        return detail

    @server.tool(annotations=_LLM_WORK)
    @heavy
    @readable_errors(ToolError)
    def discover(
        ctx: Context,
        mechanism: Annotated[MechanismName, Field(description="Whose choices tell chosen from rejected.")] = "human",
        source: SourceName | None = None,
        domains: Annotated[tuple[DomainName, ...], Field(max_length=100, description="Only these domains.")] = (),
        batches: Annotated[int, Field(ge=1, le=300, description="Batches of 5 pairs per domain (the paper: 300).")] = 4,
        seed: Annotated[int, Field(ge=0)] = 0,
        dry_run: Annotated[bool, Field(description="Only estimate the calls and tokens; spend nothing.")] = False,
    ) -> DiscoverOutcome:
        """Discover concepts that separate chosen from rejected responses, per domain, with the configured
        LLM endpoint; they land in the store with their provenance. Every call is cached: a re-run is free."""
        workspace = workspace_of(ctx)
        config = DiscoveryConfig(mechanism=mechanism, batches_per_domain=batches, seed=seed)
        with workspace.store() as store:
            llm = workspace.llm(store)
            discovery = Discovery(store, llm, config, ProgressRelay(ctx))
            if dry_run:
                return DiscoverOutcome(result=None, estimate=discovery.estimate(source, domains or None), llm=_use(llm))
            result = discovery.run(source, domains or None)
        return DiscoverOutcome(result=result, estimate=None, llm=_use(llm))

    @server.tool(annotations=_LLM_WORK)
    @heavy
    @readable_errors(ToolError)
    def annotate(
        ctx: Context,
        source: SourceName | None = None,
        domain: DomainName | None = None,
        limit: Annotated[int | None, Field(ge=1, description="At most this many pairs.")] = None,
        representation: Annotated[
            Representation | None,
            Field(
                description="comp (both orders, -1/0/+1), score (1-7 each response) or prob (P(yes) per response "
                "from token log-probabilities). Default: prob for the embedded model, comp for an endpoint."
            ),
        ] = None,
        relevance: Annotated[
            bool | None, Field(description="Ask which concepts matter for a pair first (default: not with prob).")
        ] = None,
        measured_only: Annotated[bool, Field(description="Only the free, code-measured concepts (no LLM).")] = False,
        dry_run: Annotated[bool, Field(description="Only estimate the calls and tokens; spend nothing.")] = False,
    ) -> AnnotateOutcome:
        """Value pairs as concept vectors: measured concepts always (free), LLM concepts with the configured
        endpoint unless measured_only. Only values not yet in the store are asked for."""
        workspace = workspace_of(ctx)
        config = AnnotationConfig.choose(
            embedded=not workspace.llm_settings.base_url,
            representation=representation,
            relevance=relevance,
            llm_concepts=not measured_only,
        )
        selection = Selection(source, domain, limit)
        with workspace.store() as store:
            llm = None if measured_only else workspace.llm(store)
            if dry_run:
                # Measured concepts cost nothing, so there is nothing to estimate without an LLM.
                estimate = operations.estimate_annotation(store, llm, config, selection) if llm is not None else {}
                return AnnotateOutcome(result=None, estimate=estimate, llm=_use(llm) if llm else None)
            result = operations.annotate(store, llm, config, selection, progress=ProgressRelay(ctx))
        return AnnotateOutcome(result=result, estimate=None, llm=_use(llm) if llm else None)
