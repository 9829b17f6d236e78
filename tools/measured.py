"""Programmatic concepts: properties of a response that code measures exactly and for free.

Each is stored as a concept of kind ``measured`` (annotator ``measured``) beside the LLM's concepts
and usable by every model. A pair's value is the relative difference of the two responses'
measurements, (f(A) - f(B)) / (|f(A)| + |f(B)|), in [-1, 1] like Comp-rep values: +1 when only A
has the property, 0 when both measure the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyphen
import snowballstemmer

from tools.concepts import Concept, ConceptKind, ConceptValue
from tools.pairs import Pair

MEASURED_ANNOTATOR = "measured"

_WORD = re.compile(r"[A-Za-z\u00C0-\u024F']+|\d+(?:[.,]\d+)*")
_LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022+]|\d+[.)])\s+\S", re.MULTILINE)
_HEADING = re.compile(r"^\s*(?:#{1,6}\s+\S|\*\*[^*\n]{1,80}\*\*\s*:?\s*$)", re.MULTILINE)
_URL = re.compile(r"https?://\S+|www\.\S+")
_NUMBER = re.compile(r"(?<![A-Za-z])\d+(?:[.,]\d+)*%?")
_EMPHASIS = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__|(?<!\*)\*[^*\n]+\*(?!\*)")
_HEDGES = re.compile(
    r"\b(?:might|may|perhaps|possibly|probably|likely|unlikely|could|seems?|appears?|generally|typically|"
    r"usually|often|i think|i believe|it depends|not sure|in some cases)\b",
    re.IGNORECASE,
)
_REFUSAL = re.compile(
    r"\b(?:i(?:'m| am) sorry|i apologi[sz]e|sorry,|i can(?:not|'t)|i(?:'m| am) (?:not able|unable)|"
    r"as an ai|as a language model|i do not have (?:access|the ability)|i won't)\b",
    re.IGNORECASE,
)
_STOP = frozenset(
    "a an the and or but if of to in on at for with by from as is are was were be been it this that "
    "these those i you he she we they my your our their me him her them what which who how why when "
    "where do does did can could would should will shall not no yes so than then there here about into "
    "over under up down out ".split()
)


@cache
def _hyphenator() -> pyphen.Pyphen:
    return pyphen.Pyphen(lang="en_US")


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _sentences(text: str) -> int:
    return max(1, len(re.findall(r"[.!?]+(?:\s|$)", text)))


def flesch_reading_ease(text: str) -> float:
    """Flesch reading ease (higher = easier), syllables from pyphen's hyphenation dictionary."""
    words = [w for w in _words(text) if not w[0].isdigit()]
    if not words:
        return 0.0
    syllables = sum(len(_hyphenator().positions(w)) + 1 for w in words)
    return 206.835 - 1.015 * len(words) / _sentences(text) - 84.6 * syllables / len(words)


def _repetition(text: str) -> float:
    words = [w.lower() for w in _words(text)]
    trigrams = list(zip(words, words[1:], words[2:], strict=False))
    return 1.0 - len(set(trigrams)) / len(trigrams) if trigrams else 0.0


@cache
def _stemmer() -> snowballstemmer.stemmer:
    return snowballstemmer.stemmer("english")


def _stems(text: str) -> set[str]:
    return set(_stemmer().stemWords([w.lower() for w in _words(text) if w.lower() not in _STOP]))


def _query_overlap(text: str, query: str) -> float:
    """Share of the request's content words (stemmed) that the response uses."""
    asked = _stems(query)
    return len(_stems(text) & asked) / len(asked) if asked else 0.0


@dataclass(frozen=True)
class Measure:
    name: str
    definition: str
    measure: Callable[[str, str], float]  # (response, query) -> measurement


MEASURES: tuple[Measure, ...] = (
    Measure(
        "Length",
        "A high score indicates the response has more words; a low score, fewer.",
        lambda r, q: float(len(_words(r))),
    ),
    Measure(
        "List Formatting",
        "A high score indicates more bulleted or numbered list items; a low score, none.",
        lambda r, q: float(len(_LIST_ITEM.findall(r))),
    ),
    Measure(
        "Headings",
        "A high score indicates more section headings; a low score, none.",
        lambda r, q: float(len(_HEADING.findall(r))),
    ),
    Measure(
        "Code Blocks",
        "A high score indicates more fenced code blocks; a low score, none.",
        lambda r, q: float(r.count("```") // 2),
    ),
    Measure("Links", "A high score indicates more URLs; a low score, none.", lambda r, q: float(len(_URL.findall(r)))),
    Measure(
        "Numbers",
        "A high score indicates more numbers and figures; a low score, none.",
        lambda r, q: float(len(_NUMBER.findall(r))),
    ),
    Measure(
        "Emphasis",
        "A high score indicates more bold or italic emphasis; a low score, none.",
        lambda r, q: float(len(_EMPHASIS.findall(r))),
    ),
    Measure(
        "Paragraphs",
        "A high score indicates more paragraphs; a low score, a single block of text.",
        lambda r, q: float(len([p for p in re.split(r"\n\s*\n", r) if p.strip()])),
    ),
    Measure(
        "Hedging",
        "A high score indicates more hedging words (might, perhaps, usually...); a low score, none.",
        lambda r, q: float(len(_HEDGES.findall(r))),
    ),
    Measure(
        "Refusal or Apology",
        "A high score indicates refusal or apology phrases; a low score, none.",
        lambda r, q: float(len(_REFUSAL.findall(r))),
    ),
    Measure(
        "Questions to User",
        "A high score indicates more questions asked back to the user; a low score, none.",
        lambda r, q: float(len(re.findall(r"\?(?:\s|$)", r))),
    ),
    Measure(
        "Repetition",
        "A high score indicates more repeated word sequences; a low score, no repetition.",
        lambda r, q: _repetition(r),
    ),
    Measure(
        "Query Overlap",
        "A high score indicates the response reuses more of the request's words; a low score, few.",
        _query_overlap,
    ),
    Measure(
        "Readability",
        "A high score indicates easier text (Flesch reading ease); a low score, harder text.",
        lambda r, q: max(flesch_reading_ease(r), 0.0),
    ),
)


def measured_concepts() -> list[Concept]:
    return [
        Concept(
            name=m.name,
            definition=m.definition,
            kind=ConceptKind.MEASURED,
            provenance={"measured_by": "tools/measured.py"},
        )
        for m in MEASURES
    ]


def relative_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a - b) / (|a| + |b|), 0 where both are 0."""
    scale = np.abs(a) + np.abs(b)
    return np.divide(a - b, scale, out=np.zeros_like(a, dtype=float), where=scale > 0)


def measure_pairs(pairs: Sequence[Pair]) -> list[ConceptValue]:
    """Every measured concept's value on every pair."""
    concepts = measured_concepts()
    values = []
    for pair in pairs:
        query = pair.query_text
        a = np.array([m.measure(pair.response_a, query) for m in MEASURES])
        b = np.array([m.measure(pair.response_b, query) for m in MEASURES])
        for concept, value, ma, mb in zip(concepts, relative_difference(a, b), a, b, strict=True):
            values.append(
                ConceptValue(
                    pair_id=pair.id,
                    concept_id=concept.id,
                    annotator=MEASURED_ANNOTATOR,
                    value=float(value),
                    detail={"a": float(ma), "b": float(mb)},
                )
            )
    return values
