"""The regression's feedback on a concept set: what the discovery agent learns from after each fit.

:func:`score_concept_set` fits HMDR on a training split (configuration by CV, as ``fit`` does) and
returns held-out accuracy in-domain (test split) and out-of-domain (each domain's test pairs predicted
by a model of the other domains' training pairs, shared weights only), accuracy per domain, the
*error bank* (training pairs that out-of-fold predictions get wrong, per domain) and the fraction of
CV folds in which each concept gets a non-zero weight. :func:`swap_failure_rates` reads how often a
concept's Comp-rep answer flipped with the order, :func:`near_duplicates` finds concepts whose values
nearly coincide, and :func:`plan_pruning` turns all three into drop / merge proposals.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, Field
from sklearn.base import clone

from tools.design import Design, load_design
from tools.errors import WhyprefError
from tools.hmdr import HierarchicalMultiDomainRegression
from tools.model_selection import cv_folds, grid_search_cv, row_scores, strata, subset_masks
from tools.store import ConceptStore

CHANCE = 0.5  # accuracy of a model with no concepts (and of every tie)


class ConceptSetScore(BaseModel):
    """Held-out accuracy of one concept set and the regression's feedback on it."""

    concept_ids: list[str]
    params: dict[str, float] = Field(description="HMDR configuration chosen by CV on the training split.")
    cv_accuracy: float
    in_domain: float = Field(description="Accuracy on the held-out test split (ties and 0-margin pairs count 0.5).")
    ood: float | None = Field(description="Leave-one-domain-out accuracy on the test split; None with one domain.")
    per_domain: dict[str, float] = Field(description="Held-out in-domain accuracy per domain.")
    errors: dict[str, list[str]] = Field(description="Per domain: training pairs out-of-fold predictions get wrong.")
    support: dict[str, float] = Field(description="Per concept: fraction of CV folds giving it a non-zero weight.")

    @classmethod
    def chance(cls, domains: Mapping[str, str], train_ids: Sequence[str], test_ids: Sequence[str]) -> ConceptSetScore:
        """The score of the empty set: every prediction is a coin, every training pair is an error."""
        errors: dict[str, list[str]] = {}
        for pair_id in train_ids:
            errors.setdefault(domains[pair_id], []).append(pair_id)
        tested = sorted({domains[p] for p in test_ids})
        return cls(
            concept_ids=[],
            params={},
            cv_accuracy=CHANCE,
            in_domain=CHANCE,
            ood=CHANCE if len(tested) > 1 else None,
            per_domain=dict.fromkeys(tested, CHANCE),
            errors={d: errors[d] for d in sorted(errors)},
            support={},
        )

    def no_worse_than(self, other: ConceptSetScore, tolerance: float = 0.0) -> bool:
        """Held-out accuracy, in-domain and out-of-domain, did not fall by more than ``tolerance``."""
        if self.in_domain < other.in_domain - tolerance:
            return False
        return self.ood is None or other.ood is None or self.ood >= other.ood - tolerance

    def gain_over(self, other: ConceptSetScore) -> float:
        """Mean change of held-out accuracy (in-domain, and out-of-domain when both have it)."""
        changes = [self.in_domain - other.in_domain]
        if self.ood is not None and other.ood is not None:
            changes.append(self.ood - other.ood)
        return float(np.mean(changes))


def concept_set_design(
    store: ConceptStore,
    mechanism: str,
    concept_ids: Sequence[str],
    pair_ids: Collection[str],
    annotator: str | None = None,
) -> Design:
    """The regression's inputs for these concepts, restricted to these pairs (in the store's order)."""
    design = load_design(store, mechanism, annotator=annotator, concept_ids=list(concept_ids))
    keep = np.array([p in pair_ids for p in design.pair_ids], dtype=bool)
    if not keep.any():
        raise WhyprefError(f"none of the {len(pair_ids)} pairs has a label of {mechanism!r}")
    return design.subset(keep)


def _n_splits(y: NDArray[np.int64], domains: NDArray[np.str_], wanted: int) -> int:
    """Fewer folds for tiny sets (as ``fit`` does): the smallest domain x label stratum bounds them."""
    counts = np.unique(strata(domains, y), return_counts=True)[1]
    if len(np.unique(y)) < 2 or counts.min() < 2:
        raise WhyprefError(f"too few training pairs per domain and label to cross-validate ({len(y)} pairs)")
    return int(max(2, min(wanted, counts.min())))


