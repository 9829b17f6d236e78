"""The operations users run, one function each, called alike by the CLI and the MCP server (which add
only their presentation: a console and progress bars, or typed answers and progress notifications)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

from tools.annotation import Annotation, AnnotationConfig, AnnotationResult
from tools.errors import WhyprefError
from tools.llm import LLM, Estimate
from tools.pairs import Pair
from tools.progress import Progress
from tools.store import ConceptStore


@dataclass(frozen=True)
class Selection:
    """Which stored pairs: of a source and/or a domain (default: all), at most ``limit``."""

    source: str | None = None
    domain: str | None = None
    limit: int | None = None

    def pairs(self, store: ConceptStore) -> tuple[Iterator[Pair], int]:
        """The selected pairs, streamed, and how many there are; an error when there are none."""
        count = sum(store.source_counts(source=self.source, domain=self.domain).values())
        if count == 0:
            raise WhyprefError("no pairs to annotate (check source / domain)")
        total = count if self.limit is None else min(count, self.limit)
        return islice(store.pairs(source=self.source, domain=self.domain), self.limit), total


def annotate(
    store: ConceptStore,
    llm: LLM | None,
    config: AnnotationConfig,
    selection: Selection | None = None,
    *,
    progress: Progress | None = None,
) -> AnnotationResult:
    """Measured concepts on the selected pairs (default: all), then (with an LLM) the LLM's concepts;
    only values the store lacks are computed or asked for."""
    pairs, total = (selection or Selection()).pairs(store)
    return Annotation(store, llm, config, progress).run(pairs, total)


def estimate_annotation(
    store: ConceptStore,
    llm: LLM,
    config: AnnotationConfig,
    selection: Selection | None = None,
) -> dict[str, Estimate]:
    """The calls and tokens annotating the selected pairs would spend, by stage (nothing is spent)."""
    pairs, _ = (selection or Selection()).pairs(store)
    return Annotation(store, llm, config).estimate(list(pairs))
