"""Discovery, merging and annotation driven by a scripted model over the demo set."""

import pytest

from helpers import pipeline_responder
from tools.annotation import Annotation, AnnotationConfig, annotator_name
from tools.concepts import ConceptKind, ConceptScope
from tools.demo_data import demo_pairs
from tools.design import load_design
from tools.discovery import GENERIC_CONCEPTS, Discovery, DiscoveryConfig, merge_candidates
from tools.llm import LLM
from tools.measured import MEASURED_ANNOTATOR, MEASURES
from tools.testing import ScriptedChat


@pytest.fixture
def demo(store):
    store.add_labeled_pairs(demo_pairs())
    return store


def make_llm(store):
    chat = ScriptedChat(responder=pipeline_responder)
    return chat, LLM(chat, "scripted", store=store)


def test_merge_candidates_by_stems_and_spelling():
    pairs = merge_candidates(
        ["Structure", "Structured Steps", "Code Examples", "Example Code", "Clarity", "Clarty"], 0.85
    )
    assert ("Structure", "Structured Steps") in pairs and ("Code Examples", "Example Code") in pairs
    assert ("Clarity", "Clarty") in pairs and not any("Structure" in p and "Clarity" in p for p in pairs)


def test_discovery_proposes_merges_defines_and_scopes(demo):
    chat, llm = make_llm(demo)
    config = DiscoveryConfig(batches_per_domain=2, batch_size=4, seed=1)
    result = Discovery(demo, llm, config).run()
    concepts = {c.name: c for c in demo.concepts()}
    assert {"Structure", "Engagement", "Code Examples", "Safety Advice"} <= set(concepts)
    assert set(GENERIC_CONCEPTS) <= set(concepts)
    # 'Structured Steps' (proposed only when a rejected response is shown) was merged into the more
    # frequent 'Structure'; it shares a stem with it, and the model confirmed they are the same.
    assert result.merges == [("Structure", "Structured Steps")] and "Structured Steps" not in concepts
    assert concepts["Structure"].provenance["merged"] == ["Structured Steps"]
    # Shared when found in at least half of the domains; code examples only where code was shown.
    assert concepts["Structure"].scope is ConceptScope.SHARED
    assert concepts["Code Examples"].scope is ConceptScope.DOMAIN and concepts["Code Examples"].domains == ("coding",)
    assert concepts["Safety Advice"].domains == ("health",)
    assert concepts["Clarity"].kind is ConceptKind.GENERIC
    assert all(c.definition.startswith("A high score") for c in concepts.values())
    provenance = concepts["Structure"].provenance
    assert provenance["model"] == "scripted" and sum(provenance["domain_counts"].values()) == len(provenance["batches"])
    # Half of the batches ask for concepts different from the generic ones.
    prompts = [call[-1]["content"] for call in chat.calls if call[0]["content"].startswith("You study")]
    assert sum("completely different" in p for p in prompts) == len(prompts) // 2
    calls = len(chat.calls)
    Discovery(demo, LLM(chat, "scripted", store=demo), config).run()
    assert len(chat.calls) == calls  # a re-run is free


