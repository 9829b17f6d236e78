"""The measured-concept library: every script counted, hand-checked measures, exact A/B symmetry."""

import os

import numpy as np
import pytest

from tools.annotation import Annotation, AnnotationConfig
from tools.concepts import Concept, ConceptKind, ConceptValue
from tools.measured import MEASURED_ANNOTATOR, MEASURES, Profile, measure_pairs, measured_concepts
from tools.pairs import LabeledPair, Pair


def measure(name: str, response: str, query: str = "How do I do this?") -> float:
    m = next(m for m in MEASURES if m.name == name)
    return float(m.measure(Profile(response), Profile(query)))


def value(name: str, a: str, b: str, query: str = "How do I do this?") -> float:
    pair = Pair(query=query, response_a=a, response_b=b, domain="d", source="s")
    concept = next(c for c in measured_concepts() if c.name == name)
    return next(v.value for v in measure_pairs([pair]) if v.concept_id == concept.id)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("The quick brown fox.", 4),
        ("如何煮鸡蛋", 5),  # Chinese: a character is a word
        ("Как сварить яйцо?", 3),  # Cyrillic words count
        ("ゆで卵の作り方", 7),  # kana and kanji
        ("Ich heiße Jürgen, 42 Jahre", 5),
    ],
)
def test_words_are_counted_in_every_script(text, words):
    assert Profile(text).n_words == words


def test_pairs_in_other_scripts_get_values():
    """Chinese and Russian pairs used to get all-zero vectors (only Latin words were counted)."""
    for a, b in (
        ("如何煮鸡蛋？先把水烧开，再放鸡蛋。", "烧水。"),
        ("Сначала вскипятите воду. Потом положите яйцо.", "Вода."),
    ):
        assert value("Length", a, b) > 0.3
        assert value("Sentence Length", a, b) != 0


def test_hand_checked_measures():
    assert measure("Truncation", "First do this. Then take the second step and then you will see that the") == 1.0
    assert measure("Truncation", "First do this. Then take the second step and you will see the result.") == 0.0
    assert measure("Tables", "| a | b |\n|---|---|\n| 1 | 2 |") == 1.0
    assert measure("Code Language Tag", "```python\nprint(1)\n```") == 1.0
    assert measure("Code Language Tag", "```\nprint(1)\n```") == 0.0
    assert measure("Broken Markdown", "```python\nprint(1)") == 1.0 and measure("Broken Markdown", "**bold**") == 0.0
    assert measure("Units", "Use 200 g of flour and bake for 15 minutes.") == pytest.approx(100 * 2 / 10)
    assert measure("Apology", "I'm sorry, I cannot help with that.") == 1.0
    assert measure("Apology", "Je suis désolé, je ne peux pas vous aider avec cela aujourd'hui.") == 0.0  # English only
    assert measure("Filler Opening", "Sure! Here is how to do it.") == 1.0
    assert measure("Filler Opening", "Boil the water first, then add the egg.") == 0.0
    assert measure("Word Length", "cat dog elephant") == pytest.approx((3 + 3 + 8) / 3)
    french = "Comment faire cuire un oeuf dur à la maison rapidement?"
    assert measure("Query Language", "Faites bouillir l'eau, puis ajoutez l'oeuf pendant dix minutes.", french) == 1.0
    assert measure("Query Language", "Boil the water, then add the egg for ten minutes.", french) == 0.0


def test_copied_request_and_repeated_sentences():
    """Weak models echo the request and loop; human raters mark both down (benchmarks/bench_concepts.py)."""
    query = "Translate into French: Dentistry is the branch of medicine focused on the teeth and gums."
    echo = "Dentistry is the branch of medicine focused on the teeth and gums."
    assert measure("Copied Request", echo, query) == 1.0  # all of its 8 runs of five words are the request's
    assert measure("Copied Request", "La dentisterie est la branche de la médecine dentaire.", query) == 0.0
    half = "Dentistry is the branch of medicine. It treats the mouth, jaws and nearby tissue too."
    # 15 words, 11 runs of five; the first two ("dentistry is the branch of", "is the branch of medicine") copied.
    assert measure("Copied Request", half, query) == pytest.approx(2 / 11)
    assert measure("Copied Request", "Too short.", query) == 0.0
    assert measure("Repeated Sentences", "1. Creative\n2. Energetic\n3. Creative\n4. Energetic") == 0.5
    assert measure("Repeated Sentences", "Boil it. Then cool it. Boil it.") == pytest.approx(1 / 3)
    assert measure("Repeated Sentences", "Boil the water. Add the egg. Wait seven minutes.") == 0.0
    assert value("Repeated Sentences", "Boil it. Boil it.", "Boil it. Then eat.") == 0.5


