"""Stage 2 of the method: concept vectors for pairs.

- relevance filter: the LLM marks which of (shared + the pair's domain) concepts matter; the others
  are 0 (stored, so a re-run does not ask again);
- Comp-rep: at most 20 concepts per call, asked in both presentation orders; a concept whose answer
  flips with the order gets 0 (+1: A shows it more, -1: B does);
- Score-rep: each response scored 1-7 per concept (0 = not relevant), value score(A) - score(B);
  if either response is "not relevant" the value is 0 (the paper does not say; this keeps "not
  relevant" from reading as a low score);
- Prob-rep: each response alone, one concept per question ("yes" or "no"), the probability of "yes"
  read from the model's token log-probabilities; the value is P(yes | A) - P(yes | B), continuous,
  and the presentation order cannot bias it (swapping A and B negates it exactly). The questions of
  one response share their prefix, so a local server's prompt cache reads the response once;
- measured concepts: computed by code (tools/measured.py), free.

Values land per (pair, concept, annotator); only missing cells are asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import islice
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model, model_validator

from tools.concepts import Concept, ConceptKind, ConceptScope, ConceptValue, Representation
from tools.errors import WhyprefError
from tools.llm import LLM, Choice, Estimate, Request, choice_request
from tools.measured import MEASURED_ANNOTATOR, measured_chunks, measured_concepts
from tools.mining import MINED_ANNOTATOR, pattern_values
from tools.pairs import Pair
from tools.progress import Progress, silent
from tools.prompting import cut, load_prompt
from tools.store import ConceptStore

MAX_CONCEPTS_PER_CALL = 20


def annotator_name(representation: Representation, model_id: str) -> str:
    return f"{representation}:{model_id}"


@cache
def _answer_schema(name: str, size: int, values: tuple[int, ...] | type) -> type[BaseModel]:
    """An answer with one required field per concept key (c1..cN), as the embedded model answers best.

    One class per chunk size: a class costs about a millisecond and 68 KiB, and requests are many."""
    kind = Literal[values] if isinstance(values, tuple) else values
    return create_model(name, **{f"c{i}": (kind, ...) for i in range(1, size + 1)})  # type: ignore[call-overload]


Todo = list[tuple[Pair, list[Concept]]]


@dataclass(frozen=True)
class Task:
    """One kind of annotation question: its prompt, answer values, and the variants asked per chunk."""

    stage: str
    prompt: str
    schema: str
    values: tuple[int, ...] | type
    variants: Callable[[Pair, int], list[dict[str, str]]]  # (pair, max chars) -> prompt variables


def _both(pair: Pair, limit: int) -> list[dict[str, str]]:
    return [
        {
            "query": cut(pair.query_text, limit),
            "response_a": cut(pair.response_a, limit),
            "response_b": cut(pair.response_b, limit),
        }
    ]


def _orders(pair: Pair, limit: int) -> list[dict[str, str]]:
    a, b, query = cut(pair.response_a, limit), cut(pair.response_b, limit), cut(pair.query_text, limit)
    return [{"query": query, "first": a, "second": b}, {"query": query, "first": b, "second": a}]


def _each(pair: Pair, limit: int) -> list[dict[str, str]]:
    query = cut(pair.query_text, limit)
    return [{"query": query, "response": cut(r, limit)} for r in (pair.response_a, pair.response_b)]


RELEVANCE = Task("relevance", "relevance", "Relevance", bool, _both)
COMPARE = Task("compare", "compare", "Comparison", (0, 1, 2), _orders)  # 1: first shows it more, 2: second
SCORE = Task("score", "score", "Scores", tuple(range(8)), _each)  # 1-7, 0: not relevant
PROBE_STAGE, PROBE_OPTIONS = "probe", ("yes", "no")


MEASURE_CHUNK = 2000  # pairs measured, then written in one transaction
MEASURE_STAGE = "measure"  # progress stage of measured (and mined) concepts


class AnnotationConfig(BaseModel):
    """How pairs are annotated. ``relevance`` defaults to on with Comp/Score-rep and off with Prob-rep
    (an irrelevant concept's probabilities are about equal for both responses, so its value is near 0)."""

    representation: Representation = "comp"
    relevance: bool = True
    llm_concepts: bool = True  # False: measured concepts only (no LLM)
    max_concepts_per_call: int = Field(default=MAX_CONCEPTS_PER_CALL, ge=1, le=MAX_CONCEPTS_PER_CALL)

    @model_validator(mode="before")
    @classmethod
    def _relevance_by_representation(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("relevance") is None:
            data = {**data, "relevance": data.get("representation", "comp") != "prob"}
        return data

    @classmethod
    def choose(
        cls,
        *,
        embedded: bool,
        representation: Representation | None = None,
        relevance: bool | None = None,
        llm_concepts: bool = True,
    ) -> AnnotationConfig:
        """The defaults users get: Prob-rep for the embedded model (its Comp-rep answers are position
        noise the swap rule zeroes), Comp-rep for an endpoint."""
        chosen = representation or ("prob" if embedded else "comp")
        # relevance None: the representation's default (the validator above fills it in)
        return cls.model_validate({"representation": chosen, "relevance": relevance, "llm_concepts": llm_concepts})


class AnnotationResult(BaseModel):
    pairs: int
    values_written: int
    measured_values: int
    swap_consistent: float | None  # Comp-rep: share of non-zero first-order answers the swap confirmed
    missing_answers: int


def applicable_concepts(concepts: Sequence[Concept], domain: str) -> list[Concept]:
    """Shared concepts plus the domain's own; measured ones are annotated by code, not asked."""
    return [
        c
        for c in concepts
        if c.kind not in (ConceptKind.MEASURED, ConceptKind.MINED)
        and (c.scope is ConceptScope.SHARED or domain in c.domains)
    ]


class Annotation:
    def __init__(
        self,
        store: ConceptStore,
        llm: LLM | None,
        config: AnnotationConfig,
        progress: Progress | None = None,
    ) -> None:
        if config.llm_concepts and llm is None:
            raise WhyprefError("LLM annotation needs an LLM (or use measured concepts only)")
        self.store, self.llm, self.config = store, llm, config
        self.progress = progress or silent

    @property
    def annotator(self) -> str:
        assert self.llm is not None
        return annotator_name(self.config.representation, self.llm.name)

    def _run(self, stage: str, requests: list[Request]) -> list:
        assert self.llm is not None
        return self.llm.run(requests, self.progress)

    @property
    def max_chars(self) -> int:
        """The longest response text a prompt shows: the LLM's setting."""
        assert self.llm is not None
        return self.llm.max_response_chars

    def measure(self, pairs: Iterable[Pair], total: int | None = None) -> tuple[int, int]:
        """Measured and mined concepts for every pair (each once per pair and concept set: measured ones
        once per library version); returns the pairs read and the values written. Measured concepts an
        earlier whypref defined and this one does not are removed with their values (code computed them;
        they would otherwise sit beside the current ones as stale columns).

        Pairs are read, measured and written a chunk at a time, so memory stays flat however many there
        are; values are computed outside any transaction, so other commands wait for the store seconds,
        not the minutes measuring a large set takes. Progress: stage "measure", pairs done of ``total``."""
        current = measured_concepts()
        names = {c.id for c in current}
        stored = {c.id: c for c in self.store.concepts(kind=ConceptKind.MEASURED)}
        with self.store.atomic():
            for stale in stored.values():
                if stale.id not in names:
                    self.store.delete_concept(stale.id)
            self.store.upsert_concepts(current)
        # Pairs measured by this very library (same concepts, same code version) are not measured again.
        unchanged = all(stored.get(c.id) == c for c in current)
        done = self.store.complete_pairs(MEASURED_ANNOTATOR, sorted(names)) if unchanged else set()
        mined = self.store.concepts(kind=ConceptKind.MINED)
        mined_done = self.store.complete_pairs(MINED_ANNOTATOR, sorted(c.id for c in mined)) if mined else set()
        iterator = iter(pairs)  # read a chunk at a time, as measuring needs it
        chunks = (
            (chunk, [p for p in chunk if p.id not in done])
            for chunk in iter(lambda: list(islice(iterator, MEASURE_CHUNK)), [])
        )
        seen = written = 0
        self.progress(MEASURE_STAGE, 0, total)
        for chunk, rows in measured_chunks(chunks):
            written += self.store.put_value_rows(rows)
            written += self.store.put_values(pattern_values([p for p in chunk if p.id not in mined_done], mined))
            seen += len(chunk)
            self.progress(MEASURE_STAGE, seen, None if total is None else max(total, seen))
        return seen, written

    def _todo(self, pairs: Sequence[Pair]) -> list[tuple[Pair, list[Concept]]]:
        """Each pair with the applicable concepts it has no value for yet (from this annotator)."""
        concepts = self.store.concepts()
        have = self.store.valued_concepts(self.annotator)
        todo = []
        for pair in pairs:
            done = have.get(pair.id, set())
            missing = [c for c in applicable_concepts(concepts, pair.domain) if c.id not in done]
            if missing:
                todo.append((pair, missing))
        return todo

    def _chunks(self, concepts: list[Concept]) -> list[list[Concept]]:
        step = self.config.max_concepts_per_call
        return [concepts[i : i + step] for i in range(0, len(concepts), step)]

    @staticmethod
    def _listing(chunk: Sequence[Concept]) -> list[dict[str, str]]:
        return [{"key": f"c{i}", "name": c.name, "definition": c.definition or c.name} for i, c in enumerate(chunk, 1)]

    def _requests(self, todo: Todo, task: Task) -> list[Request]:
        """One request per (pair, chunk of at most 20 concepts, variant of the task)."""
        prompt = load_prompt(task.prompt)
        requests = []
        for pair, concepts in todo:
            for chunk in self._chunks(concepts):
                schema = _answer_schema(task.schema, len(chunk), task.values)
                for variables in task.variants(pair, self.max_chars):
                    requests.append(
                        Request(
                            task.stage,
                            prompt.render(**variables, concepts=self._listing(chunk)),
                            schema,
                            max_tokens=12 * len(chunk) + 20,
                            expected_tokens=7 * len(chunk) + 5,
                        )
                    )
        return requests

    def _answered(self, todo: Todo, task: Task, answers: Sequence[BaseModel | None]):
        """(pair, concept, answers of its variants) for every cell whose variants were all answered."""
        per_chunk = len(task.variants(todo[0][0], self.max_chars)) if todo else 0
        it = iter(answers)
        for pair, concepts in todo:
            for chunk in self._chunks(concepts):
                got = [next(it) for _ in range(per_chunk)]
                if any(answer is None for answer in got):
                    continue  # recorded as missing; the cells stay empty
                for i, concept in enumerate(chunk, 1):
                    yield pair, concept, [getattr(answer, f"c{i}") for answer in got]

    def _value(self, pair: Pair, concept: Concept, value: float, detail: dict) -> ConceptValue:
        return ConceptValue(
            pair_id=pair.id, concept_id=concept.id, annotator=self.annotator, value=value, detail=detail
        )

    def _filter(self, todo: Todo) -> tuple[Todo, list[ConceptValue]]:
        """Drop concepts the LLM marks irrelevant (stored as 0); keep all when its answer is missing."""
        answers = self._run(RELEVANCE.stage, self._requests(todo, RELEVANCE))
        irrelevant = {(p.id, c.id) for p, c, (relevant,) in self._answered(todo, RELEVANCE, answers) if not relevant}
        zeros = [
            self._value(p, c, 0.0, {"relevant": False}) for p, cs in todo for c in cs if (p.id, c.id) in irrelevant
        ]
        kept = [(p, [c for c in cs if (p.id, c.id) not in irrelevant]) for p, cs in todo]
        return [(p, cs) for p, cs in kept if cs], zeros

    def _comp_values(self, todo: Todo) -> tuple[list[ConceptValue], int, int]:
        """Both orders -> +1/-1/0, a flip -> 0. Returns values, confirmed and non-zero first answers."""
        answers = self._run(COMPARE.stage, self._requests(todo, COMPARE))
        values, confirmed, decided = [], 0, 0
        for pair, concept, (ab, ba) in self._answered(todo, COMPARE, answers):
            first = {1: 1, 2: -1, 0: 0}[ab]
            swapped = {1: -1, 2: 1, 0: 0}[ba]  # in the swapped order "Response 1" was B
            value = first if first == swapped else 0
            decided += first != 0
            confirmed += first != 0 and value != 0
            values.append(self._value(pair, concept, float(value), {"ab": first, "ba": swapped}))
        return values, confirmed, decided

    def _probe_requests(self, todo: Todo) -> list[Request[Choice]]:
        """Per pair: every concept of response A, then of response B (the shared prefix stays cached)."""
        prompt = load_prompt("probe")
        requests = []
        for pair, concepts in todo:
            for variables in _each(pair, self.max_chars):
                for concept in concepts:
                    messages = prompt.render(
                        **variables, name=concept.name, definition=concept.definition or concept.name
                    )
                    requests.append(choice_request(PROBE_STAGE, messages, PROBE_OPTIONS))
        return requests

    def _prob_values(self, todo: Todo) -> list[ConceptValue]:
        answers = iter(self._run(PROBE_STAGE, self._probe_requests(todo)))
        values = []
        for pair, concepts in todo:
            first = [next(answers) for _ in concepts]
            second = [next(answers) for _ in concepts]
            for concept, a, b in zip(concepts, first, second, strict=True):
                if a is None or b is None:
                    continue  # no option among the answer's top tokens: the cell stays empty
                pa, pb = a.probabilities["yes"], b.probabilities["yes"]
                values.append(self._value(pair, concept, pa - pb, {"a": pa, "b": pb}))
        return values

    def _score_values(self, todo: Todo) -> list[ConceptValue]:
        answers = self._run(SCORE.stage, self._requests(todo, SCORE))
        return [
            self._value(pair, concept, float(sa - sb) if sa and sb else 0.0, {"a": sa, "b": sb})
            for pair, concept, (sa, sb) in self._answered(todo, SCORE, answers)
        ]

    def run(self, pairs: Iterable[Pair], total: int | None = None) -> AnnotationResult:
        """Measured concepts, then the LLM's. Measured only, ``pairs`` is read once, a chunk at a time
        (a store's pairs stream through); LLM annotation holds them all. ``total``: how many pairs
        ``pairs`` holds, for progress (a sequence's length by default)."""
        if total is None and isinstance(pairs, Sequence):
            total = len(pairs)
        if not self.config.llm_concepts:
            seen, measured = self.measure(pairs, total)
            return AnnotationResult(
                pairs=seen, values_written=0, measured_values=measured, swap_consistent=None, missing_answers=0
            )
        pairs = list(pairs)
        _, measured = self.measure(pairs, len(pairs))
        todo = self._todo(pairs)
        zeros: list[ConceptValue] = []
        if self.config.relevance and todo:
            todo, zeros = self._filter(todo)
        confirmed = decided = 0
        if self.config.representation == "comp":
            values, confirmed, decided = self._comp_values(todo)
        elif self.config.representation == "prob":
            values = self._prob_values(todo)
        else:
            values = self._score_values(todo)
        written = self.store.put_values(zeros + values)
        assert self.llm is not None
        return AnnotationResult(
            pairs=len(pairs),
            values_written=written,
            measured_values=measured,
            swap_consistent=confirmed / decided if decided else None,
            missing_answers=self.llm.usage.total.missing,
        )

    def estimate(self, pairs: Sequence[Pair]) -> dict[str, Estimate]:
        """Calls and tokens the run would spend (the relevance filter may make annotation cheaper)."""
        assert self.llm is not None
        todo = self._todo(pairs)
        estimates = {}
        if self.config.relevance:
            estimates["relevance"] = self.llm.estimate(self._requests(todo, RELEVANCE))
        if self.config.representation == "prob":
            estimates["prob"] = self.llm.estimate(self._probe_requests(todo))
        else:
            task = COMPARE if self.config.representation == "comp" else SCORE
            estimates[self.config.representation] = self.llm.estimate(self._requests(todo, task))
        return estimates
