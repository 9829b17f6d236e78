"""Stage 2 of the method: concept vectors for pairs.

- relevance filter: the LLM marks which of (shared + the pair's domain) concepts matter; the others
  are 0 (stored, so a re-run does not ask again);
- Comp-rep: at most 20 concepts per call, asked in both presentation orders; a concept whose answer
  flips with the order gets 0 (+1: A shows it more, -1: B does);
- Score-rep: each response scored 1-7 per concept (0 = not relevant), value score(A) - score(B);
  if either response is "not relevant" the value is 0 (the paper does not say; this keeps "not
  relevant" from reading as a low score);
- measured concepts: computed by code (tools/measured.py), free.

Values land per (pair, concept, annotator); only missing cells are asked for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, Field, create_model

from tools.concepts import Concept, ConceptKind, ConceptScope, ConceptValue
from tools.errors import WhyprefError
from tools.llm import LLM, Estimate, Request
from tools.measured import measure_pairs, measured_concepts
from tools.pairs import Pair
from tools.prompting import load_prompt
from tools.store import ConceptStore

Representation = Literal["comp", "score"]
MAX_CONCEPTS_PER_CALL = 20
ProgressCallback = Callable[[str, int, int], None]


def annotator_name(representation: Representation, model_id: str) -> str:
    return f"{representation}:{model_id}"


def _answer_schema(name: str, keys: Sequence[str], values: tuple[int, ...] | type) -> type[BaseModel]:
    """An answer with one required field per concept key (c1..cN), as the embedded model answers best."""
    kind = Literal[values] if isinstance(values, tuple) else values  # type: ignore[valid-type]
    return create_model(name, **{key: (kind, ...) for key in keys})  # type: ignore[call-overload]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"


class AnnotationConfig(BaseModel):
    representation: Representation = "comp"
    relevance: bool = True
    llm_concepts: bool = True  # False: measured concepts only (no LLM)
    max_concepts_per_call: int = Field(default=MAX_CONCEPTS_PER_CALL, ge=1, le=MAX_CONCEPTS_PER_CALL)


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
        if c.kind is not ConceptKind.MEASURED and (c.scope is ConceptScope.SHARED or domain in c.domains)
    ]


class Annotation:
    def __init__(
        self,
        store: ConceptStore,
        llm: LLM | None,
        config: AnnotationConfig,
        max_chars: int = 6000,
        progress: ProgressCallback | None = None,
    ) -> None:
        if config.llm_concepts and llm is None:
            raise WhyprefError("LLM annotation needs an LLM (or use measured concepts only)")
        self.store, self.llm, self.config, self.max_chars = store, llm, config, max_chars
        self.progress = progress or (lambda stage, done, total: None)

    @property
    def annotator(self) -> str:
        assert self.llm is not None
        return annotator_name(self.config.representation, self.llm.model_id)

    def _run(self, stage: str, requests: list[Request]) -> list:
        assert self.llm is not None
        self.progress(stage, 0, len(requests))
        return self.llm.run(requests, lambda done: self.progress(stage, done, len(requests)))

    def measure(self, pairs: Sequence[Pair]) -> int:
        """Measured concepts for every pair (cheap: always recomputed, upserts keep it idempotent)."""
        with self.store.atomic():
            self.store.upsert_concepts(measured_concepts())
            return self.store.put_values(measure_pairs(pairs))

    def _todo(self, pairs: Sequence[Pair]) -> list[tuple[Pair, list[Concept]]]:
        """Each pair with the applicable concepts it has no value for yet (from this annotator)."""
        concepts = self.store.concepts()
        have = defaultdict(set)
        for row in self.store.db.query(
            "select pair_id, concept_id from concept_values where annotator = ?", [self.annotator]
        ):
            have[row["pair_id"]].add(row["concept_id"])
        todo = []
        for pair in pairs:
            missing = [c for c in applicable_concepts(concepts, pair.domain) if c.id not in have[pair.id]]
            if missing:
                todo.append((pair, missing))
        return todo

    def _chunks(self, concepts: list[Concept]) -> list[list[Concept]]:
        step = self.config.max_concepts_per_call
        return [concepts[i : i + step] for i in range(0, len(concepts), step)]

    @staticmethod
    def _listing(chunk: Sequence[Concept]) -> list[dict[str, str]]:
        return [{"key": f"c{i}", "name": c.name, "definition": c.definition or c.name} for i, c in enumerate(chunk, 1)]

    def _relevance_requests(self, todo) -> list[Request]:
        prompt = load_prompt("relevance")
        requests = []
        for pair, concepts in todo:
            for chunk in self._chunks(concepts):
                schema = _answer_schema("Relevance", [f"c{i}" for i in range(1, len(chunk) + 1)], bool)
                requests.append(
                    Request(
                        "relevance",
                        prompt.render(
                            query=_cut(pair.query_text, self.max_chars),
                            response_a=_cut(pair.response_a, self.max_chars),
                            response_b=_cut(pair.response_b, self.max_chars),
                            concepts=self._listing(chunk),
                        ),
                        schema,
                        max_tokens=12 * len(chunk) + 20,
                        expected_tokens=7 * len(chunk) + 5,
                    )
                )
        return requests

    def _filter(self, todo) -> tuple[list[tuple[Pair, list[Concept]]], list[ConceptValue]]:
        """Drop concepts the LLM marks irrelevant (stored as 0); keep all when its answer is missing."""
        requests = self._relevance_requests(todo)
        answers = iter(self._run("relevance", requests))
        kept, zeros = [], []
        for pair, concepts in todo:
            relevant = []
            for chunk in self._chunks(concepts):
                answer = next(answers)
                for i, concept in enumerate(chunk, 1):
                    if answer is None or getattr(answer, f"c{i}"):
                        relevant.append(concept)
                    else:
                        zeros.append(
                            ConceptValue(
                                pair_id=pair.id,
                                concept_id=concept.id,
                                annotator=self.annotator,
                                value=0.0,
                                detail={"relevant": False},
                            )
                        )
            if relevant:
                kept.append((pair, relevant))
        return kept, zeros

    def _comp_requests(self, todo) -> list[Request]:
        prompt = load_prompt("compare")
        requests = []
        for pair, concepts in todo:
            for chunk in self._chunks(concepts):
                schema = _answer_schema("Comparison", [f"c{i}" for i in range(1, len(chunk) + 1)], (0, 1, 2))
                for first, second in ((pair.response_a, pair.response_b), (pair.response_b, pair.response_a)):
                    requests.append(
                        Request(
                            "compare",
                            prompt.render(
                                query=_cut(pair.query_text, self.max_chars),
                                first=_cut(first, self.max_chars),
                                second=_cut(second, self.max_chars),
                                concepts=self._listing(chunk),
                            ),
                            schema,
                            max_tokens=10 * len(chunk) + 20,
                            expected_tokens=6 * len(chunk) + 5,
                        )
                    )
        return requests

    def _comp_values(self, todo, answers) -> tuple[list[ConceptValue], int, int]:
        """Both orders -> +1/-1/0, a flip -> 0. Returns values, confirmed and non-zero first answers."""
        values, confirmed, decided = [], 0, 0
        it = iter(answers)
        for pair, concepts in todo:
            for chunk in self._chunks(concepts):
                ab, ba = next(it), next(it)
                if ab is None or ba is None:
                    continue  # recorded as missing; the cell stays empty
                for i, concept in enumerate(chunk, 1):
                    first = {1: 1, 2: -1, 0: 0}[getattr(ab, f"c{i}")]
                    swapped = {1: -1, 2: 1, 0: 0}[getattr(ba, f"c{i}")]  # "Response 1" was B
                    value = first if first == swapped else 0
                    if first:
                        decided += 1
                        confirmed += value != 0
                    values.append(
                        ConceptValue(
                            pair_id=pair.id,
                            concept_id=concept.id,
                            annotator=self.annotator,
                            value=float(value),
                            detail={"ab": first, "ba": swapped},
                        )
                    )
        return values, confirmed, decided

    def _score_requests(self, todo) -> list[Request]:
        prompt = load_prompt("score")
        requests = []
        for pair, concepts in todo:
            for chunk in self._chunks(concepts):
                schema = _answer_schema("Scores", [f"c{i}" for i in range(1, len(chunk) + 1)], tuple(range(8)))
                for response in (pair.response_a, pair.response_b):
                    requests.append(
                        Request(
                            "score",
                            prompt.render(
                                query=_cut(pair.query_text, self.max_chars),
                                response=_cut(response, self.max_chars),
                                concepts=self._listing(chunk),
                            ),
                            schema,
                            max_tokens=10 * len(chunk) + 20,
                            expected_tokens=6 * len(chunk) + 5,
                        )
                    )
        return requests

    def _score_values(self, todo, answers) -> list[ConceptValue]:
        values = []
        it = iter(answers)
        for pair, concepts in todo:
            for chunk in self._chunks(concepts):
                a, b = next(it), next(it)
                if a is None or b is None:
                    continue
                for i, concept in enumerate(chunk, 1):
                    sa, sb = getattr(a, f"c{i}"), getattr(b, f"c{i}")
                    value = float(sa - sb) if sa and sb else 0.0
                    values.append(
                        ConceptValue(
                            pair_id=pair.id,
                            concept_id=concept.id,
                            annotator=self.annotator,
                            value=value,
                            detail={"a": sa, "b": sb},
                        )
                    )
        return values

    def run(self, pairs: Sequence[Pair]) -> AnnotationResult:
        measured = self.measure(pairs)
        if not self.config.llm_concepts:
            return AnnotationResult(
                pairs=len(pairs), values_written=0, measured_values=measured, swap_consistent=None, missing_answers=0
            )
        todo = self._todo(pairs)
        zeros: list[ConceptValue] = []
        if self.config.relevance and todo:
            todo, zeros = self._filter(todo)
        confirmed = decided = 0
        if self.config.representation == "comp":
            values, confirmed, decided = self._comp_values(todo, self._run("compare", self._comp_requests(todo)))
        else:
            values = self._score_values(todo, self._run("score", self._score_requests(todo)))
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
            estimates["relevance"] = self.llm.estimate(self._relevance_requests(todo))
        requests = self._comp_requests(todo) if self.config.representation == "comp" else self._score_requests(todo)
        estimates[self.config.representation] = self.llm.estimate(requests)
        return estimates
