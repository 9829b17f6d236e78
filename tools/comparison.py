"""Comparing mechanisms: how often they agree on shared pairs, and where their fitted models differ.

- Agreement matrix: every ordered pair (reference, mechanism) of mechanisms with shared pairs, by the
  method's measure (``tools.stats.agreement``: reference ties left out, the other's tie counts 0.5).
- Weight differences (:func:`weight_differences`): both mechanisms fitted on the same pairs, concepts
  and penalties, their global lifts (pp) compared per domain with paired bootstrap intervals; only
  differences whose interval excludes 0 are called differences.
- :class:`ConceptWeights` / :func:`weight_gap`: stored models' effective weights b + s(d), aligned by
  concept id, which the tie break and steering rank concepts by.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, Field

from tools.concepts import Concept
from tools.design import Design, load_design, scope_masks
from tools.errors import WhyprefError
from tools.explain import lift_table
from tools.model_selection import shared_penalty_search
from tools.pairs import Verdict
from tools.resampling import ClusterBootstrap, percentile_interval
from tools.result_cache import array_digest, stored_result
from tools.stats import Agreement, agreement
from tools.store import ConceptStore
from tools.workflows import load_model, model_concepts


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
    """How two mechanisms' global lift of one concept differ in one domain, in probability points."""

    concept_id: str
    concept: str
    first: float
    second: float
    difference: float = Field(description="first - second (pp), both fitted on the same pairs and penalties.")
    low: float
    high: float


class DomainGaps(BaseModel):
    domain: str
    n_pairs: int
    concepts: list[ConceptGap] = Field(description="Differences whose interval excludes 0, largest first.")
    not_shown: int = Field(description="Concepts compared whose difference interval includes 0.")


class MechanismDifferences(BaseModel):
    first: str
    second: str
    n_pairs: int = Field(description="Pairs both mechanisms labelled, neither a tie: both models' training set.")
    params: dict[str, float] = Field(description="The one configuration both were fitted with.")
    n_bootstrap: int
    confidence: float
    domains: list[DomainGaps]
    notes: list[str] = Field(default_factory=list)


def weight_differences(
    store: ConceptStore,
    first: str,
    second: str,
    *,
    domains: Sequence[str] | None = None,
    annotator: str | None = None,
    source: str | None = None,
    top_k: int = 5,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    random_state: int = 0,
) -> MechanismDifferences:
    """What ``first`` rewards more (or less) than ``second``, per domain, with paired bootstrap intervals.

    Both are fitted on the same pairs (those both labelled without a tie), concepts and penalties
    (chosen jointly by grouped CV); the same query groups are resampled for both in every refit, so
    each difference has its own interval, and only differences whose interval excludes 0 are listed.
    """
    design = load_design(store, first, annotator=annotator, source=source)
    second_labels = {r["pair_id"]: r["verdict"] for r in store.label_rows(source=source, mechanism=second)}
    if not second_labels:
        raise WhyprefError(f"no labels of mechanism {second!r} here")
    y2 = np.array([Verdict(second_labels.get(p, Verdict.TIE.value)).y for p in design.pair_ids], dtype=np.int64)
    both = (design.y != 0) & (y2 != 0)
    common, fitting_notes = design.subset(both).for_fitting()
    y2 = y2[both]
    if min(np.sum(common.y == 1), np.sum(common.y == -1), np.sum(y2 == 1), np.sum(y2 == -1)) < 2:
        raise WhyprefError(f"{first!r} and {second!r} share too few non-tie pairs to compare ({common.y.size})")
    chosen = list(domains) if domains else sorted(set(common.domains.tolist()))
    unknown = [d for d in chosen if d not in set(common.domains.tolist())]
    if unknown:
        raise WhyprefError(f"no shared non-tie pairs in domain(s) {', '.join(unknown)}")
    inputs = [first, second, common.digest(), array_digest(y2), chosen, top_k, n_bootstrap, confidence, random_state]
    return stored_result(
        store,
        "weight differences",
        inputs,
        MechanismDifferences,
        lambda: _differences(
            first,
            second,
            common,
            y2,
            chosen,
            fitting_notes.lines(),
            top_k=top_k,
            n_bootstrap=n_bootstrap,
            confidence=confidence,
            random_state=random_state,
        ),
    )


def _differences(
    first: str,
    second: str,
    common: Design,
    y2: NDArray[np.int64],
    chosen: list[str],
    notes: list[str],
    *,
    top_k: int,
    n_bootstrap: int,
    confidence: float,
    random_state: int,
) -> MechanismDifferences:
    X, d, shared, masks = common.X, common.domains, common.shared_mask, common.domain_masks
    try:
        params, (model1, model2) = shared_penalty_search(
            "hmdr", X, [common.y, y2], d, shared, masks, groups=common.groups, random_state=random_state
        )
    except ValueError as error:
        raise WhyprefError(f"comparing {first!r} and {second!r} failed ({error}): too few pairs") from error
    names = common.concept_names
    base = lift_table(model1, X, d) - lift_table(model2, X, d)
    resampler = ClusterBootstrap(d, common.groups)
    rng = np.random.default_rng(random_state)
    refits = [copy.deepcopy(m).set_params(warm_start=True) for m in (model1, model2)]
    samples = np.empty((n_bootstrap, *base.shape))
    for k in range(n_bootstrap):
        rows = resampler.rows(rng, both_classes=[common.y, y2])
        for refit, y in zip(refits, (common.y, y2), strict=True):
            refit.fit(X[rows], y[rows], d[rows], shared, masks)
        samples[k] = lift_table(refits[0], X, d) - lift_table(refits[1], X, d)
    low, high = percentile_interval(samples, confidence)
    first_lift, second_lift = lift_table(model1, X, d), lift_table(model2, X, d)
    fitted = [str(name) for name in model1.domains_.tolist()]
    result = []
    for domain in chosen:
        row = fitted.index(domain)
        weighted = (model1.coef_shared_ + model1.coef_domain_[row] != 0) | (
            model2.coef_shared_ + model2.coef_domain_[row] != 0
        )
        order = np.argsort(-np.abs(base[row]), kind="stable")
        significant = [j for j in order if low[row, j] > 0 or high[row, j] < 0]
        result.append(
            DomainGaps(
                domain=domain,
                n_pairs=int(np.sum(d == domain)),
                concepts=[
                    ConceptGap(
                        concept_id=common.concepts[j].id,
                        concept=names[j],
                        first=float(first_lift[row, j]),
                        second=float(second_lift[row, j]),
                        difference=float(base[row, j]),
                        low=float(low[row, j]),
                        high=float(high[row, j]),
                    )
                    for j in significant[:top_k]
                ],
                not_shown=int(sum(weighted[j] for j in order if j not in significant)),
            )
        )
    return MechanismDifferences(
        first=first,
        second=second,
        n_pairs=int(common.y.size),
        params=params,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        domains=result,
        notes=notes,
    )