def test_rates_do_not_count_length_twice():
    short = "1. Boil water.\n2. Add the egg."
    long = short + "\n" + "Then wait a while and enjoy a calm morning with your breakfast and coffee. " * 5
    assert value("Length", long, short) > 0.5
    assert value("List Formatting", long, short) < 0  # the same two items in more words: a lower rate


def test_swapping_a_and_b_negates_every_value_exactly():
    a = "Sure! 1. Boil 500 ml of water.\n2. Add the egg for 7 minutes.\n\nI'm sorry if this is short."
    b = "You could perhaps boil an egg, which is definitely easy, see https://example.com [1]."
    forward = measure_pairs([Pair(query="How do I boil an egg?", response_a=a, response_b=b, domain="d", source="s")])
    backward = measure_pairs([Pair(query="How do I boil an egg?", response_a=b, response_b=a, domain="d", source="s")])
    assert [v.value for v in backward] == [-v.value for v in forward]
    assert all(-1 <= v.value <= 1 for v in forward) and sum(v.value != 0 for v in forward) > 10


def test_measuring_replaces_stale_measured_concepts(store):
    pair = Pair(query="q?", response_a="An answer.", response_b="Another answer here.", domain="d", source="s")
    store.add_labeled_pairs([LabeledPair(pair=pair)])
    stale = Concept(name="Refusal or Apology", kind=ConceptKind.MEASURED)
    store.upsert_concepts([stale])
    store.put_values([ConceptValue(pair_id=pair.id, concept_id=stale.id, annotator=MEASURED_ANNOTATOR, value=1.0)])
    Annotation(store, None, AnnotationConfig(llm_concepts=False)).run([pair])
    ids = {c.id for c in store.concepts(kind=ConceptKind.MEASURED)}
    assert stale.id not in ids and ids == {c.id for c in measured_concepts()}
    assert np.all([row["concept_id"] != stale.id for row in store.db.query("select concept_id from concept_values")])


def test_pairs_are_measured_once_per_library_version(store, monkeypatch):
    import tools.measured

    pairs = [
        Pair(query=f"q{i}?", response_a="An answer." * (i + 1), response_b="Another one.", domain="d", source="s")
        for i in range(4)
    ]
    store.add_labeled_pairs([LabeledPair(pair=p) for p in pairs])
    measured: list[int] = []

    def counting(chunk):
        measured.append(len(chunk))
        return tools.measured.measured_rows(chunk, *tools.measured.measurements(tools.measured.texts_of(chunk)))

    monkeypatch.setattr(tools.measured, "measure_rows", counting)
    annotate = Annotation(store, None, AnnotationConfig(llm_concepts=False))
    annotate.run(pairs[:2])
    annotate.run(pairs)  # only the two new pairs
    annotate.run(pairs)  # nothing to do
    assert measured == [2, 2]
    before = {(r["pair_id"], r["concept_id"]): r["value"] for r in store.db.query("select * from concept_values")}
    monkeypatch.setattr(tools.measured, "LIBRARY_VERSION", "another")  # the measuring code changed
    annotate.run(pairs)
    assert measured == [2, 2, 4]
    after = {(r["pair_id"], r["concept_id"]): r["value"] for r in store.db.query("select * from concept_values")}
    assert after == before and len(after) == 4 * len(MEASURES)


