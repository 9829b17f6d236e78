"""Comparing mechanisms: how often they agree on shared pairs, and where their fitted models differ.

- Agreement matrix: every ordered pair (reference, mechanism) of mechanisms with shared pairs, by the
  method's measure (``tools.stats.agreement``: reference ties left out, the other's tie counts 0.5).
- Weight differences: two mechanisms' fitted models aligned by concept id; a concept's effective
  weight in domain d is b + s(d) (b alone for a domain the model did not see, 0 for a concept it does
  not use), shown as global lift (50 x weight, in %). The largest differences per domain say what one
  mechanism rewards and the other ignores.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from tools.concepts import Concept
from tools.design import scope_masks
from tools.errors import WhyprefError
from tools.stats import Agreement, agreement
from tools.store import ConceptStore
from tools.workflows import load_model, model_concepts

LIFT_SCALE = 50.0  # global lift at even odds, in % per unit of weight (method.md, Stage 4)


class AgreementMatrix(BaseModel):
    mechanisms: list[str]
    cells: list[Agreement]  # one per ordered (reference, mechanism) pair with shared pairs

    def accuracy(self, reference: str, mechanism: str) -> float | None:
        """Agreement of ``mechanism`` with ``reference`` (None without shared, non-tied pairs)."""
        cell = next((c for c in self.cells if c.reference == reference and c.mechanism == mechanism), None)
        return None if cell is None else cell.accuracy


def agreement_matrix(
    store: ConceptStore,
    *,
    mechanisms: Sequence[str] | None = None,
    source: str | None = None,
    domain: str | None = None,
) -> AgreementMatrix:
    """Agreement between every two mechanisms (both ways: the measure depends on the reference)."""
    verdicts: dict[str, dict[str, str]] = defaultdict(dict)  # mechanism -> pair -> verdict
    for row in store.label_rows(source=source, domain=domain):
        verdicts[row["mechanism"]][row["pair_id"]] = row["verdict"]
    names = list(mechanisms) if mechanisms else sorted(verdicts)
    unknown = [m for m in names if m not in verdicts]
    if unknown:
        raise WhyprefError(f"no labels of {', '.join(unknown)} here (labelled: {', '.join(sorted(verdicts))})")
    cells = []
    for reference in names:
        for mechanism in names:
            shared = sorted(verdicts[reference].keys() & verdicts[mechanism].keys())
            if mechanism != reference and shared:
                cells.append(
                    agreement(
                        [verdicts[reference][p] for p in shared],
                        [verdicts[mechanism][p] for p in shared],
                        names=(reference, mechanism),
                        domain=domain,
                    )
                )
    return AgreementMatrix(mechanisms=names, cells=cells)


@dataclass(frozen=True)
class ConceptWeights:
    """A fitted model's effective weights b + s(d): one row per fitted domain, then b alone."""

    mechanism: str
    model_id: str
    concepts: list[Concept]
    domains: list[str]
    weights: NDArray[np.float64]  # (len(domains) + 1, len(concepts))

    def row(self, domain: str | None, concept_ids: Sequence[str] | None = None) -> NDArray[np.float64]:
        """Weights in ``domain`` (b alone for None or a domain the model did not see), optionally over
        ``concept_ids`` (0 for a concept this model does not use)."""
        weights = self.weights[self.domains.index(domain) if domain in self.domains else -1]
        if concept_ids is None:
            return weights
        column = {c.id: j for j, c in enumerate(self.concepts)}
        return np.array([weights[column[c]] if c in column else 0.0 for c in concept_ids])

    def applicable(self, domain: str) -> list[Concept]:
        """Concepts that may carry weight in ``domain``: shared ones and those specific to it."""
        _, masks = scope_masks(self.concepts, [domain])
        return [c for c, keep in zip(self.concepts, masks[domain], strict=True) if keep]


def concept_weights(store: ConceptStore, mechanism: str, model_id: str | None = None) -> ConceptWeights:
    """Effective weights of a stored model (by id, or the mechanism's latest)."""
    record, estimator = load_model(store, mechanism, model_id)
    return ConceptWeights(
        mechanism=mechanism,
        model_id=record.id,
        concepts=model_concepts(store, record),
        domains=[str(d) for d in estimator.domains_],
        weights=np.vstack([estimator.coef_for(estimator.domains_, len(estimator.domains_)), estimator.coef_shared_]),
    )


def weight_gap(first: ConceptWeights, second: ConceptWeights, domains: Sequence[str]) -> ConceptWeights:
    """first - second in each of ``domains``, over the union of their concepts (the tie break's "difference")."""
    by_id = {c.id: c for c in [*first.concepts, *second.concepts]}
    ids = sorted(by_id)
    rows = [first.row(d, ids) - second.row(d, ids) for d in [*domains, None]]
    return ConceptWeights(
        mechanism=f"{first.mechanism} - {second.mechanism}",
        model_id=f"{first.model_id}-{second.model_id}",
        concepts=[by_id[c] for c in ids],
        domains=list(domains),
        weights=np.vstack(rows),
    )


class ConceptGap(BaseModel):
    concept_id: str
    concept: str
    first: float  # global lift (%) for the first mechanism
    second: float
    difference: float  # first - second


class DomainGaps(BaseModel):
    domain: str
    concepts: list[ConceptGap]  # by |difference|, largest first


class MechanismDifferences(BaseModel):
    first: str
    second: str
    first_model: str
    second_model: str
    domains: list[DomainGaps]


def weight_differences(
    store: ConceptStore,
    first: str,
    second: str,
    *,
    first_model: str | None = None,
    second_model: str | None = None,
    domains: Sequence[str] | None = None,
    top_k: int = 5,
) -> MechanismDifferences:
    """The concepts whose global lift differs most between two mechanisms, per domain both models saw."""
    a = concept_weights(store, first, first_model)
    b = concept_weights(store, second, second_model)
    common = [d for d in a.domains if d in b.domains]
    chosen = list(domains) if domains else common
    unseen = [d for d in chosen if d not in common]
    if not chosen or unseen:
        raise WhyprefError(
            f"the models of {first!r} and {second!r} have no domain {', '.join(unseen) or 'in common'} "
            f"to compare (in common: {', '.join(common) or 'none'})"
        )
    gap = weight_gap(a, b, chosen)
    ids = [c.id for c in gap.concepts]
    result = []
    for domain in chosen:
        diff = gap.row(domain)
        order = np.argsort(-np.abs(diff), kind="stable")[:top_k]
        result.append(
            DomainGaps(
                domain=domain,
                concepts=[
                    ConceptGap(
                        concept_id=ids[j],
                        concept=gap.concepts[j].name,
                        first=LIFT_SCALE * float(a.row(domain, [ids[j]])[0]),
                        second=LIFT_SCALE * float(b.row(domain, [ids[j]])[0]),
                        difference=LIFT_SCALE * float(diff[j]),
                    )
                    for j in order
                    if diff[j] != 0
                ],
            )
        )
    return MechanismDifferences(
        first=first, second=second, first_model=a.model_id, second_model=b.model_id, domains=result
    )
