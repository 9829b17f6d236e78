"""From the store to the regression's arrays: one mechanism's labels and the concept vectors of its pairs.

Also the reverse for synthetic data: planted concept vectors written into a store, so every command
that reads vectors from the store can be tried before any LLM annotation exists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from tools.concepts import Concept, ConceptKind, ConceptScope, ConceptValue
from tools.errors import StoreError
from tools.grouping import pair_groups
from tools.model_selection import MIN_DOMAIN_PAIRS, EvaluationData
from tools.pairs import Label, LabeledPair, Mechanism, MechanismKind, Pair, Verdict, turns
from tools.planted import PlantedData
from tools.result_cache import array_digest, stored_result
from tools.store import ConceptStore, content_key

_Y = {Verdict.A.value: 1, Verdict.B.value: -1, Verdict.TIE.value: 0}


@dataclass(frozen=True)
class FittingNotes:
    """Domains a fit skips (every label a tie) or restricts to the shared weights (too few pairs)."""

    skipped: dict[str, int]  # domain -> its pairs
    shared_only: dict[str, int]  # domain -> its non-tie pairs
    min_pairs: int

    def lines(self) -> list[str]:
        """One line per kind of note, naming the domains."""
        lines = []
        if self.skipped:
            named = ", ".join(f"{d} ({n})" for d, n in self.skipped.items())
            lines.append(f"{len(self.skipped)} domain(s) skipped, every label a tie: {named}")
        if self.shared_only:
            named = ", ".join(f"{d} ({n})" for d, n in self.shared_only.items())
            lines.append(
                f"{len(self.shared_only)} domain(s) with fewer than {self.min_pairs} non-tie pairs get the shared "
                f"weights only: {named}"
            )
        return lines

    def of_domain(self, domain: str) -> list[str]:
        if domain in self.shared_only:
            return [f"{self.shared_only[domain]} non-tie pairs, too few for a part of its own: shared weights only"]
        return []


@dataclass(frozen=True)
class Design:
    """The regression's inputs for one mechanism: rows are pairs, columns concepts.

    ``y`` is +1 when A was preferred, -1 for B and 0 for a tie (ties are left out of training and of
    non-tie accuracy). ``shared_mask`` and ``domain_masks`` carry the concepts' scopes; ``groups``
    the query groups that must not be split (:mod:`tools.grouping`); ``lengths`` the characters of
    responses A and B (for the length baselines).
    """

    X: NDArray[np.float64]
    y: NDArray[np.int64]
    domains: NDArray[np.str_]
    pair_ids: list[str]
    concepts: list[Concept]
    shared_mask: NDArray[np.bool_]
    domain_masks: dict[str, NDArray[np.bool_]]
    groups: NDArray[np.intp]
    lengths: NDArray[np.float64]

    @property
    def concept_ids(self) -> list[str]:
        return [c.id for c in self.concepts]

    @property
    def concept_names(self) -> list[str]:
        return [c.name for c in self.concepts]

    def digest(self) -> str:
        """A digest of every input the analyses read (values, labels, domains, pairs, concepts with their
        names and scopes, groups, lengths): equal digests, equal results."""
        masks = [self.domain_masks[d] for d in sorted(self.domain_masks)]
        arrays = array_digest(
            self.X, self.y, self.domains.astype(str), self.groups, self.lengths, self.shared_mask, *masks
        )
        concepts = [c.model_dump(mode="json", exclude={"provenance"}) for c in self.concepts]
        return content_key([arrays, self.pair_ids, concepts, sorted(self.domain_masks)])

    def subset(self, keep: NDArray[np.bool_]) -> Design:
        """These rows only; domains left without rows lose their mask."""
        domains = self.domains[keep]
        present = set(domains.tolist())
        return replace(
            self,
            X=self.X[keep],
            y=self.y[keep],
            domains=domains,
            pair_ids=[p for p, k in zip(self.pair_ids, keep, strict=True) if k],
            domain_masks={d: m for d, m in self.domain_masks.items() if d in present},
            groups=self.groups[keep],
            lengths=self.lengths[keep],
        )

    def without_ties(self) -> Design:
        return self.subset(self.y != 0)

    def for_fitting(self, min_domain_pairs: int = MIN_DOMAIN_PAIRS) -> tuple[Design, FittingNotes]:
        """The non-tie rows, with domains of fewer than ``min_domain_pairs`` such rows restricted to the
        shared weights; and notes on the domains skipped (only ties) or restricted."""
        skipped = {}
        for domain in sorted(set(self.domains.tolist())):
            rows = self.domains == domain
            if not np.any(self.y[rows] != 0):
                skipped[domain] = int(rows.sum())
        fitting = self.without_ties()
        masks = dict(fitting.domain_masks)
        restricted = {}
        for domain in sorted(masks):
            count = int(np.sum(fitting.domains == domain))
            if count < min_domain_pairs:
                masks[domain] = np.zeros_like(masks[domain])
                restricted[domain] = count
        notes = FittingNotes(skipped=skipped, shared_only=restricted, min_pairs=min_domain_pairs)
        return replace(fitting, domain_masks=masks), notes

    def evaluation_data(self, *, grouped: bool = True) -> EvaluationData:
        """The arrays an evaluation protocol reads (``grouped=False``: random pair splits)."""
        return EvaluationData(
            X=self.X,
            y=self.y,
            domains=self.domains,
            shared_mask=self.shared_mask,
            domain_masks=self.domain_masks,
            groups=self.groups if grouped else None,
            lengths=self.lengths,
        )


def scope_masks(
    concepts: Sequence[Concept], domains: Sequence[str]
) -> tuple[NDArray[np.bool_], dict[str, NDArray[np.bool_]]]:
    """Structural zeros: shared weights only on shared concepts; a domain's deviation on the shared
    concepts and the concepts specific to that domain."""
    shared = np.array([c.scope is ConceptScope.SHARED for c in concepts], dtype=bool)
    masks = {d: shared | np.array([d in c.domains for c in concepts], dtype=bool) for d in domains}
    return shared, masks


def load_design(
    store: ConceptStore,
    mechanism: str,
    *,
    annotator: str | None = None,
    source: str | None = None,
    concept_ids: Sequence[str] | None = None,
) -> Design:
    """Labels of ``mechanism`` with the concept vectors of the same pairs.

    ``annotator`` picks whose values to use; by default every annotator's, as long as no concept has
    values from two annotators (then the choice must be explicit).
    """
    rows = store.label_rows(source=source, mechanism=mechanism)
    if not rows:
        known = ", ".join(m.name for m in store.mechanisms()) or "none"
        raise StoreError(f"{store.path}: no labels of mechanism {mechanism!r} (known: {known})")
    concepts = store.concepts()
    if concept_ids is not None:
        by_id = {c.id: c for c in concepts}
        missing = [c for c in concept_ids if c not in by_id]
        if missing:
            raise StoreError(f"{store.path}: unknown concept(s) {', '.join(missing)}")
        concepts = [by_id[c] for c in concept_ids]
    if not concepts:
        raise StoreError(f"{store.path}: no concepts yet (discover or add some, or import concept values)")
    pair_ids = [r["pair_id"] for r in rows]
    X = store.concept_matrix(pair_ids, [c.id for c in concepts], annotator)
    domains = np.array([r["domain"] for r in rows])
    shared, masks = scope_masks(concepts, sorted(set(domains)))
    y = np.array([_Y[r["verdict"]] for r in rows], dtype=np.int64)
    layout = pair_layout(store, pair_ids)
    groups = np.asarray(layout.groups, dtype=np.intp)
    return Design(X, y, domains, pair_ids, concepts, shared, masks, groups, layout.length_array())


class PairLayout(BaseModel):
    """What a design needs from its pairs' texts: query groups and response lengths (characters of A, B)."""

    groups: list[int]
    lengths: list[tuple[int, int]]

    def length_array(self) -> NDArray[np.float64]:
        return np.array(self.lengths, dtype=np.float64).reshape(-1, 2)


