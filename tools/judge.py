"""An LLM as a preference mechanism: it judges stored pairs in both presentation orders, and its labels
land in the store like any other mechanism's, so it can be explained and compared with humans.

A verdict that flips with the order is a tie (``combine_orders``), as the method prescribes; a pair
with a missing answer in either order gets no label. An optional chain of thought puts a short
``reasoning`` field before the verdict; an optional list of concepts per domain tells the judge to
consider only those (the tie break's re-ask).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, Field

from tools.concepts import Concept
from tools.llm import LLM, Request
from tools.pairs import Label, LabeledPair, Mechanism, MechanismKind, Pair, Verdict
from tools.progress import Progress
from tools.prompting import cut, load_prompt
from tools.store import ConceptStore

JUDGE_STAGE = "judge"


class JudgeAnswer(BaseModel):
    verdict: Literal[1, 2]  # 1: Response 1 (the one shown first) is better, 2: Response 2


class ReasonedJudgeAnswer(BaseModel):
    reasoning: str = Field(max_length=600)  # bounded: the schema's grammar stops a rambling local model
    verdict: Literal[1, 2]


class JudgeResult(BaseModel):
    mechanism: str
    model: str
    pairs: int
    labelled: int
    missing: int  # pairs with no valid answer in one of the orders: no label
    ties: float | None  # share of labelled pairs whose verdict flipped with the order
    first_shown: float | None  # share of answers that picked the response shown first (position bias)


def judge_name(model_id: str, chain_of_thought: bool = False) -> str:
    """Default mechanism name of an LLM judge: its model (without the endpoint), '+cot' with reasoning."""
    return f"judge:{model_id.split('@')[0]}" + ("+cot" if chain_of_thought else "")


def _listing(concepts: Sequence[Concept]) -> list[dict[str, str]]:
    return [{"name": c.name, "definition": c.definition or c.name} for c in concepts]


def judge_requests(
    pairs: Sequence[Pair],
    *,
    chain_of_thought: bool = False,
    concepts: Mapping[str, Sequence[Concept]] | None = None,
    max_chars: int,
    stage: str = JUDGE_STAGE,
) -> list[Request]:
    """Two requests per pair: A shown first, then B shown first. ``concepts`` (per domain): consider only
    these. ``max_chars``: texts are cut to this (the LLM's ``max_response_chars``)."""
    prompt = load_prompt("judge")
    schema = ReasonedJudgeAnswer if chain_of_thought else JudgeAnswer
    max_tokens = 250 if chain_of_thought else 20
    requests = []
    for pair in pairs:
        query, a, b = (cut(text, max_chars) for text in (pair.query_text, pair.response_a, pair.response_b))
        listing = _listing(concepts.get(pair.domain, ())) if concepts is not None else []
        for first, second in ((a, b), (b, a)):
            messages = prompt.render(
                query=query, first=first, second=second, concepts=listing, reasoning=chain_of_thought
            )
            requests.append(Request(stage, messages, schema, max_tokens=max_tokens, expected_tokens=max_tokens // 2))
    return requests


def judge_pairs(
    llm: LLM,
    pairs: Sequence[Pair],
    *,
    mechanism: str = "judge",
    chain_of_thought: bool = False,
    concepts: Mapping[str, Sequence[Concept]] | None = None,
    stage: str = JUDGE_STAGE,
    progress: Progress | None = None,
) -> list[Label | None]:
    """The judge's label of each pair from both orders (a flip is a tie); None where an answer is missing."""
    requests = judge_requests(
        pairs, chain_of_thought=chain_of_thought, concepts=concepts, max_chars=llm.max_response_chars, stage=stage
    )
    answers = llm.run(requests, progress)
    labels: list[Label | None] = []
    for ab, ba in zip(answers[0::2], answers[1::2], strict=True):
        if ab is None or ba is None:
            labels.append(None)
            continue
        # With B shown first, "Response 1" is B.
        verdict_ab = Verdict.A if ab.verdict == 1 else Verdict.B
        verdict_ba = Verdict.B if ba.verdict == 1 else Verdict.A
        labels.append(Label(mechanism=mechanism, verdict_ab=verdict_ab, verdict_ba=verdict_ba))  # type: ignore[call-arg]
    return labels


def label_pairs(
    store: ConceptStore,
    llm: LLM,
    pairs: Sequence[Pair],
    *,
    mechanism: str | None = None,
    chain_of_thought: bool = False,
    progress: Progress | None = None,
) -> JudgeResult:
    """Judge pairs in both orders and store the labels as the mechanism ``mechanism`` (kind llm_judge)."""
    name = mechanism or judge_name(llm.name, chain_of_thought)
    labels = judge_pairs(llm, pairs, mechanism=name, chain_of_thought=chain_of_thought, progress=progress)
    labelled = [(pair, label) for pair, label in zip(pairs, labels, strict=True) if label is not None]
    description = f"LLM judge {llm.name}, both orders" + (", chain of thought" if chain_of_thought else "")
    store.add_labeled_pairs(
        [LabeledPair(pair=pair, labels=[label]) for pair, label in labelled],
        [Mechanism(name=name, kind=MechanismKind.LLM_JUDGE, description=description)],
    )
    # verdict_ab == A and verdict_ba == B both mean the judge picked "Response 1"
    first = [label.verdict_ab == Verdict.A for _, label in labelled] + [
        label.verdict_ba == Verdict.B for _, label in labelled
    ]
    return JudgeResult(
        mechanism=name,
        model=llm.name,
        pairs=len(pairs),
        labelled=len(labelled),
        missing=len(pairs) - len(labelled),
        ties=sum(label.verdict == Verdict.TIE for _, label in labelled) / len(labelled) if labelled else None,
        first_shown=sum(first) / len(first) if first else None,
    )
