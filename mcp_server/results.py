"""Structured outputs of the tools and resources that are not a library model as is: small wrappers
around the library's pydantic models, adding what a calling model needs to read them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, JsonValue

from tools.annotation import AnnotationResult
from tools.concepts import Concept
from tools.discovery import DiscoveryResult
from tools.llm import Estimate
from tools.model_selection import Evaluation
from tools.stats import Agreement, MechanismSummary
from tools.store import FittedModelRecord
from tools.workflows import FitReport, GlobalExplanation, LocalExplanation


class ConceptSummary(BaseModel):
    id: str
    name: str
    kind: str
    scope: str
    domains: list[str]
    definition: str
    values: int = Field(description="Concept values stored (all annotators).")

    @classmethod
    def of(cls, concept: Concept, values: int) -> ConceptSummary:
        return cls(
            id=concept.id,
            name=concept.name,
            kind=concept.kind.value,
            scope=concept.scope.value,
            domains=list(concept.domains),
            definition=concept.definition,
            values=values,
        )


class ConceptList(BaseModel):
    concepts: list[ConceptSummary]


class ConceptDetail(BaseModel):
    """One concept with its definition and provenance (who proposed it, from which batches, merges)."""

    id: str
    concept: Concept
    values: int


class FitResult(BaseModel):
    fit: FitReport = Field(description="The stored model and its held-out (in-domain) accuracy beside length.")
    out_of_domain: Evaluation | None = Field(
        description="Leave-one-domain-out accuracy of the same model type beside length, when computed."
    )
    out_of_domain_note: str | None = Field(default=None, description="Why out-of-domain accuracy is missing.")


class EvaluationResult(BaseModel):
    mechanism: str
    evaluation: Evaluation


class PairExplanation(BaseModel):
    explanation: LocalExplanation
    inline: bool = Field(description="True for a pair given inline (valued on the fly, not stored).")
    unvalued_concepts: list[str] = Field(
        default_factory=list,
        description="Inline pairs: concepts of the model this server could not value (taken as 0); "
        "LLM concepts need an LLM endpoint configured.",
    )


class ExplainResult(BaseModel):
    scope: Literal["global", "pair"]
    global_explanation: GlobalExplanation | None = None
    pair: PairExplanation | None = None


class Prediction(BaseModel):
    pair_id: str
    domain: str
    mechanism: str
    p_a: float = Field(description="The model's probability that response A is preferred.")
    preferred: Literal["A", "B", "tie"]
    label: str | None = Field(description="The mechanism's stored verdict on this pair, if any.")
    unvalued_concepts: list[str] = Field(default_factory=list)


class MechanismComparison(BaseModel):
    reference: str
    agreement: list[Agreement] = Field(description="Each mechanism against the reference, over their shared pairs.")
    per_domain: list[Agreement] = Field(description="The same, per domain.")
    explanations: list[GlobalExplanation] = Field(
        description="What each mechanism rewards (top concepts per domain), for those with a fitted model."
    )
    without_model: list[str] = Field(description="Mechanisms with no fitted model yet (call fit to compare them).")


class LLMUse(BaseModel):
    model: str
    usage: str = Field(description="Calls (cached, missing) and tokens spent.")


class DiscoverOutcome(BaseModel):
    result: DiscoveryResult | None = Field(description="None on a dry run.")
    estimate: dict[str, Estimate] | None = Field(description="Dry run: calls and tokens per stage, nothing spent.")
    llm: LLMUse


class AnnotateOutcome(BaseModel):
    result: AnnotationResult | None = Field(description="None on a dry run.")
    estimate: dict[str, Estimate] | None = Field(description="Dry run: calls and tokens per stage, nothing spent.")
    llm: LLMUse | None = Field(description="None when only measured concepts were computed.")


class MechanismInfo(BaseModel):
    name: str
    kind: str
    description: str
    summary: MechanismSummary | None = Field(description="Labels and their balance; None without labels.")
    models: list[str] = Field(description="Ids of its fitted models, oldest first.")


class ModelSummary(BaseModel):
    """A fitted model without its weights (read ``models://{id}`` for what they mean)."""

    id: str
    mechanism: str
    model_type: str
    params: dict[str, JsonValue]
    metrics: dict[str, JsonValue]
    created_at: str
    concepts: int
    domains: list[str]

    @classmethod
    def of(cls, record: FittedModelRecord) -> ModelSummary:
        return cls(
            id=record.id,
            mechanism=record.mechanism,
            model_type=record.model_type,
            params=record.params,
            metrics=record.metrics,
            created_at=record.created_at,
            concepts=len(record.payload.get("concept_ids") or []),  # type: ignore[arg-type]
            domains=[str(d) for d in record.payload.get("domains") or []],  # type: ignore[union-attr]
        )


class ModelDetail(BaseModel):
    model: ModelSummary
    explanation: GlobalExplanation
