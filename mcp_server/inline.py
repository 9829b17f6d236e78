"""Local explanations of a pair given inline (query + two responses), valued on the fly, never stored.

The pair is valued in a scratch in-memory store holding only the model and its concepts, then
explained there by the library's own ``explain_pair``: the project store is never written, and the
lift and probability are computed exactly as for a stored pair. Measured concepts are computed by
code; LLM (and generic, manual) concepts only when an LLM endpoint is configured, otherwise they are
0 and reported as unvalued, since the server cannot know them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, create_model

from mcp_server.results import PairExplanation
from mcp_server.workspace import Workspace
from tools.annotation import Annotation, AnnotationConfig, annotator_name
from tools.concepts import ConceptKind
from tools.errors import WhyprefError
from tools.measured import MEASURED_ANNOTATOR
from tools.pairs import LabeledPair, NonEmptyName, Pair
from tools.store import ConceptStore
from tools.workflows import explain_pair, load_model

INLINE_SOURCE = "inline"


class InlinePair(BaseModel):
    """A pair that is not in the store: a query, two responses and the domain to explain it in."""

    query: str
    response_a: str
    response_b: str
    domain: NonEmptyName

    def as_pair(self) -> Pair:
        return Pair.model_validate({**self.model_dump(), "source": INLINE_SOURCE})


def inline_pair_model(max_chars: int) -> type[InlinePair]:
    """``InlinePair`` with the server's size limit on every text, so it shows in the tool's schema."""
    text = Annotated[str, Field(max_length=max_chars)]
    response = Annotated[str, Field(min_length=1, max_length=max_chars)]
    return create_model(
        "InlinePair",
        __base__=InlinePair,
        query=(text, Field(description="The user's request.")),
        response_a=(response, Field(description="The first response.")),
        response_b=(response, Field(description="The second response.")),
        domain=(NonEmptyName, Field(description="Domain whose weights apply (unseen: shared weights only).")),
    )


def explain_inline(
    workspace: Workspace, store: ConceptStore, mechanism: str, inline: InlinePair, model_id: str | None
) -> PairExplanation:
    record, _ = load_model(store, mechanism, model_id)
    by_id = {c.id: c for c in store.concepts()}
    concepts = [by_id[c] for c in record.payload.concept_ids if c in by_id]
    pair = inline.as_pair()
    with ConceptStore(":memory:") as scratch:
        llm = workspace.llm(scratch) if workspace.has_llm else None
        config = AnnotationConfig(llm_concepts=llm is not None)
        produced = {MEASURED_ANNOTATOR} | ({annotator_name(config.representation, llm.name)} if llm else set())
        fitted_on = record.payload.annotator
        if fitted_on is not None and fitted_on not in produced:
            raise WhyprefError(
                f"model {record.id} was fitted on values of annotator {fitted_on!r}, which this server cannot "
                "produce for an inline pair; explain a stored pair instead"
            )
        scratch.save_model(record)
        scratch.upsert_concepts(concepts)
        scratch.add_labeled_pairs([LabeledPair(pair=pair)])
        Annotation(scratch, llm, config).run([pair])
        explanation = explain_pair(scratch, mechanism, pair.id, model_id=record.id)
    unvalued = [] if llm else [c.name for c in concepts if c.kind is not ConceptKind.MEASURED]
    return PairExplanation(explanation=explanation, inline=True, unvalued_concepts=unvalued)
