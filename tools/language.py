"""Language identification for measured concepts: py3langid's model and decisions, many texts at once.

py3langid scores a text from the features its byte automaton visits, walking the text byte by byte in
Python (about 0.3 ms per response: a third of all measuring time). :func:`languages` walks many texts
together instead, one numpy step per byte position across all of them, and hands py3langid the same
visits in the same order (its float32 sums are then the same to the bit), so every decision is
py3langid's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
from py3langid.langid import MODEL_FILE, LanguageIdentifier

# Languages py3langid chooses among: broad, but without the rare ones it confuses short English with.
LANGUAGES = "en zh ja ko fr de es it pt nl ru uk pl cs sv da no fi tr ar he fa hi bn ur id vi th el hu ro bg sr hr ca"
SAMPLE = 2000  # characters read from the start of a text: enough to tell its language
BATCH = 256  # texts walked together (sorted by length, so little padding is walked)
Visits = tuple[np.ndarray, np.ndarray]


class _Identifier(LanguageIdentifier):
    """py3langid's identifier, its automaton walks precomputed for a batch (see :func:`languages`)."""

    nb_ptc: np.ndarray

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.set_languages(LANGUAGES.split())
        # float16 -> float32 is exact, and numpy casts to float32 for every score anyway (two thirds of
        # py3langid's own scoring time): cast once.
        self.nb_ptc = self.nb_ptc.astype(np.float32)
        self._moves = np.frombuffer(self.tk_nextmove, dtype=np.uint32)
        self._rows = np.asarray(self._rowbase, dtype=np.int64)
        self._outputs = np.asarray(self.tk_output, dtype=np.int64)
        self._walked: dict[bytes, Visits] = {}

    def _raw_score(self, text):
        walked = self._walked.get(text)
        if walked is None or not len(walked[0]):
            return super()._raw_score(text)
        features, counts = walked
        return np.log1p(counts) @ self.nb_ptc[features] + self.nb_pc  # as py3langid's _sparse_score

    def visits(self, encoded: Sequence[bytes]) -> list[Visits]:
        """The features each text's automaton walk visits and their counts (float32), in order of first
        visit (as py3langid's ``visit_counts`` counts them)."""
        result: list[Visits] = [(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))] * len(encoded)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]
            lengths = np.array([len(encoded[i]) for i in batch])
            width = int(lengths.max(initial=0))
            # One row per byte position (padding beyond a text's end is walked, then ignored).
            text_bytes = np.zeros((width, len(batch)), dtype=np.int64)
            for column, i in enumerate(batch):
                text_bytes[: lengths[column], column] = np.frombuffer(encoded[i], dtype=np.uint8)
            states = np.zeros(len(batch), dtype=np.int64)
            features = np.empty((width, len(batch)), dtype=np.int64)
            for position in range(width):
                states = self._moves[self._rows[states] + text_bytes[position]].astype(np.int64)
                features[position] = self._outputs[states]
            for column, i in enumerate(batch):
                walk = features[: lengths[column], column]
                walk = walk[walk >= 0]
                found, first, counts = np.unique(walk, return_index=True, return_counts=True)
                by_first = np.argsort(first)
                result[i] = found[by_first], counts[by_first].astype(np.float32)
        return result

    def classify_many(self, texts: Sequence[str]) -> list[str]:
        encoded = [self._encode(text) for text in texts]
        self._walked = dict(zip(encoded, self.visits(encoded), strict=True))
        try:
            return [self.classify(text)[0] for text in texts]
        finally:
            self._walked = {}


@cache
def identifier() -> _Identifier:
    return _Identifier.from_model_file(MODEL_FILE)


def languages(texts: Sequence[str]) -> list[str]:
    """Each text's language code (py3langid's decision on its first :data:`SAMPLE` characters), or ``""``
    for a blank text."""
    samples = [text[:SAMPLE] for text in texts]
    found = identifier().classify_many([s for s in samples if s.strip()])
    codes = iter(found)
    return [next(codes) if s.strip() else "" for s in samples]