def pair_layout(store: ConceptStore, pair_ids: Sequence[str]) -> PairLayout:
    """:class:`PairLayout` of these pairs, in this order. Reading and normalising every text is most of
    loading a large design, and a pair's id is a digest of its texts: the layout of the same ids is kept
    in the store and read back (by ``explain`` after ``fit``, or a second fit)."""

    def compute() -> PairLayout:
        lengths: list[tuple[int, int]] = []

        def texts() -> Iterator[tuple[str, str, str]]:  # streamed: a large set's texts never sit in memory
            for query, a, b in store.pair_texts(pair_ids):
                lengths.append((len(a), len(b)))
                yield query, a, b

        groups = pair_groups(texts())
        return PairLayout(groups=groups.tolist(), lengths=lengths)

    ids_digest = hashlib.sha256("\n".join(pair_ids).encode()).hexdigest()
    return stored_result(store, "pair layout", [ids_digest], PairLayout, compute)


PLANTED_ANNOTATOR = "planted"


def store_planted(
    store: ConceptStore, data: PlantedData, *, mechanism: str = "planted", source: str = "planted"
) -> int:
    """Write planted vectors into a store as pairs (placeholder texts), labels, concepts and values."""
    shared_ids = set(np.flatnonzero(data.shared_mask))
    concepts = [
        Concept(
            name=name,
            definition=f"Synthetic concept {name} (planted data).",
            kind=ConceptKind.MANUAL,
            scope=ConceptScope.SHARED if j in shared_ids else ConceptScope.DOMAIN,
            domains=() if j in shared_ids else tuple(d for d in data.domain_names if data.domain_masks[d][j]),
            provenance={"planted": True, "coef_shared": float(data.coef_shared[j])},
        )
        for j, name in enumerate(data.concept_names)
    ]
    items = [
        LabeledPair(
            pair=Pair(
                query=turns(f"planted query {i}"),
                response_a=f"planted response A{i}",
                response_b=f"planted response B{i}",
                domain=str(data.domains[i]),
                source=source,
            ),
            labels=[Label(mechanism=mechanism, verdict=Verdict.A if data.y[i] > 0 else Verdict.B)],
        )
        for i in range(len(data.y))
    ]
    values = [
        ConceptValue(
            pair_id=item.pair.id, concept_id=concepts[j].id, annotator=PLANTED_ANNOTATOR, value=float(data.X[i, j])
        )
        for i, item in enumerate(items)
        for j in np.flatnonzero(data.X[i])
    ]
    with store.atomic():
        store.add_labeled_pairs(
            items, [Mechanism(name=mechanism, kind=MechanismKind.UNKNOWN, description="planted labels")]
        )
        store.upsert_concepts(concepts)
        store.put_values(values)
    return len(items)