def test_annotation_swap_rule_relevance_and_reruns(demo):
    chat, llm = make_llm(demo)
    Discovery(demo, llm, DiscoveryConfig(batches_per_domain=2, batch_size=4, seed=1)).run()
    pairs = list(demo.pairs())
    result = Annotation(demo, llm, AnnotationConfig()).run(pairs)
    annotator = annotator_name("comp", "scripted")
    ids = {c.name: c.id for c in demo.concepts()}
    values = {
        (r["pair_id"], r["concept_id"]): r
        for r in demo.db.query("select * from concept_values where annotator = ?", [annotator])
    }
    by_id = {p.id: p for p in pairs}
    for (pair_id, cid), row in values.items():
        pair = by_id[pair_id]
        if cid == ids["Engagement"]:
            assert row["value"] == 0  # always 'Response 1': flips with the order, so 0
        if cid == ids["Structure"]:
            expected = ("1. " in pair.response_a) - ("1. " in pair.response_b)
            assert row["value"] == expected
        if cid == ids["Creativity"]:
            assert row["value"] == 0 and '"relevant": false' in row["detail"]
    assert result.swap_consistent is not None and result.swap_consistent < 1  # Engagement never survives
    # Domain-specific concepts are asked only in their domain.
    code_domains = {by_id[p].domain for p, c in values if c == ids["Code Examples"]}
    assert code_domains == {"coding"}
    # Measured concepts are there too, and the HMDR design can read both annotators at once.
    assert demo.db.execute("select count(*) from concept_values where annotator = ?", [MEASURED_ANNOTATOR]).fetchone()[
        0
    ] == len(pairs) * len(MEASURES)
    design = load_design(demo, "human")
    assert design.X.shape == (len(pairs), len(demo.concepts()))
    # Re-annotating fills only what is missing: nothing, so no calls.
    calls = len(chat.calls)
    Annotation(demo, LLM(chat, "scripted", store=demo), AnnotationConfig()).run(pairs)
    assert len(chat.calls) == calls
    # A new concept is asked for alone.
    from tools.concepts import Concept

    demo.upsert_concepts([Concept(name="Brevity", definition="A high score indicates a short response.")])
    Annotation(demo, LLM(chat, "scripted", store=demo), AnnotationConfig(relevance=False)).run(pairs[:2])
    new_calls = chat.calls[calls:]
    assert len(new_calls) == 4 and all(
        "Brevity" in c[-1]["content"] and "Structure" not in c[-1]["content"] for c in new_calls
    )


def test_score_representation(demo):
    chat, llm = make_llm(demo)
    Discovery(demo, llm, DiscoveryConfig(batches_per_domain=1, batch_size=4)).run()
    Annotation(demo, llm, AnnotationConfig(representation="score", relevance=False)).run(list(demo.pairs()))
    annotator = annotator_name("score", "scripted")
    structure = next(c.id for c in demo.concepts() if c.name == "Structure")
    for pair in demo.pairs():
        value = demo.concept_matrix([pair.id], [structure], annotator)[0, 0]
        assert value == 5 * (("1. " in pair.response_a) - ("1. " in pair.response_b))


def test_estimates_before_spending(demo):
    chat, llm = make_llm(demo)
    discovery = Discovery(demo, llm, DiscoveryConfig(batches_per_domain=2))
    estimate = discovery.estimate()
    assert estimate["propose"].calls == 6 and estimate["tag"].calls == 0  # 8 pairs a domain: too few to tag
    annotation = Annotation(demo, llm, AnnotationConfig())
    assert len(chat.calls) == 0
    discovery.run()
    costs = annotation.estimate(list(demo.pairs()))
    assert costs["relevance"].calls == 24 and costs["comp"].calls == 48 and len(chat.calls) > 0


def test_every_stage_cuts_responses_to_the_llms_limit(demo, monkeypatch):
    from tools.judge import judge_pairs
    from tools.settings import Settings
    from tools.steering import generate

    monkeypatch.setenv("WHYPREF_MAX_RESPONSE_CHARS", "250")
    assert LLM.from_settings(Settings(base_url="http://127.0.0.1:9/v1"), demo).max_response_chars == 250
    chat = ScriptedChat(responder=pipeline_responder)
    llm = LLM(chat, "scripted", store=demo, max_response_chars=250)
    Discovery(demo, llm, DiscoveryConfig(batches_per_domain=1, batch_size=4, seed=1)).run()
    pairs = list(demo.pairs())[:3]
    Annotation(demo, llm, AnnotationConfig(relevance=False)).run(pairs)
    shown = [m["content"] for call in chat.calls for m in call]
    long = [t for p in demo.pairs() for t in (p.response_a, p.response_b) if len(t) > 260]
    assert long and any(t[:250] + " [...]" in s for t in long for s in shown)
    judged = ScriptedChat(responder=lambda messages: '{"verdict": 1}')
    judge_pairs(LLM(judged, "judge", max_response_chars=250), pairs)
    writer = ScriptedChat(responder=lambda messages: '{"response": "ok"}')
    generate(LLM(writer, "writer", max_response_chars=250), ["q" * 400], [[]])
    shown += [m["content"] for chat in (judged, writer) for call in chat.calls for m in call]
    assert any("q" * 250 + " [...]" in s for s in shown) and not any("q" * 251 in s for s in shown)
    assert not any(t in s for t in long for s in shown)
