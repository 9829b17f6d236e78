"""Scores as stored and shown: cross-validated scores of a configuration and held-out accuracy beside
the length baselines. Plain records (no scikit-learn), so the store and the CLI load them fast."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tools.model_names import LENGTH_BASELINES, EvaluationProtocol


class CVRow(BaseModel):
    """Cross-validated scores of one configuration."""

    params: dict[str, float]
    log_loss: float = Field(description="Mean held-out log loss (the selection criterion).")
    accuracy: float = Field(description="Held-out accuracy (a zero margin counts 0.5).")


class ScoreRow(BaseModel):
    """Held-out accuracy of one model or baseline, in percent."""

    model: str
    non_tie_accuracy: float = Field(description="Accuracy over pairs whose reference is not a tie (%).")
    low: float
    high: float
    n_pairs: int = Field(description="Non-tie pairs scored.")
    accuracy_with_ties: float = Field(description="The paper's figure: reference ties count 0.5 (%).")
    n_ties: int = Field(description="Pairs whose reference label is a tie (in accuracy_with_ties only).")
    per_domain: dict[str, float] = Field(description="Non-tie accuracy per domain (%).")
    explains_more_than_length: Literal["yes", "not shown"] | None = Field(
        default=None, description="Whether its difference with both length baselines has an interval above 0."
    )


class DifferenceRow(BaseModel):
    """Paired difference of two rows' non-tie accuracy on the same held-out pairs, in points."""

    model: str
    baseline: str
    difference: float
    low: float
    high: float


class Evaluation(BaseModel):
    """One protocol's held-out accuracy for several models beside the length baselines."""

    protocol: EvaluationProtocol
    splits: str = Field(description="How pairs were split: grouped by query, or random pairs.")
    n_splits: int
    repeats: int
    confidence: float
    rows: list[ScoreRow]
    differences: list[DifferenceRow]
    notes: list[str] = Field(default_factory=list)

    def row(self, model: str) -> ScoreRow:
        return next(r for r in self.rows if r.model == model)

    def verdict(self, model: str) -> str:
        """One line: does ``model`` explain more than length?"""
        row = self.row(model)
        if row.explains_more_than_length is None:
            return f"{model}: no length baselines to compare with"
        gaps = [d for d in self.differences if d.model == model and d.baseline in LENGTH_BASELINES]
        detail = "; ".join(f"{d.difference:+.1f} [{d.low:+.1f}, {d.high:+.1f}] vs {d.baseline}" for d in gaps)
        return f"{model} explains more than length: {row.explains_more_than_length} ({detail} points)"
