"""Tie break (method.md, Applications): where a judge's verdict flips with the order, re-ask it to
consider only k concepts, and measure how much closer to humans it gets on those pairs.

Sources of the k concepts per domain: the reference's (human) explanation, the judge's own, their
difference (largest reference weight - judge weight) and random ones. Before the re-ask every pair
of the subset is a tie, worth 0.5 against the reference; the gain is the accuracy after minus 0.5.
Only pairs the reference did not tie count. The configured LLM is re-asked: it should be the model
behind the judge's labels (e.g. a judge labelled with ``tools.judge.label_pairs``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel

from tools.comparison import concept_weights, weight_gap
from tools.concepts import Concept
from tools.errors import WhyprefError
from tools.judge import judge_pairs
from tools.llm import LLM
from tools.pairs import Verdict
from tools.progress import Progress
from tools.resampling import ConfidenceInterval, mean_interval
from tools.steering import random_concepts, top_concepts
from tools.store import ConceptStore

ConceptSource = Literal["human", "judge", "difference", "random"]
SOURCES: tuple[ConceptSource, ...] = ("random", "judge", "human", "difference")


class TieBreakRow(BaseModel):
    source: ConceptSource
    concepts: dict[str, list[str]]  # domain -> names of the concepts the judge was told to consider
    resolved: int  # ties that no longer flip
    missing: int  # pairs without a valid answer (they stay ties)
    accuracy: ConfidenceInterval  # against the reference on the tie subset (a tie counts 0.5)
    gain: float  # accuracy - 0.5, in points of accuracy (x100 for percent)


class TieBreakReport(BaseModel):
    judge: str
    reference: str
    model: str
    k: int
    ties: int  # pairs the judge tied and the reference did not (the subset re-asked)
    rows: list[TieBreakRow]


def tie_subset(store: ConceptStore, judge: str, reference: str, *, source: str | None = None) -> list[str]:
    """Ids of the pairs the judge tied and the reference decided, in id order."""
    verdicts: dict[str, dict[str, str]] = {judge: {}, reference: {}}
    for mechanism in verdicts:
        for row in store.label_rows(source=source, mechanism=mechanism):
            verdicts[mechanism][row["pair_id"]] = row["verdict"]
    tie = Verdict.TIE.value
    return sorted(p for p, v in verdicts[judge].items() if v == tie and verdicts[reference].get(p, tie) != tie)


def tie_break(
    store: ConceptStore,
    llm: LLM,
    judge: str,
    *,
    reference: str = "human",
    k: int = 4,
    sources: Sequence[ConceptSource] = SOURCES,
    judge_model: str | None = None,
    reference_model: str | None = None,
    source: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    chain_of_thought: bool = False,
    progress: Progress | None = None,
) -> TieBreakReport:
    """Re-ask the judge on its ties with each source of concepts; accuracy against the reference per source."""
    ids = tie_subset(store, judge, reference, source=source)[:limit]
    if not ids:
        raise WhyprefError(f"{judge!r} has no tie on a pair {reference!r} decided: nothing to break")
    pairs = [store.pair(p) for p in ids]
    truth = np.array([store.label(p, reference).verdict for p in ids])  # type: ignore[union-attr]
    domains = sorted({p.domain for p in pairs})
    ours, theirs = concept_weights(store, reference, reference_model), concept_weights(store, judge, judge_model)
    gap = weight_gap(ours, theirs, domains)
    choose: dict[ConceptSource, Callable[[str], list[Concept]]] = {
        "human": lambda d: top_concepts(ours, d, k),
        "judge": lambda d: top_concepts(theirs, d, k),
        "difference": lambda d: top_concepts(gap, d, k),
        "random": lambda d: random_concepts(gap, d, k, seed),
    }
    rows = []
    for name in sources:
        concepts = {d: choose[name](d) for d in domains}
        labels = judge_pairs(
            llm,
            pairs,
            chain_of_thought=chain_of_thought,
            concepts=concepts,
            stage=f"tiebreak {name}",
            progress=progress,
        )
        verdicts = np.array([Verdict.TIE if label is None else label.verdict for label in labels])
        credit = np.where(verdicts == truth, 1.0, np.where(verdicts == Verdict.TIE, 0.5, 0.0))
        accuracy = mean_interval(credit)
        rows.append(
            TieBreakRow(
                source=name,
                concepts={d: [c.name for c in cs] for d, cs in concepts.items()},
                resolved=int(np.sum(verdicts != Verdict.TIE)),
                missing=sum(label is None for label in labels),
                accuracy=accuracy,
                gain=accuracy.estimate - 0.5,
            )
        )
    return TieBreakReport(judge=judge, reference=reference, model=llm.name, k=k, ties=len(ids), rows=rows)
