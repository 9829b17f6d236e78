"""Concepts: named, defined properties of responses whose values make up a pair's concept vector."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from tools.pairs import NonEmptyName


class ConceptKind(StrEnum):
    """Where a concept comes from."""

    LLM = "llm"  # discovered by an LLM
    GENERIC = "generic"  # the fixed generic concepts of the method (Clarity, Accuracy, ...)
    MEASURED = "measured"  # computed exactly by code (length, lists, ...)
    MINED = "mined"  # a phrase found in the data to predict the labels; its presence computed by code
    MANUAL = "manual"  # written by a user


Representation = Literal["comp", "score", "prob"]
"""Comp-rep (A vs B, both orders), Score-rep (1-7 each response) or Prob-rep (each response alone, the
probability of "yes" read from the token log-probabilities; the value is P(A) - P(B))."""


class ConceptScope(StrEnum):
    SHARED = "shared"  # may carry weight in every domain
    DOMAIN = "domain"  # specific to the domains it lists


def concept_id(name: str) -> str:
    """A readable, stable id from a concept's name ('Use of Examples' -> 'use-of-examples')."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not slug:
        raise ValueError(f"concept name {name!r} has no letters or digits")
    return slug


class Concept(BaseModel):
    """A concept with its definition, scope and provenance."""

    model_config = ConfigDict(frozen=True)

    name: NonEmptyName
    definition: str = ""
    kind: ConceptKind = ConceptKind.MANUAL
    scope: ConceptScope = ConceptScope.SHARED
    domains: tuple[str, ...] = ()
    provenance: dict[str, JsonValue] = Field(default_factory=dict)

    @property
    def id(self) -> str:
        return concept_id(self.name)

    @model_validator(mode="after")
    def _domain_scope_needs_domains(self) -> Self:
        if self.scope is ConceptScope.DOMAIN and not self.domains:
            raise ValueError(f"domain-specific concept {self.name!r} lists no domain")
        return self


class ConceptValue(BaseModel):
    """The value of one concept on one pair, as one annotator saw it.

    Comp-rep values are -1 (B shows it more), 0, +1 (A shows it more); Score-rep and measured values
    are real differences A - B.
    """

    model_config = ConfigDict(frozen=True)

    pair_id: str
    concept_id: str
    annotator: NonEmptyName
    value: float
    detail: dict[str, JsonValue] = Field(default_factory=dict)
