"""Read-only resources: concepts, one concept, mechanisms, fitted models, one model with its explanation,
and the latest explanation report. Each is JSON, read from the store when asked."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from pydantic import BaseModel, TypeAdapter

from mcp_server.catalog import concept_detail, concept_list, mechanism_infos, model_detail, model_summaries
from mcp_server.errors import readable_errors
from mcp_server.results import MechanismInfo, ModelSummary
from mcp_server.workspace import Workspace

JSON = "application/json"
_MECHANISMS = TypeAdapter(list[MechanismInfo])
_MODELS = TypeAdapter(list[ModelSummary])


def _json(model: BaseModel) -> str:
    return model.model_dump_json(indent=1)


def register(server: MCPServer[Any], workspace: Workspace) -> None:
    # The SDK gives static resources no request Context, so every resource reads the workspace the
    # lifespan yields from this closure (the same object), not from a context.

    @server.resource("whypref://concepts", name="concepts", mime_type=JSON)
    @readable_errors(ResourceError)
    def concepts() -> str:
        """Every concept: id, name, kind, scope, definition, number of values."""
        with workspace.store() as store:
            return _json(concept_list(store))

    @server.resource("concepts://{concept_id}", name="concept", mime_type=JSON)
    @readable_errors(ResourceError)
    def concept(concept_id: str) -> str:
        """One concept with its definition and provenance (proposing batches, descriptions, merges)."""
        with workspace.store() as store:
            detail = concept_detail(store, concept_id)
        if detail is None:
            raise ResourceNotFoundError(f"no concept {concept_id!r} (read whypref://concepts)")
        return _json(detail)

    @server.resource("whypref://mechanisms", name="mechanisms", mime_type=JSON)
    @readable_errors(ResourceError)
    def mechanisms() -> str:
        """Every mechanism (humans, LLM judges, reward models): kind, labels and balance, fitted models."""
        with workspace.store() as store:
            return _MECHANISMS.dump_json(mechanism_infos(store), indent=1).decode()

    @server.resource("whypref://models", name="models", mime_type=JSON)
    @readable_errors(ResourceError)
    def models() -> str:
        """Every fitted model: mechanism, type, parameters, CV accuracy, concepts and domains."""
        with workspace.store() as store:
            return _MODELS.dump_json(model_summaries(store), indent=1).decode()

    @server.resource("models://{model_id}", name="model", mime_type=JSON)
    @readable_errors(ResourceError)
    def model(model_id: str) -> str:
        """One fitted model with its global explanation: top concepts per domain, shared and specific lift."""
        with workspace.store() as store:
            detail = model_detail(store, model_id)
        if detail is None:
            raise ResourceNotFoundError(f"no fitted model {model_id!r} (read whypref://models)")
        return _json(detail)

    @server.resource("whypref://reports/latest", name="latest report", mime_type=JSON)
    @readable_errors(ResourceError)
    def latest_report() -> str:
        """The latest global explanation written by the explain tool (its PNG chart lies beside it)."""
        written = sorted(workspace.settings.report_dir.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
        if not written:
            raise ResourceNotFoundError("no report yet: call the explain tool without a pair")
        return written[-1].read_text(encoding="utf-8")