def test_sentiment_equals_vader_on_real_and_tricky_texts(raw):
    """The linear-time analyzer gives VADER's own scores, negations, idioms and 'but' included."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from tools.importers import read_file
    from tools.measured import _sentiment

    items = read_file(raw / "autoj", "autoj").items[:150]
    texts = [t for item in items for t in (item.pair.response_a, item.pair.response_b)]
    texts += [
        "no",
        "not good",
        "no good at all",
        "It is never so good, NOT GREAT!",
        "without doubt a good idea",
        "kind of good but the ending was bad",
        "at least it works; least good",
        "The food was the bomb, yeah right, not bad ;)",
        "no or nor happy",
        "  I love it 😀 but the ending 😢 was bad  ",  # emoji: VADER's own pass
        "kind of",
        "\tGreat!!! Really GOOD??  ",
    ]
    plain, fast = SentimentIntensityAnalyzer(), _sentiment()
    for text in texts:
        assert fast.polarity_scores(text[:5000]) == plain.polarity_scores(text[:5000]), text[:80]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: measuring stays in this process")
def test_worker_processes_store_the_same_values(store, raw, monkeypatch):
    """Large chunks go to worker processes, chunk after chunk; the stored values are the serial ones."""
    import tools.annotation
    import tools.measured
    from tools.importers import read_file

    pairs = [item.pair for item in read_file(raw / "pandalm", "pandalm").items[:25]]
    store.add_labeled_pairs([LabeledPair(pair=p) for p in pairs])
    expected = {(v.pair_id, v.concept_id): (v.value, v.detail) for v in measure_pairs(pairs)}

    def not_here(chunk):
        raise AssertionError("measured in this process")

    monkeypatch.setattr(tools.measured, "measure_rows", not_here)
    monkeypatch.setattr(tools.measured, "PARALLEL_FROM", 5)
    monkeypatch.setattr(tools.annotation, "MEASURE_CHUNK", 10)  # chunks of 10, 10 and 5 pairs
    Annotation(store, None, AnnotationConfig(llm_concepts=False)).run(pairs)
    stored = {(v.pair_id, v.concept_id): (v.value, v.detail) for v in store.values()}
    assert stored == expected


def test_measuring_reports_progress_a_chunk_at_a_time(store, monkeypatch):
    import tools.annotation
    from tools.operations import Selection, annotate

    pairs = [
        Pair(query=f"q{i}?", response_a="Yes." * (i + 1), response_b="No.", domain="d", source="s") for i in range(5)
    ]
    store.add_labeled_pairs([LabeledPair(pair=p) for p in pairs])
    monkeypatch.setattr(tools.annotation, "MEASURE_CHUNK", 2)
    seen: list[tuple[str, int, int]] = []
    result = annotate(
        store, None, AnnotationConfig(llm_concepts=False), Selection(limit=4), progress=lambda *a: seen.append(a)
    )
    assert result.pairs == 4
    assert seen == [("measure", 0, 4), ("measure", 2, 4), ("measure", 4, 4)]


def test_languages_are_py3langids_own_scores_and_decisions(raw):
    """Walking many texts at once visits what py3langid's byte-by-byte walk visits: every score is its
    score to the bit, every decision its decision (short, blank, upper-case, CJK, emoji and long texts)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    from tools.importers import read_file
    from tools.language import LANGUAGES, SAMPLE, identifier, languages

    items = read_file(raw / "llmeval2" / "LLMEval2_benchmark.jsonl", "llmeval2").items[:150]  # Chinese, English
    items += read_file(raw / "autoj", "autoj").items[:100]
    texts = [t for item in items for t in (item.pair.query_text, item.pair.response_a, item.pair.response_b)]
    texts += ["", "   ", "a", "HOW DO I BOIL AN EGG?", "Wie koche ich ein Ei?", "卵の茹で方 🥚", "é" * 3000, "x\n" * 5]
    plain = LanguageIdentifier.from_model_file(MODEL_FILE)
    plain.set_languages(LANGUAGES.split())
    samples = [t[:SAMPLE] for t in texts if t[:SAMPLE].strip()]
    expected = [plain.classify(t[:SAMPLE])[0] if t[:SAMPLE].strip() else "" for t in texts]
    assert languages(texts) == expected
    assert {"en", "zh", "de"} <= set(expected)
    fast = identifier()
    walked = fast.visits([fast._encode(s) for s in samples])
    fast._walked = {fast._encode(s): w for s, w in zip(samples, walked, strict=True)}
    try:
        for sample in samples:
            assert np.array_equal(fast._decide(sample), plain._decide(sample)), sample[:80]
    finally:
        fast._walked = {}


def test_value_rows_hold_what_the_store_writes_and_refuse_non_finite_measurements(monkeypatch):
    import json

    import tools.measured
    from tools.store import _dumps

    pairs = [Pair(query="How?", response_a="Like **this**: 3 kg.", response_b="No.", domain="d", source="s")]
    rows = tools.measured.measure_rows(pairs)
    assert len(rows) == len(MEASURES)
    for _, _, annotator, value, detail in rows:
        assert annotator == MEASURED_ANNOTATOR and -1 <= value <= 1
        assert detail == _dumps(json.loads(detail)) and set(json.loads(detail)) == {"a", "b"}

    def broken(texts):
        a, b = np.zeros((len(texts), len(MEASURES))), np.zeros((len(texts), len(MEASURES)))
        a[0, 1] = np.nan
        return a, b

    monkeypatch.setattr(tools.measured, "measurements", broken)
    with pytest.raises(ValueError, match=MEASURES[1].name):
        tools.measured.measure_rows(pairs)
