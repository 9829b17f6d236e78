"""Data-driven candidate concepts: phrases whose presence in one response and not in the other predicts
which one is preferred, beyond what the concepts already in hand explain.

:func:`mine_patterns` reads every response's word n-grams (1 to 3 words, any script; a Chinese or
Japanese character is a word) and keeps those that separate the two responses of enough pairs. It
then selects phrases forward, one at a time: a logistic regression of the labels on the concepts in
hand (measured concepts, Length among them) plus the phrases already selected gives every pair's
residual, and each remaining phrase gets a score test of "its weight is zero", with a variance
robust to pairs sharing a query (clustered by query group). The phrase with the largest |z| is added
only if |z| beats the (1 - ``significance``) quantile of the largest |z| over *all* phrases under the
null, from a multiplier bootstrap by query group; so each step's false discovery chance is at most
``significance`` whatever the number of phrases and however they overlap ("step by", "by step").
A phrase whose raw agreement with the labels has the other sign than its weight is not taken (it
only corrects other concepts: not a property one could name). :func:`pattern_concept` turns the kept
ones into concepts of kind ``mined`` with their provenance (the phrase, z, family-wise p-value,
example pairs); an LLM, when one is given, writes the name and definition from the examples. Their
values are computed by code, exactly and for free (:func:`pattern_values`).

Phrases are chosen on the pairs they are mined from: a model evaluated on those pairs is optimistic.
The discovery agent mines on its training split only and keeps a phrase only if held-out accuracy
does not fall; ``benchmarks/bench_concepts.py`` mines inside each training fold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from pydantic import BaseModel, Field, JsonValue
from sklearn.linear_model import LogisticRegression

from tools.concepts import Concept, ConceptKind, ConceptValue
from tools.design import load_design
from tools.errors import WhyprefError
from tools.llm import LLM, Request
from tools.measured import _STOP, _WORD
from tools.pairs import Pair
from tools.prompting import cut, load_prompt
from tools.store import ConceptStore

MINED_ANNOTATOR = "mined"


class MiningConfig(BaseModel):
    max_words: int = Field(default=3, ge=1, le=5, description="Longest phrase, in words.")
    min_pairs: int = Field(default=25, ge=2, description="Pairs a phrase must tell apart (in one response only).")
    max_share: float = Field(default=0.3, gt=0, le=1, description="Phrases in more responses than this are ignored.")
    max_phrases: int = Field(default=20_000, ge=10, description="Phrases considered, most frequent first.")
    significance: float = Field(
        default=0.05, gt=0, lt=1, description="Chance, per step, of adding a phrase that predicts nothing."
    )
    max_patterns: int = Field(default=10, ge=1, description="Phrases selected at most.")
    resamples: int = Field(default=500, ge=100, description="Multiplier-bootstrap draws behind the threshold.")
    random_state: int = 0


class MinedPattern(BaseModel):
    phrase: str
    weight: float = Field(description="Its weight beside the given concepts (+: the response with it is preferred).")
    z: float = Field(description="Robust score-test z when it was selected (clustered by query group).")
    p_value: float = Field(description="Family-wise p-value: share of null draws whose largest |z| beats its |z|.")
    pairs: int = Field(description="Pairs where exactly one response has it.")
    agreement: float = Field(description="Share of those pairs where the response with it was preferred.")
    examples: list[str] = Field(description="Pairs where it was in the preferred response only (ids).")


@lru_cache(maxsize=65536)
def phrases(text: str, max_words: int = 3) -> frozenset[str]:
    """The text's word n-grams, 1 to ``max_words`` words, lower-cased."""
    words = [w.lower() for w in _WORD.findall(text)]
    found: set[str] = set()
    for n in range(1, max_words + 1):
        found.update(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    return frozenset(found)


def _difference_matrix(
    sets_a: Sequence[frozenset[str]], sets_b: Sequence[frozenset[str]], vocabulary: dict[str, int]
) -> sp.csr_matrix:
    """presence(A) - presence(B) of every vocabulary phrase, one row per pair."""
    rows, columns, values = [], [], []
    for i, (a, b) in enumerate(zip(sets_a, sets_b, strict=True)):
        for only, sign in ((a - b, 1.0), (b - a, -1.0)):
            for phrase in only:
                if phrase in vocabulary:
                    rows.append(i)
                    columns.append(vocabulary[phrase])
                    values.append(sign)
    return sp.csr_matrix((values, (rows, columns)), shape=(len(sets_a), len(vocabulary)))


def _nameable(phrase: str) -> bool:
    """A phrase one could name a concept by: not only function words or numbers."""
    return any(len(w) > 2 and w not in _STOP and not w[0].isdigit() for w in phrase.split())


def _content_words(phrase: str) -> tuple[int, int]:
    """(content words, -function words): the sort key that prefers "step by step" to "is step by"."""
    words = phrase.split()
    stop = sum(w in _STOP for w in words)
    return len(words) - stop, -stop


def _vocabulary(
    sets_a: Sequence[frozenset[str]], sets_b: Sequence[frozenset[str]], config: MiningConfig
) -> dict[str, int]:
    responses: Counter[str] = Counter()
    separating: Counter[str] = Counter()
    for a, b in zip(sets_a, sets_b, strict=True):
        responses.update(a)
        responses.update(b)
        separating.update(a ^ b)
    limit = config.max_share * 2 * len(sets_a)
    kept = [p for p, n in separating.items() if n >= config.min_pairs and responses[p] <= limit and _nameable(p)]
    kept.sort(key=lambda p: (-separating[p], p))  # set order varies with string hashing: sort fully
    return {p: j for j, p in enumerate(kept[: config.max_phrases])}


# Phrases are scored in blocks of this many columns, so that the dense (groups x phrases) score
# contributions stay small whatever the vocabulary.
_BLOCK = 2048


def _base_fit(Z: NDArray[np.float64], y01: NDArray[np.float64]) -> NDArray[np.float64]:
    """P(A preferred) from a logistic regression on ``Z`` without intercept (A/B symmetric), lightly L2
    penalised so that separable columns (a phrase only ever in winners) stay finite."""
    if Z.shape[1] == 0:
        return np.full(y01.size, 0.5)
    model = LogisticRegression(C=10.0, fit_intercept=False, max_iter=1000).fit(Z, y01)
    return np.asarray(model.predict_proba(Z)[:, 1])


def _weight(Z: NDArray[np.float64], y01: NDArray[np.float64]) -> float:
    """The last column's weight in the regression of :func:`_base_fit`."""
    return float(LogisticRegression(C=10.0, fit_intercept=False, max_iter=1000).fit(Z, y01).coef_[0, -1])


@dataclass(frozen=True)
class _Scores:
    z: NDArray[np.float64]  # robust score z of every phrase
    null_max: NDArray[np.float64]  # largest |z| over all phrases, per multiplier draw


def _score_tests(
    P: sp.csc_matrix,
    Z: NDArray[np.float64],
    p: NDArray[np.float64],
    y01: NDArray[np.float64],
    membership: sp.csr_matrix,
    multipliers: NDArray[np.float64],
) -> _Scores:
    """Score test of every phrase column of ``P`` beside ``Z`` (fitted probabilities ``p``), clustered by
    the groups of ``membership`` (groups x pairs), with the multiplier-bootstrap null of the max |z|."""
    residual = y01 - p
    w = p * (1 - p)
    # Efficient score: phrase columns with their projection on Z (weighted by w) removed, so that a
    # phrase that only stands in for Length or another concept in Z scores nothing.
    gram = Z.T @ (w[:, None] * Z) + 1e-8 * np.eye(Z.shape[1])
    group_residual_z = membership @ (residual[:, None] * Z)  # (groups, k)
    weighted = membership.multiply(residual[None, :]).tocsr()  # sums r_i x_ij over each group
    z = np.empty(P.shape[1])
    null_max = np.zeros(multipliers.shape[0])
    for start in range(0, P.shape[1], _BLOCK):
        block = P[:, start : start + _BLOCK]
        projection = np.linalg.solve(gram, np.asarray((block.T @ (w[:, None] * Z)).T))  # (k, block)
        contributions = np.asarray((weighted @ block).todense()) - group_residual_z @ projection
        scale = np.sqrt(np.sum(contributions**2, axis=0))
        scale[scale == 0] = np.inf
        z[start : start + block.shape[1]] = contributions.sum(axis=0) / scale
        null_max = np.maximum(null_max, np.max(np.abs(multipliers @ contributions) / scale, axis=1))
    return _Scores(z=z, null_max=null_max)


def mine_patterns(
    texts: Sequence[tuple[str, str]],
    y: NDArray[np.int64],
    groups: NDArray[np.intp],
    base: NDArray[np.float64] | None = None,
    config: MiningConfig | None = None,
    pair_ids: Sequence[str] | None = None,
) -> list[MinedPattern]:
    """Phrases that predict the labels ``y`` (+1: A preferred, -1: B; no ties) beside ``base``, selected
    forward while each beats the family-wise null threshold.

    Parameters
    ----------
    texts : sequence of (str, str)
        Responses A and B of every pair.
    y, groups :
        Labels and query groups of the pairs (the score variance and the null are clustered by group).
    base : ndarray of shape (n_pairs, n_concepts), default=None
        Values of the concepts in hand (phrases are mined for what they leave unexplained).
    config : MiningConfig, default=None
        Sizes and thresholds.
    pair_ids : sequence of str, default=None
        Ids of the pairs, for the examples.

    Returns
    -------
    list of MinedPattern
        The selected phrases in the order selected, at most ``config.max_patterns``.
    """
    config = config or MiningConfig()
    sets_a = [phrases(a, config.max_words) for a, _ in texts]
    sets_b = [phrases(b, config.max_words) for _, b in texts]
    vocabulary = _vocabulary(sets_a, sets_b, config)
    if not vocabulary:
        return []
    P = _difference_matrix(sets_a, sets_b, vocabulary).tocsc()
    names = list(vocabulary)
    y01 = (np.asarray(y) == 1).astype(float)
    group_index = np.unique(groups, return_inverse=True)[1].ravel()
    membership = sp.csr_matrix(
        (np.ones(y01.size), (group_index, np.arange(y01.size))), shape=(int(group_index.max()) + 1, y01.size)
    )
    rng = np.random.default_rng(config.random_state)
    multipliers = rng.choice([-1.0, 1.0], size=(config.resamples, membership.shape[0]))  # Rademacher, per group
    # Share of the pairs a phrase tells apart where the response with it was preferred.
    agreeing = np.asarray((P.multiply((2 * y01 - 1)[:, None]) > 0).sum(axis=0)).ravel()
    agreement = agreeing / np.maximum(P.getnnz(axis=0), 1)
    Z = np.zeros((y01.size, 0)) if base is None else np.asarray(base, dtype=float)
    patterns: list[MinedPattern] = []
    taken: set[int] = set()
    while len(patterns) < config.max_patterns:
        scores = _score_tests(P, Z, _base_fit(Z, y01), y01, membership, multipliers)
        threshold = float(np.quantile(scores.null_max, 1 - config.significance))
        # Not taken: phrases already in, and those whose raw agreement has the other sign than their z.
        eligible = np.abs(scores.z) * ((agreement - 0.5) * scores.z > 0)
        eligible[list(taken)] = 0.0
        best = float(eligible.max())
        if best <= threshold:
            break
        # Phrases on exactly the same pairs ("is step", "step by step") tie: the one with most content
        # words names the property best.
        tied = np.flatnonzero(eligible >= best * (1 - 1e-9))
        j = int(max(tied, key=lambda t: _content_words(names[t])))
        taken.add(j)
        column = np.asarray(P[:, j].todense()).ravel()
        Z = np.column_stack([Z, column])
        chosen = np.flatnonzero(np.sign(column) == 2 * y01 - 1)[:3]
        patterns.append(
            MinedPattern(
                phrase=names[j],
                weight=_weight(Z, y01),
                z=float(scores.z[j]),
                p_value=float(np.mean(scores.null_max >= abs(scores.z[j]))),
                pairs=int(np.count_nonzero(column)),
                agreement=float(agreement[j]),
                examples=[pair_ids[i] for i in chosen] if pair_ids is not None else [],
            )
        )
    return patterns


def pattern_concept(
    pattern: MinedPattern, mechanism: str, name: str | None = None, definition: str | None = None
) -> Concept:
    """A candidate concept for a mined phrase (template name and definition unless given)."""
    return Concept(
        name=name or f'Phrase "{pattern.phrase}"',
        definition=definition
        or f'A high score indicates the response contains "{pattern.phrase}"; a low score, that it does not.',
        kind=ConceptKind.MINED,
        provenance={
            "pattern": pattern.phrase,
            "mined_from": mechanism,
            "weight": pattern.weight,
            "z": pattern.z,
            "p_value": pattern.p_value,
            "pairs": pattern.pairs,
            "agreement": pattern.agreement,
            "examples": list[JsonValue](pattern.examples),
            "named_by": "template" if name is None else "llm",
        },
    )


@dataclass(frozen=True)
class _Phrase:
    concept_id: str
    phrase: str
    words: int


def pattern_values(pairs: Iterable[Pair], concepts: Sequence[Concept]) -> list[ConceptValue]:
    """presence(A) - presence(B) of every mined concept's phrase on every pair (exact, free)."""
    mined = [
        _Phrase(c.id, str(c.provenance["pattern"]), len(str(c.provenance["pattern"]).split()))
        for c in concepts
        if c.kind is ConceptKind.MINED and "pattern" in c.provenance
    ]
    if not mined:
        return []
    longest = max(m.words for m in mined)
    values = []
    for pair in pairs:
        a, b = phrases(pair.response_a, longest), phrases(pair.response_b, longest)
        for m in mined:
            values.append(
                ConceptValue(
                    pair_id=pair.id,
                    concept_id=m.concept_id,
                    annotator=MINED_ANNOTATOR,
                    value=float(m.phrase in a) - float(m.phrase in b),
                )
            )
    return values


class PatternName(BaseModel):
    name: str = Field(min_length=2, max_length=60)
    definition: str = Field(min_length=10, max_length=400)


class MiningResult(BaseModel):
    mechanism: str
    pairs: int = Field(description="Non-tie pairs mined.")
    patterns: list[MinedPattern]
    concepts: list[str] = Field(description="Ids of the candidate concepts added (kind mined).")
    named_by: str = Field(description="template, or the LLM that wrote names and definitions.")


def _snippet(text: str, phrase: str, width: int = 160) -> str:
    at = text.lower().find(phrase)
    start = max(0, at - width // 2) if at >= 0 else 0
    return ("..." if start else "") + text[start : start + width].replace("\n", " ") + "..."


def name_patterns(
    llm: LLM, patterns: Sequence[MinedPattern], store: ConceptStore, max_chars: int = 300
) -> list[PatternName | None]:
    """Names and definitions an LLM writes from each pattern's example pairs (None where none fit)."""
    prompt = load_prompt("name_pattern")
    requests = []
    for pattern in patterns:
        examples = []
        for pair in (store.pair(p) for p in pattern.examples):
            a_has = pattern.phrase in phrases(pair.response_a)
            with_it, without = (pair.response_a, pair.response_b) if a_has else (pair.response_b, pair.response_a)
            examples.append(
                {
                    "query": cut(pair.query_text, max_chars),
                    "with": _snippet(with_it, pattern.phrase, max_chars),
                    "without": cut(without, max_chars),
                }
            )
        requests.append(Request("name", prompt.render(phrase=pattern.phrase, examples=examples), PatternName))
    return llm.run(requests) if requests else []


def mine_store(
    store: ConceptStore,
    mechanism: str,
    *,
    config: MiningConfig | None = None,
    pair_ids: Collection[str] | None = None,
    llm: LLM | None = None,
    source: str | None = None,
) -> MiningResult:
    """Mine a mechanism's labelled pairs (or only ``pair_ids``) beside the concepts in the store, and add
    the stable phrases as candidate concepts with their values on every pair."""
    design = load_design(store, mechanism, source=source)
    if pair_ids is not None:
        design = design.subset(np.array([p in pair_ids for p in design.pair_ids]))
    fitting, _ = design.for_fitting()
    if min(np.sum(fitting.y == 1), np.sum(fitting.y == -1)) < 5:
        raise WhyprefError(f"too few non-tie pairs of {mechanism!r} to mine ({fitting.y.size})")
    texts = [(a, b) for _, a, b in store.pair_texts(fitting.pair_ids)]
    patterns = mine_patterns(texts, fitting.y, fitting.groups, fitting.X, config, pair_ids=fitting.pair_ids)
    taken = {c.id for c in store.concepts()}
    names = name_patterns(llm, patterns, store) if llm is not None and patterns else [None] * len(patterns)
    concepts = []
    for pattern, named in zip(patterns, names, strict=True):
        concept = pattern_concept(pattern, mechanism, *(named.name, named.definition) if named else (None, None))
        if concept.id in taken:
            concept = pattern_concept(pattern, mechanism)  # the LLM's name is taken: the phrase names it
        if concept.id not in taken:
            concepts.append(concept)
            taken.add(concept.id)
    with store.atomic():
        store.upsert_concepts(concepts)
        store.put_values(pattern_values(store.pairs(source=source), concepts))
    return MiningResult(
        mechanism=mechanism,
        pairs=int(fitting.y.size),
        patterns=patterns,
        concepts=[c.id for c in concepts],
        named_by=llm.name if llm is not None else "template",
    )
