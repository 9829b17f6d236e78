"""Steering a generator with a mechanism's explanation (the "judge hack", method.md, Applications).

For a query of domain d, the generator is told to consider the mechanism's top-k concepts in d (the
largest positive effective weights b + s(d)); the control is k random concepts that apply to d; the
baseline a plain response. Each steered response is compared with the plain one by an evaluator: by
default the LLM judge itself in both orders (a flip is a tie), or any reward model through a scorer
(a callable, or an HTTP endpoint returning a score). Win rate = (wins + ties / 2) / n, with a
bootstrap interval over queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

import httpx
import numpy as np
from pydantic import BaseModel, Field, ValidationError, create_model

from tools.comparison import ConceptWeights, concept_weights
from tools.concepts import Concept
from tools.errors import WhyprefError
from tools.judge import judge_pairs
from tools.llm import LLM, Request
from tools.pairs import Pair, Verdict, turns
from tools.progress import Progress, silent
from tools.prompting import cut, load_prompt
from tools.resampling import ConfidenceInterval, mean_interval
from tools.store import ConceptStore, content_key
from tools.workflows import explain_global

Strategy = Literal["explanation", "random"]
Condition = Literal["plain", "explanation", "random"]
GENERATE_STAGE = "generate"
EVALUATE_STAGE = "evaluate"
_CREDIT = {Verdict.A: 1.0, Verdict.TIE: 0.5, Verdict.B: 0.0}  # candidate shown as A, plain as B


# -- choosing concepts ---------------------------------------------------------------------------
def top_concepts(weights: ConceptWeights, domain: str, k: int) -> list[Concept]:
    """The ``k`` concepts with the largest positive weight in ``domain`` (fewer if fewer are rewarded)."""
    row = weights.row(domain)
    order = np.argsort(-row, kind="stable")
    return [weights.concepts[j] for j in order[:k] if row[j] > 0]


def random_concepts(weights: ConceptWeights, domain: str, k: int, seed: int | str = 0) -> list[Concept]:
    """``k`` concepts drawn at random (reproducibly from ``seed``) among those that apply to ``domain``."""
    pool = weights.applicable(domain)
    rng = np.random.default_rng(int(content_key([seed, domain])[:12], 16))
    return [pool[j] for j in sorted(rng.choice(len(pool), size=min(k, len(pool)), replace=False))]


def steering_concepts(
    weights: ConceptWeights, domain: str, k: int, strategy: Strategy, seed: int | str = 0
) -> list[Concept]:
    return top_concepts(weights, domain, k) if strategy == "explanation" else random_concepts(weights, domain, k, seed)


# -- generating ----------------------------------------------------------------------------------
def generation_requests(
    queries: Sequence[str], concepts: Sequence[Sequence[Concept]], *, max_chars: int, max_tokens: int = 300
) -> list[Request]:
    """One request per query: a plain response when its concept list is empty, else one told to consider
    them. ``max_chars``: queries are cut to this (the LLM's ``max_response_chars``)."""
    prompt = load_prompt("generate")
    # A length cap in the schema (about 3 characters a token) closes the JSON before max_tokens cuts it.
    schema = create_model("GeneratedResponse", response=(str, Field(max_length=3 * max_tokens)))
    return [
        Request(
            GENERATE_STAGE,
            prompt.render(
                query=cut(query, max_chars),
                concepts=[{"name": c.name, "definition": c.definition or c.name} for c in chosen],
            ),
            schema,
            max_tokens=max_tokens,
            expected_tokens=max_tokens,
        )
        for query, chosen in zip(queries, concepts, strict=True)
    ]


def generate(
    llm: LLM,
    queries: Sequence[str],
    concepts: Sequence[Sequence[Concept]],
    *,
    max_tokens: int = 300,
    progress: Progress | None = None,
) -> list[str | None]:
    """Responses to the queries (None where generation failed)."""
    requests = generation_requests(queries, concepts, max_chars=llm.max_response_chars, max_tokens=max_tokens)
    answers = llm.run(requests, progress)
    return [None if a is None else a.response for a in answers]


# -- evaluating ----------------------------------------------------------------------------------
class Scorer(Protocol):
    """A reward model: a score for one response to a query (higher is better)."""

    def __call__(self, query: str, response: str) -> float: ...


class ScoreReply(BaseModel):
    score: float


class HTTPScorer:
    """A reward model behind HTTP: POST {"query", "response"} as JSON, answer {"score": float}."""

    def __init__(self, url: str, *, timeout: float = 60.0, headers: dict[str, str] | None = None) -> None:
        self.url, self.timeout, self.headers = url, timeout, headers or {}

    def __call__(self, query: str, response: str) -> float:
        try:
            reply = httpx.post(
                self.url, json={"query": query, "response": response}, headers=self.headers, timeout=self.timeout
            )
            reply.raise_for_status()
            return ScoreReply.model_validate_json(reply.content).score
        except httpx.HTTPError as error:
            raise WhyprefError(f"scorer {self.url}: {error}") from error
        except ValidationError as error:
            raise WhyprefError(
                f'scorer {self.url}: expected {{"score": <number>}}, got {reply.text[:200]!r}'
            ) from error


class Evaluator(Protocol):
    """Compares each pair's response A (steered) with its response B (plain)."""

    name: str

    def compare(self, pairs: Sequence[Pair], progress: Progress) -> list[Verdict | None]: ...


class JudgeEvaluator:
    """The LLM judge itself, in both orders: a verdict that flips with the order is a tie."""

    def __init__(self, llm: LLM, *, chain_of_thought: bool = False) -> None:
        self.llm, self.chain_of_thought = llm, chain_of_thought
        self.name = f"LLM judge {llm.name}" + (" (chain of thought)" if chain_of_thought else "")

    def compare(self, pairs: Sequence[Pair], progress: Progress) -> list[Verdict | None]:
        labels = judge_pairs(
            self.llm,
            pairs,
            chain_of_thought=self.chain_of_thought,
            stage=EVALUATE_STAGE,
            progress=progress,
        )
        return [None if label is None else label.verdict for label in labels]


class ScorerEvaluator:
    """A reward model: the higher score wins, equal scores tie (order plays no part)."""

    def __init__(self, scorer: Scorer, name: str = "scorer") -> None:
        self.scorer, self.name = scorer, name

    def compare(self, pairs: Sequence[Pair], progress: Progress) -> list[Verdict | None]:
        progress(EVALUATE_STAGE, 0, len(pairs))
        verdicts: list[Verdict | None] = []
        for done, pair in enumerate(pairs, 1):
            a, b = self.scorer(pair.query_text, pair.response_a), self.scorer(pair.query_text, pair.response_b)
            verdicts.append(Verdict.A if a > b else Verdict.B if b > a else Verdict.TIE)
            progress(EVALUATE_STAGE, done, len(pairs))
        return verdicts


class WinRate(BaseModel):
    condition: Strategy
    domain: str | None  # None: all domains
    wins: int
    ties: int
    losses: int
    rate: ConfidenceInterval | None  # (wins + ties / 2) / n with a bootstrap interval over queries


def win_rate(condition: Strategy, domain: str | None, verdicts: Sequence[Verdict]) -> WinRate:
    credits = np.array([_CREDIT[v] for v in verdicts])
    return WinRate(
        condition=condition,
        domain=domain,
        wins=int(np.sum(credits == 1.0)),
        ties=int(np.sum(credits == 0.5)),
        losses=int(np.sum(credits == 0.0)),
        rate=mean_interval(credits) if len(credits) else None,
    )


# -- the experiment ------------------------------------------------------------------------------
class SteeringQuery(BaseModel):
    query: str = Field(min_length=1)
    domain: str = Field(min_length=1)


class SteeredResponse(BaseModel):
    query: str
    domain: str
    condition: Condition
    concepts: list[str]
    response: str | None
    verdict: Verdict | None = None  # against the plain response (A: the steered one); None for plain


class SteeringReport(BaseModel):
    mechanism: str
    model_id: str
    generator: str
    evaluator: str
    k: int
    responses: list[SteeredResponse]
    win_rates: list[WinRate]  # per condition: overall, then per domain
    unsteerable: list[str]  # domains where the model rewards no concept: their queries were left out


def held_out_queries(
    store: ConceptStore,
    mechanism: str,
    *,
    domains: Sequence[str],
    per_domain: int,
    source: str | None = None,
    max_query_chars: int = 1000,
) -> list[SteeringQuery]:
    """Distinct single-turn queries of each domain that ``mechanism`` never saw, in pair-id order."""
    labelled = {row["pair_id"] for row in store.label_rows(source=source, mechanism=mechanism)}
    seen_by_mechanism = {p.query_text.strip() for p in store.pairs(source=source) if p.id in labelled}
    queries = []
    for domain in domains:
        seen: set[str] = set()
        for pair in store.pairs(source=source, domain=domain):
            text = pair.query_text.strip()
            fresh = text not in seen_by_mechanism and text not in seen
            if fresh and len(seen) < per_domain and len(pair.query) == 1 and len(text) <= max_query_chars:
                seen.add(text)
                queries.append(SteeringQuery(query=text, domain=domain))
        if not seen:
            raise WhyprefError(f"no held-out single-turn query of domain {domain!r}")
    return queries


def steer(
    store: ConceptStore,
    generator: LLM,
    mechanism: str,
    queries: Sequence[SteeringQuery],
    evaluator: Evaluator,
    *,
    k: int = 4,
    seed: int = 0,
    model_id: str | None = None,
    max_tokens: int = 300,
    progress: Progress | None = None,
) -> SteeringReport:
    """Plain, explanation-steered and randomly steered responses to each query, the steered ones judged
    against the plain one; win rates per condition, overall and per domain."""
    report = progress or silent
    weights = concept_weights(store, mechanism, model_id)
    # A sparse model may reward nothing in a domain: its queries cannot be steered, and are left out.
    unsteerable = sorted({q.domain for q in queries if not top_concepts(weights, q.domain, k)})
    if len(unsteerable) == len({q.domain for q in queries}):
        raise WhyprefError(
            f"the model of {mechanism!r} rewards no concept in {', '.join(unsteerable)}: nothing to steer by"
        )
    queries = [q for q in queries if q.domain not in unsteerable]
    chosen: dict[tuple[int, Condition], list[Concept]] = {}
    for i, q in enumerate(queries):
        chosen[i, "plain"] = []
        chosen[i, "explanation"] = top_concepts(weights, q.domain, k)
        chosen[i, "random"] = random_concepts(weights, q.domain, k, seed=f"{seed}:{q.query}")
    keys = list(chosen)
    texts = generate(
        generator,
        [queries[i].query for i, _ in keys],
        [chosen[key] for key in keys],
        max_tokens=max_tokens,
        progress=report,
    )
    response = dict(zip(keys, texts, strict=True))
    compared = [
        (i, condition)
        for i, condition in keys
        if condition != "plain" and response[i, condition] is not None and response[i, "plain"] is not None
    ]
    pairs = [
        Pair(
            query=turns(queries[i].query),
            response_a=response[i, condition],  # type: ignore[arg-type]
            response_b=response[i, "plain"],  # type: ignore[arg-type]
            domain=queries[i].domain,
            source="steering",
        )
        for i, condition in compared
    ]
    verdict: dict[tuple[int, str], Any] = dict(zip(compared, evaluator.compare(pairs, report), strict=True))
    responses = [
        SteeredResponse(
            query=queries[i].query,
            domain=queries[i].domain,
            condition=condition,
            concepts=[c.name for c in chosen[i, condition]],
            response=response[i, condition],
            verdict=verdict.get((i, condition)),
        )
        for i, condition in keys
    ]
    rates = []
    for condition in ("explanation", "random"):
        for domain in [None, *sorted({q.domain for q in queries})]:
            verdicts = [
                r.verdict
                for r in responses
                if r.condition == condition and r.verdict is not None and domain in (None, r.domain)
            ]
            rates.append(win_rate(condition, domain, verdicts))
    return SteeringReport(
        mechanism=mechanism,
        model_id=weights.model_id,
        generator=generator.name,
        evaluator=evaluator.name,
        k=k,
        responses=responses,
        win_rates=rates,
        unsteerable=unsteerable,
    )


# -- one query (MCP) -----------------------------------------------------------------------------
class SteeringConcept(BaseModel):
    concept: str
    definition: str
    lift: float  # the mechanism's global lift for the concept in the domain, in probability points


class SteeringAdvice(BaseModel):
    mechanism: str
    model_id: str
    domain: str
    strategy: Strategy
    concepts: list[SteeringConcept]
    response: str | None = None


def advise(
    store: ConceptStore,
    mechanism: str,
    domain: str,
    *,
    k: int = 4,
    strategy: Strategy = "explanation",
    seed: int = 0,
    model_id: str | None = None,
    query: str | None = None,
    generator: LLM | None = None,
    max_tokens: int = 300,
    progress: Progress | None = None,
) -> SteeringAdvice:
    """The concepts to steer a response by in ``domain`` and, given a query and a generator, the response."""
    weights = concept_weights(store, mechanism, model_id)
    concepts = steering_concepts(weights, domain, k, strategy, seed)
    response = None
    if generator is not None:
        if not query:
            raise WhyprefError("generating a response needs the query")
        [response] = generate(generator, [query], [concepts], max_tokens=max_tokens, progress=progress)
        if response is None:
            raise WhyprefError(f"the generator ({generator.name}) gave no valid response")
    explained = explain_global(store, mechanism, model_id=weights.model_id, n_bootstrap=0, top_k=len(weights.concepts))
    entry = next((e for e in explained.domains if e.domain == domain), None)
    lift_of = {c.concept: c.lift for c in entry.concepts} if entry else {}
    lifts = [lift_of.get(c.name, 0.0) for c in concepts]
    return SteeringAdvice(
        mechanism=mechanism,
        model_id=weights.model_id,
        domain=domain,
        strategy=strategy,
        concepts=[
            SteeringConcept(concept=c.name, definition=c.definition, lift=float(lift))
            for c, lift in zip(concepts, lifts, strict=True)
        ],
        response=response,
    )
