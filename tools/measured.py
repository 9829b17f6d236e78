"""Programmatic concepts: properties of a response that code measures exactly and for free.

Each is stored as a concept of kind ``measured`` (annotator ``measured``) beside the LLM's concepts
and usable by every model. A pair's value compares the two responses' measurements in [-1, 1] like
Comp-rep values (+1: only A has the property): for amounts, the relative difference
``(f(A) - f(B)) / (|f(A)| + |f(B)|)``; for flags (0 or 1), ``f(A) - f(B)``; for bounded scores, the
difference over the score's range.

Words are counted in every script (a Chinese or Japanese character is a word; so is a run of letters
of any other script), so no language gets all-zero vectors. **Length** is the only concept that
measures size: every other amount is a rate (per 100 words, per sentence) or a flag, so the length
effect is not counted twenty ways. Concepts that read English words (hedging, apologies, sentiment...)
are measured on English text only (the language is identified by py3langid, which ships its model);
elsewhere they are 0. Every concept here agrees with the preferred side significantly more (or less)
often than chance on a human-labelled stored set or on two sets (``benchmarks/bench_concepts.py``,
table of signals); candidates that did not (second-person address, politeness, restating the
request, refusal phrases apart from apologies, calling itself an AI, lexical diversity) were dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from multiprocessing import get_context
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import numpy as np
import pyphen

from tools.concepts import Concept, ConceptKind, ConceptValue
from tools.language import languages
from tools.pairs import Pair
from tools.store import ValueRow

MEASURED_ANNOTATOR = "measured"
# The code that measures: values stored by another version of it are measured again.
LIBRARY_VERSION = hashlib.sha256(
    Path(__file__).read_bytes() + Path(__file__).with_name("language.py").read_bytes()
).hexdigest()[:12]

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # kana and Han: one character, one word
_WORD = re.compile(rf"[{_CJK}]|[^\W\d_{_CJK}]+(?:['’][^\W\d_{_CJK}]+)*|\d+(?:[.,]\d+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022+]|\d+[.)])\s*")
PARALLEL_FROM = 1000  # pairs in a chunk from which worker processes pay for their start
RUN = 5  # words in a run copied from the request: long enough that common phrases rarely match by chance
_LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022+]|\d+[.)])\s+\S", re.MULTILINE)
_HEADING = re.compile(r"^\s*(?:#{1,6}\s+\S|\*\*[^*\n]{1,80}\*\*\s*:?\s*$)", re.MULTILINE)
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$", re.MULTILINE)
_FENCE = re.compile(r"^\s*```", re.MULTILINE)
_TAGGED_FENCE = re.compile(r"^\s*```[A-Za-z][\w+#.-]*\s*$", re.MULTILINE)
_URL = re.compile(r"https?://\S+|www\.\S+")
_CITATION = re.compile(r"\[\d{1,3}\]|\([A-Z][A-Za-z-]+(?: et al\.)?,? \d{4}\)|\baccording to\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![A-Za-z])\d+(?:[.,]\d+)*%?")
_UNIT = re.compile(
    r"\d(?:[\d.,]*)\s?(?:%|°[CF]?|\$|€|£|kg|g|mg|lb|lbs|oz|km|m|cm|mm|mi|ft|in|l|ml|L|mL|h|hr|hrs|hours?|min|"
    r"minutes?|s|sec|seconds?|days?|weeks?|months?|years?|GB|MB|KB|TB|GHz|MHz|px|cups?|tbsp|tsp|tablespoons?|"
    r"teaspoons?|calories|kcal)\b",
)
_EMPHASIS = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__|(?<!\*)\*[^*\n]+\*(?!\*)")
_QUESTION = re.compile(r"[?？](?:\s|$)")
_TERMINAL = re.compile(r"""[.!?。！？…)\]}"'”’`*:;]\s*$|```\s*$|^\s*(?:[-*\u2022+]|\d+[.)])\s+\S.*$""")


def _words_regex(words: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(words.split("|")) + r")\b", re.IGNORECASE)


