"""What a stored fitted model holds besides its name: its weights (with a lossless round trip to the
estimator) and its scores. Plain records: scikit-learn loads only to predict."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tools.model_names import ModelVariant
from tools.scores import CVRow, Evaluation

if TYPE_CHECKING:
    from tools.hmdr import HierarchicalMultiDomainRegression


class ModelPayload(BaseModel):
    """What a stored model needs to predict and explain again: its columns, domains and weights."""

    concept_ids: list[str]
    domains: list[str]
    classes: list[int]
    coef_shared: list[float]
    coef_domain: list[list[float]]
    n_iter: int = 0
    annotator: str | None = None
    source: str | None = None
    notes: list[str] = Field(default_factory=list, description="Domains skipped or restricted when fitting.")

    @classmethod
    def of(
        cls,
        estimator: HierarchicalMultiDomainRegression,
        concept_ids: list[str],
        *,
        annotator: str | None,
        source: str | None,
        notes: list[str],
    ) -> ModelPayload:
        return cls(
            concept_ids=concept_ids,
            domains=[str(d) for d in estimator.domains_.tolist()],
            classes=[int(c) for c in estimator.classes_.tolist()],
            coef_shared=estimator.coef_shared_.tolist(),
            coef_domain=estimator.coef_domain_.tolist(),
            n_iter=int(estimator.n_iter_),
            annotator=annotator,
            source=source,
            notes=notes,
        )

    def estimator(self, model_type: str, params: dict[str, float]) -> HierarchicalMultiDomainRegression:
        """The fitted estimator, as ``fit`` left it (learned attributes set by the estimator's own class)."""
        from tools.baselines import MODELS

        if model_type not in MODELS:
            raise ValueError(f"unknown model type {model_type!r} (known: {', '.join(MODELS)})")
        estimator = MODELS[ModelVariant(model_type)]()
        estimator.set_params(**{k: v for k, v in params.items() if k in estimator.get_params()})
        return estimator.restore(
            classes=np.array(self.classes),
            domains=np.array(self.domains),
            coef_shared=np.array(self.coef_shared, dtype=float),
            coef_domain=np.array(self.coef_domain, dtype=float).reshape(len(self.domains), len(self.concept_ids)),
            n_iter=self.n_iter,
        )


class ModelMetrics(BaseModel):
    """How a fitted model scores: the chosen penalties' CV log loss, the non-tie pairs it was fitted on and
    its held-out accuracy beside the length baselines (in-domain protocol; None when not computed)."""

    model_config = ConfigDict(extra="ignore")  # whypref 0.x also stored copies of the held-out row's fields

    cv_log_loss: float
    pairs: int
    evaluation: Evaluation | None = None
    # What a fit reports besides the weights, so that fitting the same inputs again reports it from the
    # store (None in models stored before they were kept: those are refitted).
    cv: CVRow | None = None
    evaluation_note: str | None = None
