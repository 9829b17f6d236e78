"""Argument types the tools share: constraints and descriptions land in each tool's input schema, so the
SDK rejects a bad value (with the field named) before any tool code runs."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from tools.pairs import NonEmptyName

MechanismName = Annotated[NonEmptyName, Field(description="Whose preferences: a mechanism in the store, e.g. human.")]
DomainName = Annotated[NonEmptyName, Field(description="A domain of the store.")]
SourceName = Annotated[NonEmptyName, Field(description="Only pairs of this source (dataset).")]
AnnotatorName = Annotated[
    NonEmptyName, Field(description="Whose concept values to use (default: the only annotator of each concept).")
]
PairId = Annotated[str, Field(pattern=r"^[0-9a-f]{20}$", description="A stored pair's id (20 hex digits).")]
ModelId = Annotated[
    str, Field(pattern=r"^[0-9a-f]{16}$", description="A fitted model's id (default: the mechanism's latest).")
]
TopK = Annotated[int, Field(ge=1, le=100, description="Concepts shown per domain (or for the pair).")]
