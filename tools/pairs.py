"""The data model of preference pairs and their labels (pydantic, validated at every boundary).

A *pair* is (query, response A, response B, domain) from a source; a *label* is one mechanism's
verdict on it (human vote, LLM judge, reward model). Judges queried in both presentation orders keep
both verdicts; a verdict that flips with the order becomes a tie, as the method prescribes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    computed_field,
    field_validator,
    model_validator,
)

MAX_NAME = 200  # characters in a name (domain, mechanism, concept)
NonEmptyName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME)]


class Verdict(StrEnum):
    """Which response a mechanism preferred, in the pair's own A/B terms."""

    A = "A"
    B = "B"
    TIE = "tie"

    def flipped(self) -> Verdict:
        """The same preference seen with A and B exchanged."""
        return {Verdict.A: Verdict.B, Verdict.B: Verdict.A, Verdict.TIE: Verdict.TIE}[self]

    @property
    def y(self) -> int:
        """+1 if A was preferred, -1 if B, 0 for a tie (the regression's label convention)."""
        return {Verdict.A: 1, Verdict.B: -1, Verdict.TIE: 0}[self]


def combine_orders(ab: Verdict, ba: Verdict) -> Verdict:
    """Verdict from both presentation orders: kept if consistent, otherwise a tie."""
    return ab if ab == ba else Verdict.TIE


class MechanismKind(StrEnum):
    HUMAN = "human"
    LLM_JUDGE = "llm_judge"
    REWARD_MODEL = "reward_model"
    UNKNOWN = "unknown"


class Mechanism(BaseModel):
    """A source of preferences: a group of humans, an LLM judge or a reward model."""

    model_config = ConfigDict(frozen=True)

    name: NonEmptyName
    kind: MechanismKind = MechanismKind.UNKNOWN
    description: str = ""


class Label(BaseModel):
    """One mechanism's verdict on one pair.

    ``verdict_ab`` is the verdict with A shown first, ``verdict_ba`` with B shown first (expressed
    in the pair's A/B terms). When both are known, ``verdict`` is derived from them.
    """

    model_config = ConfigDict(frozen=True)

    mechanism: NonEmptyName
    verdict: Verdict
    verdict_ab: Verdict | None = None
    verdict_ba: Verdict | None = None

    @model_validator(mode="before")
    @classmethod
    def _derive_verdict(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("verdict") is None:
            ab, ba = data.get("verdict_ab"), data.get("verdict_ba")
            if ab is not None and ba is not None:
                data = {**data, "verdict": combine_orders(Verdict(ab), Verdict(ba))}
            elif ab is not None or ba is not None:
                data = {**data, "verdict": ab if ab is not None else ba}
        return data

    @model_validator(mode="after")
    def _check_consistent(self) -> Self:
        if self.verdict_ab is not None and self.verdict_ba is not None:
            expected = combine_orders(self.verdict_ab, self.verdict_ba)
            if self.verdict != expected:
                raise ValueError(
                    f"verdict {self.verdict} contradicts the two orders "
                    f"({self.verdict_ab} / {self.verdict_ba}), which give {expected}"
                )
        return self

    @property
    def position_consistent(self) -> bool | None:
        """Whether both orders agree; None when only one order is known."""
        if self.verdict_ab is None or self.verdict_ba is None:
            return None
        return self.verdict_ab == self.verdict_ba


class Turn(BaseModel):
    """One message of a conversation."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


# One encoder for every canonical dump (json.dumps with options builds a new one per call: a third of its time).
_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and text as written: what ids, cache keys and the store's columns hash and hold."""
    return _ENCODER.encode(value)


def _hash(payload: Any) -> str:
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def turns(text: str) -> list[Turn]:
    """A query given as plain text: one user turn (none when blank)."""
    return [Turn(role="user", content=text)] if text.strip() else []


class Pair(BaseModel):
    """A query with two responses from a domain.

    ``query`` holds the conversation before the responses (one user turn for a single-turn query,
    empty when a source embeds the dialogue in the responses). ``duplicate_index`` tells apart
    rows of one file that have identical content (separate judgements of the same pair).
    """

    model_config = ConfigDict(frozen=True)

    query: list[Turn]
    response_a: str
    response_b: str
    domain: NonEmptyName
    source: NonEmptyName
    duplicate_index: int = Field(default=0, ge=0)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("query", mode="before")
    @classmethod
    def _query_from_text(cls, value: Any) -> Any:
        return turns(value) if isinstance(value, str) else value

    @computed_field  # type: ignore[prop-decorator]
    @cached_property
    def id(self) -> str:
        """Stable content hash: the same pair from the same source always gets the same id (hashed once:
        the pair is frozen)."""
        content: list[Any] = [
            self.source,
            self.domain,
            [turn.model_dump() for turn in self.query],
            self.response_a,
            self.response_b,
        ]
        if self.duplicate_index:
            content.append(self.duplicate_index)
        return _hash(content)[:20]

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("id", None)  # the copy's id is the hash of its own content
        return copy

    @property
    def query_text(self) -> str:
        """The query as plain text; multi-turn queries are rendered with role prefixes."""
        if len(self.query) == 1 and self.query[0].role == "user":
            return self.query[0].content
        return "\n\n".join(f"{turn.role}: {turn.content}" for turn in self.query)


class LabeledPair(BaseModel):
    """A pair with the labels that came with it: the unit every importer yields."""

    pair: Pair
    labels: list[Label] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_label_per_mechanism(self) -> Self:
        names = [label.mechanism for label in self.labels]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"more than one label for mechanism(s) {', '.join(duplicated)}")
        return self