def _accuracy(y: NDArray[np.int64], margin: NDArray[np.float64]) -> float:
    """Accuracy over the non-tie pairs, where a pair the model has no evidence on (margin 0) counts 0.5:
    a coin. (``predict`` would call every such pair for B, so an empty model would score the share of B.)"""
    scores = row_scores(y, margin)
    scored = ~np.isnan(scores)
    return float(scores[scored].mean()) if scored.any() else CHANCE


def _nonzero(estimator: HierarchicalMultiDomainRegression) -> NDArray[np.bool_]:
    return (estimator.coef_shared_ != 0) | np.any(estimator.coef_domain_ != 0, axis=0)


def score_concept_set(
    design: Design, train_ids: Collection[str], test_ids: Collection[str], *, n_splits: int = 5, random_state: int = 0
) -> ConceptSetScore:
    """Fit HMDR on the training pairs of ``design`` and score it on its test pairs (see the module)."""
    is_train = np.array([p in train_ids for p in design.pair_ids], dtype=bool) & (design.y != 0)
    is_test = np.array([p in test_ids for p in design.pair_ids], dtype=bool)
    X, y, domains = design.X, design.y, design.domains
    Xt, yt, dt, gt = X[is_train], y[is_train], domains[is_train], design.groups[is_train]
    splits = _n_splits(yt, dt, n_splits)
    masks = subset_masks(design.domain_masks, dt)
    search = grid_search_cv(
        "hmdr", Xt, yt, dt, design.shared_mask, masks, groups=gt, n_splits=splits, random_state=random_state
    )
    # The same folds again with the chosen configuration: out-of-fold predictions and weights per fold.
    folds = cv_folds(dt, yt, gt, splits, random_state)
    out_of_fold = np.zeros(yt.size)
    weighted = np.zeros(X.shape[1])
    template = clone(search.estimator)
    for train, test in folds:
        fold = clone(template).fit(
            Xt[train], yt[train], dt[train], design.shared_mask, subset_masks(design.domain_masks, dt[train])
        )
        out_of_fold[test] = fold.decision_function(Xt[test], dt[test])
        weighted += _nonzero(fold)
    held_out = search.estimator.decision_function(X[is_test], domains[is_test])
    tested = domains[is_test]
    per_domain = {str(d): _accuracy(y[is_test][tested == d], held_out[tested == d]) for d in np.unique(tested)}
    train_pairs = np.array(design.pair_ids)[is_train]
    wrong = np.sign(out_of_fold) != yt  # no evidence (margin 0) is not an explanation either
    errors = {str(d): train_pairs[wrong & (dt == d)].tolist() for d in np.unique(dt)}
    best = next(row for row in search.table if row.params == search.best_params)
    return ConceptSetScore(
        concept_ids=design.concept_ids,
        params=search.best_params,
        cv_accuracy=best.accuracy,
        in_domain=_accuracy(y[is_test], held_out),
        ood=_out_of_domain(design, is_train, is_test, template),
        per_domain=per_domain,
        errors={d: ids for d, ids in errors.items() if ids},
        support={c: float(w / len(folds)) for c, w in zip(design.concept_ids, weighted, strict=True)},
    )


def _out_of_domain(
    design: Design,
    is_train: NDArray[np.bool_],
    is_test: NDArray[np.bool_],
    template: HierarchicalMultiDomainRegression,
) -> float | None:
    """Each domain's test pairs, predicted (shared weights only) by the chosen configuration fitted on
    the other domains' training pairs; None with one domain, or when a training set has one label."""
    domains = np.unique(design.domains[is_test])
    if domains.size < 2:
        return None
    margin = np.zeros(design.y.size)
    for held_out in domains:
        # Nothing of the held-out domain's query groups is trained on.
        reaching = np.isin(design.groups, design.groups[is_test & (design.domains == held_out)])
        train = is_train & (design.domains != held_out) & ~reaching
        if np.unique(design.y[train]).size < 2:
            return None
        masks = subset_masks(design.domain_masks, design.domains[train])
        model = clone(template).fit(design.X[train], design.y[train], design.domains[train], design.shared_mask, masks)
        rows = is_test & (design.domains == held_out)
        margin[rows] = model.decision_function(design.X[rows], design.domains[rows])
    return _accuracy(design.y[is_test], margin[is_test])


