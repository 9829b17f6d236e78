"""Structured outputs of the tools and resources that are not a library model as is: small wrappers
around the library's pydantic models, adding what a calling model needs to read them."""

from __future__ import annotations

from typing import Literal

from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field, JsonValue

from tools.annotation import AnnotationResult
from tools.concepts import Concept
from tools.discovery import DiscoveryResult
from tools.fitted import ModelMetrics
from tools.llm import Estimate
from tools.scores import DifferenceRow, Evaluation
from tools.stats import MechanismSummary
from tools.store import FittedModelRecord
from tools.workflows import GlobalExplanation, LocalExplanation


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


class EvaluationResult(BaseModel):
    mechanism: str
    accuracy: Accuracy


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
    global_explanation: GlobalAnswer | None = None
    pair: PairExplanation | None = None


class Prediction(BaseModel):
    pair_id: str
    domain: str
    mechanism: str
    p_a: float = Field(description="The model's probability that response A is preferred.")
    preferred: Literal["A", "B", "tie"]
    label: str | None = Field(description="The mechanism's stored verdict on this pair, if any.")
    unvalued_concepts: list[str] = Field(default_factory=list)


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
    metrics: ModelMetrics = Field(description="CV log loss, pairs fitted on, held-out accuracy beside length.")
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
            concepts=len(record.payload.concept_ids),
            domains=record.payload.domains,
        )


class ModelDetail(BaseModel):
    model: ModelSummary
    explanation: GlobalExplanation


# -- compact answers: what an assistant reads first, each value once and rounded -----------------------
SIGNIFICANT = 3  # digits kept in every float of a tool's answer (73.8, 0.512, 12.3)


def rounded(value: JsonValue) -> JsonValue:
    """``value`` with every float rounded to :data:`SIGNIFICANT` significant digits."""
    if isinstance(value, float):
        return float(f"{value:.{SIGNIFICANT}g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def answer(result: BaseModel, text: str) -> CallToolResult:
    """The structured result once (rounded), and one line of text for clients that show only text.

    The SDK's default sends the whole JSON twice (as text and as structured content)."""
    structured = rounded(result.model_dump(mode="json"))
    assert isinstance(structured, dict)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


class Score(BaseModel):
    model: str
    accuracy: float = Field(description="Held-out accuracy over non-tie pairs (%).")
    low: float
    high: float
    pairs: int
    per_domain: dict[str, float] | None = None


class Accuracy(BaseModel):
    """One protocol's held-out accuracy beside the length baselines (longer: the longer response wins)."""

    protocol: str
    splits: str
    scores: list[Score]
    differences: list[DifferenceRow] = Field(description="Paired differences on the same held-out pairs.")
    verdicts: list[str] = Field(description="Per model: does it explain more than length?")

    @classmethod
    def of(cls, evaluation: Evaluation, *, per_domain: bool = False) -> Accuracy:
        models = [r.model for r in evaluation.rows if r.explains_more_than_length is not None]
        return cls(
            protocol=evaluation.protocol,
            splits=evaluation.splits,
            scores=[
                Score(
                    model=r.model,
                    accuracy=r.non_tie_accuracy,
                    low=r.low,
                    high=r.high,
                    pairs=r.n_pairs,
                    per_domain=r.per_domain if per_domain else None,
                )
                for r in evaluation.rows
            ],
            differences=evaluation.differences,
            verdicts=[evaluation.verdict(m) for m in models],
        )


class FitAnswer(BaseModel):
    model_id: str
    mechanism: str
    model: str
    pairs: int = Field(description="Non-tie pairs fitted.")
    ties_left_out: int
    concepts: int
    domains: list[str]
    params: dict[str, float]
    in_domain: Accuracy | None
    out_of_domain: Accuracy | None
    notes: list[str] = Field(description="Domains skipped or restricted; why an accuracy is missing.")
    full: str = Field(description="Resource with the whole model and its evaluation.")


class Driver(BaseModel):
    concept: str
    lift: float = Field(description="Change in P(preferred) per unit more of it than the other response (pp).")
    shared: float = Field(description="The part all domains share (pp); the rest is this domain's own.")
    low: float | None = None
    high: float | None = None
    domain_effect: bool | None = Field(default=None, description="Whether this domain's own part is established.")
    unstable: bool = False


class DomainDrivers(BaseModel):
    domain: str
    pairs: int
    drivers: list[Driver]
    notes: list[str] = Field(default_factory=list)


class Drivers(BaseModel):
    """What a mechanism rewards, per domain: the drivers of its latest (or given) model."""

    mechanism: str
    model_id: str
    accuracy: str | None
    domains: list[DomainDrivers]

    @classmethod
    def of(cls, explanation: GlobalExplanation) -> Drivers:
        return cls(
            mechanism=explanation.mechanism,
            model_id=explanation.model_id,
            accuracy=explanation.accuracy,
            domains=[
                DomainDrivers(
                    domain=d.domain,
                    pairs=d.n_pairs,
                    notes=d.notes,
                    drivers=[
                        Driver(
                            **c.model_dump(include={"concept", "lift", "shared", "low", "high"}),
                            domain_effect=c.domain_effect,
                            unstable=c.unstable,
                        )
                        for c in d.concepts
                    ],
                )
                for d in explanation.domains
            ],
        )


class GlobalAnswer(Drivers):
    n_bootstrap: int | None
    warnings: list[str]
    chart: str | None = Field(description="PNG of the lifts.")
    full: str | None = Field(description="JSON with every figure (also the resource whypref://reports/latest).")


class ComparisonAnswer(BaseModel):
    reference: str
    agreement: dict[str, float | None] = Field(
        description="Per mechanism: agreement with the reference over its non-tie pairs (a tie scores 0.5)."
    )
    kappa: dict[str, float | None]
    per_domain: dict[str, dict[str, float | None]] = Field(description="Mechanism -> domain -> agreement.")
    explanations: list[Drivers]
    without_model: list[str] = Field(description="Mechanisms with no fitted model yet (call fit to compare them).")
