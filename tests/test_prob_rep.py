"""Prob-rep: each response alone, P(yes) from the token log-probabilities; the value is P(A) - P(B)."""

import pytest

from helpers import pipeline_responder
from tools.annotation import Annotation, AnnotationConfig, annotator_name
from tools.concepts import Concept
from tools.demo_data import demo_pairs
from tools.llm import LLM
from tools.pairs import LabeledPair
from tools.testing import ScriptedChat

CONCEPTS = [
    Concept(name="Structure", definition="A high score indicates numbered steps; a low score, none."),
    Concept(name="Code Examples", definition="A high score indicates a code block; a low score, none."),
    Concept(name="Engagement", definition="A high score indicates an engaging tone; a low score, a flat one."),
]


@pytest.fixture
def demo(store):
    items = demo_pairs(4)
    store.add_labeled_pairs(items)
    store.upsert_concepts(CONCEPTS)
    return store, [i.pair for i in items]


def prob_values(store, model_id):
    annotator = annotator_name("prob", model_id)
    return {
        (row["pair_id"], row["concept_id"]): row["value"]
        for row in store.db.query("select * from concept_values where annotator = ?", [annotator])
    }


def test_values_are_the_difference_of_probabilities_and_a_rerun_is_free(demo):
    store, pairs = demo
    chat = ScriptedChat(responder=pipeline_responder)
    result = Annotation(store, LLM(chat, "scripted", store=store), AnnotationConfig(representation="prob")).run(pairs)
    assert result.missing_answers == 0 and result.values_written == len(pairs) * 3
    values = prob_values(store, "scripted")
    for pair in pairs:
        structure = values[(pair.id, "structure")]
        expected = (0.9 if "1. " in pair.response_a else 0.15) - (0.9 if "1. " in pair.response_b else 0.15)
        assert structure == pytest.approx(expected)
        assert values[(pair.id, "engagement")] == 0.0  # no position to be biased by: the same P for both
    # Relevance off by default with Prob-rep; one question per response and concept, A's first.
    assert len(chat.calls) == 2 * 3 * len(pairs) - _shared_responses(pairs)
    first = chat.calls[:3]
    assert all(pairs[0].response_a[:40] in call[-1]["content"] for call in first)
    calls = len(chat.calls)
    again = Annotation(store, LLM(chat, "scripted", store=store), AnnotationConfig(representation="prob"))
    store.db.execute("delete from concept_values where annotator = ?", [annotator_name("prob", "scripted")])
    again.run(pairs)
    assert len(chat.calls) == calls and prob_values(store, "scripted") == values  # the cache answers all


def _shared_responses(pairs) -> int:
    """Questions asked once for identical responses (the cache is keyed by content)."""
    seen, repeats = set(), 0
    for pair in pairs:
        for response in (pair.response_a, pair.response_b):
            key = (pair.query_text, response)
            repeats += 3 * (key in seen)
            seen.add(key)
    return repeats


def test_swapping_a_and_b_negates_every_value_exactly(demo):
    store, pairs = demo
    chat = ScriptedChat(responder=pipeline_responder)
    swapped = [p.model_copy(update={"response_a": p.response_b, "response_b": p.response_a}) for p in pairs]
    store.add_labeled_pairs([LabeledPair(pair=p) for p in swapped])
    llm = LLM(chat, "scripted", store=store)
    Annotation(store, llm, AnnotationConfig(representation="prob")).run(pairs)
    calls = len(chat.calls)
    Annotation(store, LLM(chat, "scripted", store=store), AnnotationConfig(representation="prob")).run(swapped)
    assert len(chat.calls) == calls  # the same questions about the same responses
    values = prob_values(store, "scripted")
    for original, mirror in zip(pairs, swapped, strict=True):
        for concept in CONCEPTS:
            assert values[(mirror.id, concept.id)] == -values[(original.id, concept.id)]


def test_prob_is_the_default_for_the_embedded_model_only():
    assert AnnotationConfig.choose(embedded=True).representation == "prob"
    assert AnnotationConfig.choose(embedded=True).relevance is False
    assert AnnotationConfig.choose(embedded=False).representation == "comp"
    assert AnnotationConfig.choose(embedded=False).relevance is True
    assert AnnotationConfig.choose(embedded=True, representation="comp").relevance is True