# English lexicons (the words of the hedging, certainty... literature; short, so they read as written).
_HEDGES = _words_regex(
    "might|may|perhaps|possibly|probably|likely|unlikely|could|seems?|appears?|generally|typically|usually|"
    "often|i think|i believe|it depends|not sure|in some cases|somewhat|arguably"
)
_CERTAIN = _words_regex("definitely|certainly|clearly|always|never|undoubtedly|absolutely|guaranteed|must|surely")
_APOLOGY = _words_regex("i(?:'m| am) sorry|i apologi[sz]e|my apologies|sorry,|unfortunately")
_MORALISING = _words_regex(
    "it is important to (?:note|remember)|it's important to (?:note|remember)|remember that|keep in mind|"
    "please note|ethical|responsibly|consult (?:a|your) (?:doctor|professional|lawyer)|seek professional"
)
_FILLER = re.compile(
    r"^\s*(?:sure|certainly|of course|absolutely|great question|good question|okay|ok|yes|no problem)\b[!,.:]?",
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


@cache
def _sentiment():
    from vaderSentiment.vaderSentiment import BOOSTER_DICT, SentimentIntensityAnalyzer, SentiText

    class WindowedAnalyzer(SentimentIntensityAnalyzer):
        """VADER with the same scores in linear time and without its per-character Python loops.

        Its checks around word ``i`` read words ``i-3`` to ``i+2`` only, yet lowercase the whole text for
        every word (quadratic: half of all measuring time on long responses). They are handed those six
        words instead, ``i`` moved to match; each read is guarded by ``i > k`` (k < 3) or by the list's
        end, which the window keeps. Its emoji pass copies the text character by character; a text with no
        emoji it knows comes out of it unchanged, so such a text skips it, and words that are neither in
        the lexicon nor boosters score 0 without the valence checks (which return 0 for them)."""

        emoji_characters = frozenset(k for k in SentimentIntensityAnalyzer().emojis if len(k) == 1)

        def polarity_scores(self, text):
            if not self.emoji_characters.isdisjoint(text):
                return super().polarity_scores(text)
            sentitext = SentiText(text.strip())
            words = sentitext.words_and_emoticons
            sentiments: list[float] = []
            for i, item in enumerate(words):
                lower = item.lower()
                if (
                    lower in BOOSTER_DICT
                    or lower not in self.lexicon
                    or (lower == "kind" and i < len(words) - 1 and words[i + 1].lower() == "of")
                ):
                    sentiments.append(0)
                else:
                    self.sentiment_valence(0, sentitext, item, i, sentiments)
            return self.score_valence(self._but_check(words, sentiments), sentitext.text)

        def sentiment_valence(self, valence, sentitext, item, i, sentiments):
            start = max(0, i - 3)
            window = SimpleNamespace(
                is_cap_diff=sentitext.is_cap_diff, words_and_emoticons=sentitext.words_and_emoticons[start : i + 3]
            )
            return super().sentiment_valence(valence, window, item, i - start, sentiments)

    return WindowedAnalyzer()


@cache
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


class Profile:
    """What the measures read from one text, computed once (a response is often in several pairs)."""

    def __init__(self, text: str, language: str | None = None) -> None:
        self.text = text
        if language is not None:  # identified with others (:func:`tools.language.languages`)
            self.language = language

    @cached_property
    def words(self) -> list[str]:
        return _WORD.findall(self.text)

    @cached_property
    def n_words(self) -> int:
        return len(self.words)

    @cached_property
    def segments(self) -> list[str]:
        """Its sentences and lines."""
        return _SENTENCE_END.split(self.text)

    @cached_property
    def sentences(self) -> list[int]:
        """Words per sentence (or line), for the non-empty ones."""
        counts = [len(_WORD.findall(s)) for s in self.segments]
        return [c for c in counts if c]

    @cached_property
    def lower_words(self) -> list[str]:
        return [w.lower() for w in self.words]

    @cached_property
    def word_runs(self) -> frozenset[tuple[str, ...]]:
        """Its runs of :data:`RUN` consecutive words (lowercased)."""
        return frozenset(_runs(self.lower_words))

    @cached_property
    def run_starts(self) -> frozenset[str]:
        """The first words of its :attr:`word_runs`."""
        words = self.lower_words
        return frozenset(words[: len(words) - RUN + 1]) if len(words) >= RUN else frozenset()

    @cached_property
    def units(self) -> list[str]:
        """Its sentences and lines, lowercased, without list markers and spacing (the non-trivial ones)."""
        units = (_LIST_MARKER.sub("", u).strip().lower() for u in self.segments)
        return [" ".join(u.split()) for u in units if len(u) > 3]

    @cached_property
    def language(self) -> str:
        return languages([self.text])[0]

    @property
    def english(self) -> bool:
        return self.language == "en"

    @cached_property
    def stems(self) -> frozenset[str]:
        return frozenset(_stemmer().stemWords([w for w in self.lower_words if w not in _STOP]))

    def rate(self, pattern: re.Pattern[str]) -> float:
        """Matches per 100 words (0 for an empty text)."""
        return 100.0 * len(pattern.findall(self.text)) / self.n_words if self.n_words else 0.0

    def english_rate(self, pattern: re.Pattern[str]) -> float:
        return self.rate(pattern) if self.english else 0.0

    def english_flag(self, pattern: re.Pattern[str]) -> float:
        return float(self.english and pattern.search(self.text) is not None)


@lru_cache(maxsize=1 << 16)
def _syllables(word: str) -> int:
    return len(_hyphenator().positions(word)) + 1


def flesch_reading_ease(profile: Profile) -> float:
    """Flesch reading ease (higher = easier) of English text, syllables from pyphen's dictionary."""
    words = [w for w in profile.words if not w[0].isdigit()]
    if not words or not profile.english:
        return 0.0
    syllables = sum(_syllables(w) for w in words)
    score = 206.835 - 1.015 * len(words) / max(1, len(profile.sentences)) - 84.6 * syllables / len(words)
    return min(max(score, 0.0), 100.0)


def _runs(words: Sequence[str]) -> list[tuple[str, ...]]:
    return list(zip(*(words[i:] for i in range(RUN)), strict=False))


def _copied_request(response: Profile, query: Profile) -> float:
    """Share of the response's runs of five words that occur word for word in the request."""
    words, starts = response.lower_words, query.run_starts
    # Only a run starting with a word that starts one of the request's is looked up (no tuple per word,
    # and the request's runs are built only if one is).
    copied = sum(
        1 for i in range(len(words) - RUN + 1) if words[i] in starts and tuple(words[i : i + RUN]) in query.word_runs
    )
    return copied / (len(words) - RUN + 1) if len(words) >= RUN else 0.0


def _repeated_sentences(profile: Profile) -> float:
    """Share of its sentences (and lines, list markers aside) that repeat an earlier one."""
    units = profile.units
    return 1.0 - len(set(units)) / len(units) if len(units) > 1 else 0.0


def _repetition(profile: Profile) -> float:
    words = profile.lower_words
    trigrams = list(zip(words, words[1:], words[2:], strict=False))
    return 1.0 - len(set(trigrams)) / len(trigrams) if trigrams else 0.0


def _query_overlap(response: Profile, query: Profile) -> float:
    """Share of the request's content words (stemmed) that the response uses."""
    return len(response.stems & query.stems) / len(query.stems) if query.stems else 0.0


def _mean(counts: Sequence[int]) -> float:
    """statistics.mean of whole numbers, without its exact fractions: int / int is correctly rounded too."""
    return sum(counts) / len(counts)


def _variety(profile: Profile) -> float:
    """Coefficient of variation of sentence lengths (0 for fewer than two sentences)."""
    lengths = profile.sentences
    return statistics.pstdev(lengths) / _mean(lengths) if len(lengths) > 1 else 0.0


_CJK_CHARACTER = re.compile(rf"[{_CJK}]")


def _word_length(profile: Profile) -> float:
    """Mean letters per word, over words written with letters (not CJK characters, not numbers)."""
    lengths = [len(w) for w in profile.words if not w[0].isdigit() and not _CJK_CHARACTER.fullmatch(w)]
    return _mean(lengths) if lengths else 0.0


def _truncated(profile: Profile) -> float:
    """1 when the text stops mid-sentence (its last line ends without closing punctuation)."""
    lines = [line for line in profile.text.strip().splitlines() if line.strip()]
    return float(bool(lines) and profile.n_words >= 10 and _TERMINAL.search(lines[-1]) is None)


def _broken_markdown(profile: Profile) -> float:
    """1 when a code fence or a bold marker is left open."""
    return float(len(_FENCE.findall(profile.text)) % 2 == 1 or profile.text.count("**") % 2 == 1)


def _language_match(response: Profile, query: Profile) -> float:
    """1 when the response is in the request's language (both long enough to tell)."""
    if len(query.text.strip()) < 20 or response.n_words < 3:
        return 0.0
    return float(response.language == query.language)


Kind = Literal["amount", "flag", "score"]


@dataclass(frozen=True)
class Measure:
    name: str
    definition: str
    measure: Callable[[Profile, Profile], float]  # (response, query) -> measurement
    kind: Kind = "amount"
    span: float = 1.0  # a score's range (its pair value is the difference over it)


MEASURES: tuple[Measure, ...] = (
    Measure(
        "Length", "A high score indicates the response has more words; a low score, fewer.", lambda r, q: r.n_words
    ),
    Measure(
        "List Formatting",
        "A high score indicates more bulleted or numbered list items per 100 words; a low score, none.",
        lambda r, q: r.rate(_LIST_ITEM),
    ),
    Measure(
        "Headings",
        "A high score indicates more section headings per 100 words; a low score, none.",
        lambda r, q: r.rate(_HEADING),
    ),
    Measure(
        "Tables",
        "A high score indicates the response has a table; a low score, none.",
        lambda r, q: float(len(_TABLE_ROW.findall(r.text)) >= 2),
        "flag",
    ),
    Measure(
        "Code Blocks",
        "A high score indicates more fenced code blocks per 100 words; a low score, none.",
        lambda r, q: r.rate(_FENCE) / 2,
    ),
    Measure(
        "Code Language Tag",
        "A high score indicates code blocks that name their language; a low score, untagged or none.",
        lambda r, q: float(_TAGGED_FENCE.search(r.text) is not None),
        "flag",
    ),
    Measure("Links", "A high score indicates more URLs per 100 words; a low score, none.", lambda r, q: r.rate(_URL)),
    Measure(
        "Citations",
        "A high score indicates references to sources ([1], (Author, 2020), according to); a low score, none.",
        lambda r, q: r.rate(_CITATION),
    ),
    Measure(
        "Numbers",
        "A high score indicates more numbers and figures per 100 words; a low score, none.",
        lambda r, q: r.rate(_NUMBER),
    ),
    Measure(
        "Units",
        "A high score indicates more quantities with units (200 g, 15 minutes, 3 km) per 100 words; a low score, none.",
        lambda r, q: r.rate(_UNIT),
    ),
    Measure(
        "Emphasis",
        "A high score indicates more bold or italic emphasis per 100 words; a low score, none.",
        lambda r, q: r.rate(_EMPHASIS),
    ),
    Measure(
        "Paragraphs",
        "A high score indicates shorter paragraphs (more of them per 100 words); a low score, one block of text.",
        lambda r, q: 100.0 * len([p for p in re.split(r"\n\s*\n", r.text) if p.strip()]) / max(r.n_words, 1),
    ),
    Measure(
        "Sentence Length",
        "A high score indicates longer sentences (words per sentence); a low score, short ones.",
        lambda r, q: _mean(r.sentences) if r.sentences else 0.0,
    ),
    Measure(
        "Sentence Variety",
        "A high score indicates sentences of varied lengths; a low score, uniform ones.",
        lambda r, q: _variety(r),
    ),
    Measure(
        "Word Length",
        "A high score indicates longer words on average; a low score, short everyday words.",
        lambda r, q: _word_length(r),
    ),
    Measure(
        "Questions to User",
        "A high score indicates more questions asked back per 100 words; a low score, none.",
        lambda r, q: r.rate(_QUESTION),
    ),
    Measure(
        "Hedging",
        "A high score indicates more hedging words (might, perhaps, usually...) per 100 words; a low score, none.",
        lambda r, q: r.english_rate(_HEDGES),
    ),
    Measure(
        "Certainty",
        "A high score indicates more words of certainty (definitely, always...) per 100 words; a low score, none.",
        lambda r, q: r.english_rate(_CERTAIN),
    ),
    Measure(
        "Sentiment",
        "A high score indicates a more positive tone (VADER compound score); a low score, a negative one.",
        lambda r, q: _sentiment().polarity_scores(r.text[:5000])["compound"] if r.english else 0.0,
        "score",
        2.0,
    ),
    Measure(
        "Apology",
        "A high score indicates the response apologises; a low score, it does not.",
        lambda r, q: r.english_flag(_APOLOGY),
        "flag",
    ),
    Measure(
        "Moralising",
        "A high score indicates caveats and admonitions (it is important to note...); a low score, none.",
        lambda r, q: r.english_rate(_MORALISING),
    ),
    Measure(
        "Filler Opening",
        "A high score indicates the response opens with filler (Sure!, Certainly!, Great question); a low score, "
        "it starts with the answer.",
        lambda r, q: float(r.english and _FILLER.search(r.text) is not None),
        "flag",
    ),
    Measure(
        "Repetition",
        "A high score indicates more repeated word sequences; a low score, no repetition.",
        lambda r, q: _repetition(r),
        "score",
    ),
    Measure(
        "Query Overlap",
        "A high score indicates the response reuses more of the request's words; a low score, few.",
        _query_overlap,
        "score",
    ),
    Measure(
        "Copied Request",
        "A high score indicates the response copies the request's wording (runs of five words taken from it); a "
        "low score, its own words.",
        _copied_request,
        "score",
    ),
    Measure(
        "Repeated Sentences",
        "A high score indicates sentences or list items said more than once; a low score, each said once.",
        lambda r, q: _repeated_sentences(r),
        "score",
    ),
    Measure(
        "Readability",
        "A high score indicates easier English text (Flesch reading ease); a low score, harder text.",
        lambda r, q: flesch_reading_ease(r),
        "score",
        100.0,
    ),
    Measure(
        "Query Language",
        "A high score indicates the response is in the language of the request; a low score, another language.",
        _language_match,
        "flag",
    ),
    Measure(
        "Truncation",
        "A high score indicates the response stops mid-sentence; a low score, it ends properly.",
        lambda r, q: _truncated(r),
        "flag",
    ),
    Measure(
        "Broken Markdown",
        "A high score indicates an unclosed code fence or bold marker; a low score, clean markup.",
        lambda r, q: _broken_markdown(r),
        "flag",
    ),
)


def measured_concepts() -> list[Concept]:
    return [
        Concept(
            name=m.name,
            definition=m.definition,
            kind=ConceptKind.MEASURED,
            provenance={"measured_by": "tools/measured.py", "value": m.kind, "version": LIBRARY_VERSION},
        )
        for m in MEASURES
    ]


def relative_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a - b) / (|a| + |b|), 0 where both are 0."""
    scale = np.abs(a) + np.abs(b)
    return np.divide(a - b, scale, out=np.zeros_like(a, dtype=float), where=scale > 0)


def pair_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Every measure's pair value from the two responses' measurements (last axis: the measures), in
    [-1, 1]: the relative difference for amounts, the difference over the range for flags and scores."""
    amount = np.array([m.kind == "amount" for m in MEASURES])
    span = np.array([m.span for m in MEASURES])
    return np.where(amount, relative_difference(a, b), (a - b) / span)


