"""Descriptive statistics of a store: what was labelled, by whom, and how mechanisms agree."""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import combinations

import numpy as np
from pydantic import BaseModel

from tools.pairs import Verdict
from tools.store import ConceptStore


class MechanismSummary(BaseModel):
    mechanism: str
    kind: str
    labels: int
    share_a: float
    share_b: float
    share_tie: float
    both_orders: int  # labels with a verdict in each presentation order
    position_consistent: float | None  # share of those whose two verdicts agree


class Agreement(BaseModel):
    """How ``mechanism`` agrees with ``reference`` on the pairs both labelled.

    ``accuracy`` is the method's measure: over pairs where the reference is not a tie, 1 for the same
    verdict, 0.5 for a tie, 0 otherwise. ``exact`` compares all three outcomes on every shared pair.
    """

    reference: str
    mechanism: str
    domain: str | None = None
    shared_pairs: int
    scored_pairs: int
    accuracy: float | None
    exact: float
    kappa: float | None


class StoreStats(BaseModel):
    pairs: int
    sources: dict[str, int]
    counts: dict[str, dict[str, int]]  # domain -> mechanism -> labels
    mechanisms: list[MechanismSummary]
    agreement: list[Agreement]  # every pair of mechanisms with shared pairs
    per_domain: list[Agreement]  # every mechanism against the reference, per domain
    reference: str | None


def agreement(
    reference: list[str], other: list[str], *, names: tuple[str, str], domain: str | None = None
) -> Agreement:
    """Agreement of two aligned verdict lists (values of Verdict)."""
    from sklearn.metrics import cohen_kappa_score  # here: scikit-learn costs a second at CLI start-up

    ref, oth = np.array(reference), np.array(other)
    scored = ref != Verdict.TIE.value
    credit = np.where(oth == ref, 1.0, np.where(oth == Verdict.TIE.value, 0.5, 0.0))
    distinct = len(set(reference) | set(other))
    return Agreement(
        reference=names[0],
        mechanism=names[1],
        domain=domain,
        shared_pairs=len(ref),
        scored_pairs=int(scored.sum()),
        accuracy=float(credit[scored].mean()) if scored.any() else None,
        exact=float((ref == oth).mean()) if len(ref) else 0.0,
        kappa=float(cohen_kappa_score(ref, oth)) if len(ref) > 1 and distinct > 1 else None,
    )


def store_stats(
    store: ConceptStore, *, source: str | None = None, domain: str | None = None, reference: str = "human"
) -> StoreStats:
    store.check_names(domains=[domain] if domain else [], source=source)
    rows = store.label_rows(source=source, domain=domain)
    sources = store.source_counts(source=source, domain=domain)  # counted in SQL: no texts read
    kinds = {m.name: m.kind.value for m in store.mechanisms()}

    counts: dict[str, dict[str, int]] = defaultdict(Counter)
    verdicts: dict[str, dict[str, str]] = defaultdict(dict)  # mechanism -> pair -> verdict
    domain_of: dict[str, str] = {}
    by_mechanism: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        counts[row["domain"]][row["mechanism"]] += 1
        verdicts[row["mechanism"]][row["pair_id"]] = row["verdict"]
        domain_of[row["pair_id"]] = row["domain"]
        by_mechanism[row["mechanism"]].append(row)

    summaries = []
    for name in sorted(by_mechanism):
        group = by_mechanism[name]
        shares = Counter(r["verdict"] for r in group)
        both = [r for r in group if r["verdict_ab"] and r["verdict_ba"]]
        summaries.append(
            MechanismSummary(
                mechanism=name,
                kind=kinds.get(name, "unknown"),
                labels=len(group),
                share_a=shares[Verdict.A.value] / len(group),
                share_b=shares[Verdict.B.value] / len(group),
                share_tie=shares[Verdict.TIE.value] / len(group),
                both_orders=len(both),
                position_consistent=(sum(r["verdict_ab"] == r["verdict_ba"] for r in both) / len(both))
                if both
                else None,
            )
        )

    def compare(ref: str, mech: str, only_domain: str | None = None) -> Agreement | None:
        shared = sorted(
            p
            for p in verdicts[ref].keys() & verdicts[mech].keys()
            if only_domain is None or domain_of[p] == only_domain
        )
        if not shared:
            return None
        return agreement(
            [verdicts[ref][p] for p in shared],
            [verdicts[mech][p] for p in shared],
            names=(ref, mech),
            domain=only_domain,
        )

    names = sorted(verdicts)
    pairwise = [a for r, m in combinations(names, 2) if (a := compare(*_reference_first(r, m, reference)))]
    ref_name = reference if reference in verdicts else None
    per_domain = (
        [a for m in names if m != ref_name for d in sorted(counts) if (a := compare(ref_name, m, d))]
        if ref_name
        else []
    )
    return StoreStats(
        pairs=sum(sources.values()),
        sources=sources,
        counts={d: dict(sorted(c.items())) for d, c in sorted(counts.items())},
        mechanisms=summaries,
        agreement=pairwise,
        per_domain=per_domain,
        reference=ref_name,
    )


def _reference_first(a: str, b: str, reference: str) -> tuple[str, str]:
    return (b, a) if b == reference else (a, b)