def swap_failure_rates(
    store: ConceptStore, concept_ids: Sequence[str], pair_ids: Collection[str]
) -> dict[str, float | None]:
    """Per concept, the share of Comp-rep cells on these pairs whose two orders disagreed (so the swap
    rule set them to 0), among cells where either order saw a difference. None: no both-order values
    (measured or imported concepts, or nothing decided)."""
    decided = dict.fromkeys(concept_ids, 0)
    failed = dict.fromkeys(concept_ids, 0)
    for pair_id, concept_id, detail in store.value_details(concept_ids):
        if pair_id not in pair_ids or "ab" not in detail or (detail["ab"] == 0 and detail["ba"] == 0):
            continue
        decided[concept_id] += 1
        failed[concept_id] += detail["ab"] != detail["ba"]
    return {c: failed[c] / decided[c] if decided[c] else None for c in concept_ids}


def near_duplicates(
    X: NDArray[np.float64], concept_ids: Sequence[str], threshold: float
) -> list[tuple[str, str, float]]:
    """(first, second, correlation) for concept columns whose values correlate at ``|r| >= threshold``,
    first before second in ``concept_ids`` order; constant columns are never duplicates."""
    varies = X.std(axis=0) > 0
    if varies.sum() < 2:
        return []
    columns = np.flatnonzero(varies)
    corr = np.atleast_2d(np.corrcoef(X[:, columns], rowvar=False))
    i, j = np.nonzero(np.triu(np.abs(corr) >= threshold, k=1))
    return [(concept_ids[columns[a]], concept_ids[columns[b]], float(corr[a, b])) for a, b in zip(i, j, strict=True)]


class PruningRules(BaseModel):
    """When the regression's feedback proposes dropping or merging a concept."""

    min_support: float = Field(
        default=0.0, ge=0, le=1, description="Drop a concept weighted in at most this fraction of CV folds."
    )
    max_swap_failure: float = Field(
        default=0.5, ge=0, le=1, description="Drop a concept whose answers flip with the order more often than this."
    )
    max_correlation: float = Field(
        default=0.95, gt=0, le=1, description="Merge a concept into an earlier one whose values correlate this much."
    )


class Change(BaseModel):
    """A proposed drop or merge, with the evidence for it."""

    concept_id: str
    action: Literal["dropped", "merged"]
    reason: str
    into: str | None = None


def plan_pruning(
    score: ConceptSetScore,
    swap_failures: Mapping[str, float | None],
    duplicates: Sequence[tuple[str, str, float]],
    rules: PruningRules,
) -> list[Change]:
    """Drops for concepts the folds never weight or whose answers flip too often, then merges of
    near-duplicates (the later concept, in ``score.concept_ids`` order, goes into the earlier one)."""
    changes: dict[str, Change] = {}
    for concept_id in score.concept_ids:
        support, flips = score.support.get(concept_id, 0.0), swap_failures.get(concept_id)
        if flips is not None and flips > rules.max_swap_failure:
            reason = f"answers flipped with the order in {100 * flips:.0f}% of decided pairs"
            changes[concept_id] = Change(concept_id=concept_id, action="dropped", reason=reason)
        elif support <= rules.min_support:
            reason = f"non-zero weight in {100 * support:.0f}% of CV folds"
            changes[concept_id] = Change(concept_id=concept_id, action="dropped", reason=reason)
    for first, second, r in duplicates:
        if first not in changes and second not in changes:
            reason = f"values correlate with {first!r} (r = {r:.2f})"
            changes[second] = Change(concept_id=second, action="merged", reason=reason, into=first)
    return [changes[c] for c in score.concept_ids if c in changes]


def allocate_batches(score: ConceptSetScore, total: int) -> dict[str, int]:
    """Split ``total`` proposal batches over the domains with errors, more where held-out accuracy is
    lower (weight ``1 - accuracy``, at least 0.05 so no such domain is starved); largest remainders."""
    domains = sorted(score.errors)
    if not domains:
        return {}
    weights = np.array([max(1.0 - score.per_domain.get(d, CHANCE), 0.05) for d in domains])
    shares = total * weights / weights.sum()
    counts = np.floor(shares).astype(int)
    counts[np.argsort(counts - shares, kind="stable")[: total - counts.sum()]] += 1
    return {d: int(n) for d, n in zip(domains, counts, strict=True) if n}