def measurements(texts: Sequence[tuple[str, str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Every measure on response A and on response B of each (query, A, B): two (pairs x measures)
    arrays. Each distinct text is profiled once; plain strings in and arrays out, so worker processes
    can run it cheaply."""
    distinct = list(dict.fromkeys(text for triple in texts for text in triple))
    profiles = {text: Profile(text, language) for text, language in zip(distinct, languages(distinct), strict=True)}
    profile = profiles.__getitem__

    measured: dict[tuple[str, str], list[float]] = {}

    def measure(response: str, query: str) -> list[float]:
        key = (response, query)
        if key not in measured:
            r, q = profile(response), profile(query)
            measured[key] = [float(m.measure(r, q)) for m in MEASURES]
        return measured[key]

    shape = (len(texts), len(MEASURES))
    a, b = np.empty(shape), np.empty(shape)
    for i, (query, response_a, response_b) in enumerate(texts):
        a[i], b[i] = measure(response_a, query), measure(response_b, query)
    return a, b


def texts_of(pairs: Sequence[Pair]) -> list[tuple[str, str, str]]:
    return [(p.query_text, p.response_a, p.response_b) for p in pairs]


def measured_rows(pairs: Sequence[Pair], a: np.ndarray, b: np.ndarray) -> list[ValueRow]:
    """The pairs' values as store rows, from their responses' measurements (as :func:`measurements`
    returns them); the detail holds both measurements."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        bad = sorted({MEASURES[j].name for j in np.nonzero(~np.isfinite(a) | ~np.isfinite(b))[1]})
        raise ValueError(f"measured concept(s) {', '.join(bad)} gave a non-finite measurement")
    concept_ids = [c.id for c in measured_concepts()]
    rows = zip((p.id for p in pairs), pair_values(a, b).tolist(), a.tolist(), b.tolist(), strict=True)
    # The detail as the store's JSON writes it (finite floats print as their repr), without a dump per value.
    return [
        (pair_id, concept_id, MEASURED_ANNOTATOR, value, f'{{"a": {xa!r}, "b": {xb!r}}}')
        for pair_id, values, ma, mb in rows
        for concept_id, value, xa, xb in zip(concept_ids, values, ma, mb, strict=True)
    ]


def measure_rows(pairs: Sequence[Pair]) -> list[ValueRow]:
    """Every measured concept's value on every pair, as store rows, measured in this process."""
    return measured_rows(pairs, *measurements(texts_of(pairs)))


def measure_pairs(pairs: Sequence[Pair]) -> list[ConceptValue]:
    """Every measured concept's value on every pair."""
    rows = measure_rows(pairs)
    return [ConceptValue(pair_id=p, concept_id=c, annotator=a, value=v, detail=json.loads(d)) for p, c, a, v, d in rows]


def measured_chunks(
    chunks: Iterable[tuple[list[Pair], list[Pair]]],
) -> Iterator[tuple[list[Pair], list[ValueRow]]]:
    """(chunk, value rows of its pairs to measure) for each (chunk, pairs to measure), in order. Small
    chunks are measured here; large ones are split over one worker process per core, and the next chunk
    is measured while the caller writes this one, so at most two chunks are held at a time."""
    # Forked workers (Linux): they start in milliseconds and never re-run the caller's script, which
    # spawned ones do (a script without a __main__ guard would start itself again). They only compute:
    # no lock, file or connection of this process is touched in them.
    workers = len(os.sched_getaffinity(0)) if sys.platform == "linux" else 1
    pending: deque[tuple[list[Pair], list[Pair], list[Future[tuple[np.ndarray, np.ndarray]]]]] = deque()

    def collect() -> tuple[list[Pair], list[ValueRow]]:
        chunk, todo, parts = pending.popleft()
        results = [part.result() for part in parts]
        a, b = np.vstack([r[0] for r in results]), np.vstack([r[1] for r in results])
        return chunk, measured_rows(todo, a, b)

    with ExitStack() as stack:
        pool: ProcessPoolExecutor | None = None
        for chunk, todo in chunks:
            if workers == 1 or len(todo) < PARALLEL_FROM:
                while pending:
                    yield collect()
                yield chunk, measure_rows(todo) if todo else []
                continue
            if pool is None:
                pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=get_context("fork")))
            texts = texts_of(todo)
            size = -(-len(texts) // workers)
            parts = [pool.submit(measurements, texts[i : i + size]) for i in range(0, len(texts), size)]
            pending.append((chunk, todo, parts))
            if len(pending) > 1:
                yield collect()
        while pending:
            yield collect()
