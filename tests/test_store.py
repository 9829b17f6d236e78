import sqlite3

import numpy as np
import pytest

from tools.concepts import Concept, ConceptKind, ConceptScope, ConceptValue
from tools.errors import StoreError
from tools.fitted import ModelMetrics, ModelPayload
from tools.pairs import Label, LabeledPair, Mechanism, MechanismKind, Pair
from tools.store import CachedCall, ConceptStore, FittedModelRecord, content_key


def item(n: int, mechanism: str = "human", verdict: str = "A") -> LabeledPair:
    pair = Pair(query=f"q{n}", response_a=f"a{n}", response_b=f"b{n}", domain=f"d{n % 2}", source="t")
    return LabeledPair(pair=pair, labels=[Label(mechanism=mechanism, verdict=verdict)])


def test_new_store_has_schema_version_and_wal(store):
    assert store.db.journal_mode == "wal"
    assert next(store.db.query("select value from meta where key='schema_version'"))["value"] == "1"
    for table in (
        "pairs",
        "labels",
        "domains",
        "mechanisms",
        "concepts",
        "concept_values",
        "models",
        "runs",
        "llm_cache",
    ):
        assert store.db[table].exists()


def test_upserts_are_idempotent(store):
    items = [item(n) for n in range(5)]
    first = store.add_labeled_pairs(items)
    digest = store.content_digest()
    second = store.add_labeled_pairs(items)
    assert store.content_digest() == digest
    assert (first.new_pairs, second.new_pairs) == (5, 0)
    assert store.count("pairs") == 5 and store.count("labels") == 5 and store.domains() == ["d0", "d1"]


def test_a_failing_transaction_leaves_nothing(store):
    store.add_labeled_pairs([item(0)])
    digest = store.content_digest()
    with pytest.raises(RuntimeError), store.atomic():
        store.add_labeled_pairs([item(1), item(2)])
        raise RuntimeError("crash mid-import")
    assert store.content_digest() == digest


def test_mechanism_kind_is_not_forgotten(store):
    store.upsert_mechanisms([Mechanism(name="gpt-4", kind=MechanismKind.LLM_JUDGE, description="judge")])
    store.add_labeled_pairs([item(0, "gpt-4")])  # an import that knows nothing of its kind
    assert store.mechanisms() == [Mechanism(name="gpt-4", kind=MechanismKind.LLM_JUDGE, description="judge")]


def test_round_trip_of_pairs_and_labels(store):
    items = [item(n, verdict="B") for n in range(3)]
    store.add_labeled_pairs(items)
    assert sorted(store.labeled_pairs(), key=lambda i: i.pair.id) == sorted(items, key=lambda i: i.pair.id)
    assert store.pair(items[1].pair.id) == items[1].pair
    with pytest.raises(StoreError, match="no pair"):
        store.pair("nope")


def test_opening_rules(tmp_path):
    with pytest.raises(StoreError, match="no such store"):
        ConceptStore(tmp_path / "missing.db", create=False)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a whypref store"):
        ConceptStore(junk)
    path = tmp_path / "old.db"
    ConceptStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("update meta set value = '99' where key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        ConceptStore(path)


def test_concepts_values_and_matrix(store):
    items = [item(n) for n in range(3)]
    store.add_labeled_pairs(items)
    ids = store.upsert_concepts(
        [
            Concept(name="Use of Examples", definition="high: gives examples", kind=ConceptKind.LLM),
            Concept(name="Code Blocks", kind=ConceptKind.MEASURED, scope=ConceptScope.DOMAIN, domains=("d0",)),
        ]
    )
    assert ids == ["use-of-examples", "code-blocks"]
    pair_ids = [i.pair.id for i in items]
    store.put_values(
        [
            ConceptValue(pair_id=pair_ids[0], concept_id="use-of-examples", annotator="llm", value=1),
            ConceptValue(pair_id=pair_ids[2], concept_id="code-blocks", annotator="llm", value=-1),
        ]
    )
    matrix = store.concept_matrix(pair_ids, ids, "llm")
    np.testing.assert_array_equal(matrix, [[1, 0], [0, 0], [0, -1]])
    # Rows and columns in the order asked, whatever the order of storage; any annotator when each has one.
    np.testing.assert_array_equal(store.concept_matrix(pair_ids[::-1], ids[::-1]), [[-1, 0], [0, 0], [0, 1]])
    store.put_values([ConceptValue(pair_id=pair_ids[1], concept_id="use-of-examples", annotator="human", value=-1)])
    with pytest.raises(StoreError, match="'use-of-examples' has values from human, llm: choose one with --annotator"):
        store.concept_matrix(pair_ids, ids)
    # Only the pairs asked count: without the human's pair, each concept has one annotator again.
    np.testing.assert_array_equal(store.concept_matrix(pair_ids[2::-2], ids), [[0, -1], [1, 0]])
    np.testing.assert_array_equal(store.concept_matrix(pair_ids[1:], ids), [[-1, 0], [0, -1]])  # the human's only
    np.testing.assert_array_equal(store.concept_matrix(pair_ids, ids, "human"), [[0, 0], [-1, 0], [0, 0]])
    store.db.execute("delete from concept_values where annotator = 'human'")
    assert len(store.missing_values(pair_ids, ids, "llm")) == 4
    assert store.missing_values(pair_ids, ids, "other") == [(p, c) for p in pair_ids for c in ids]
    store.delete_concept("code-blocks")
    assert [c.id for c in store.concepts()] == ["use-of-examples"]
    assert store.concept_matrix(pair_ids, ["code-blocks"], "llm").sum() == 0
    with pytest.raises(ValueError, match="lists no domain"):
        Concept(name="x", scope=ConceptScope.DOMAIN)


def test_cache_models_and_runs(store):
    key = content_key({"model": "m", "messages": ["hi"]})
    assert store.cached_call(key) is None
    store.cache_calls(
        [CachedCall(key=key, model="m", request={"messages": ["hi"]}, response={"text": "yo"}, prompt_tokens=3)]
    )
    assert store.cached_call(key).response == {"text": "yo"}
    assert set(store.cached_calls([key, "absent"])) == {key}
    payload = ModelPayload(
        concept_ids=["c1", "c2"], domains=["d"], classes=[-1, 1], coef_shared=[0.5, 0.0], coef_domain=[[0.0, 0.1]]
    )
    record = FittedModelRecord(
        id="m1", mechanism="human", model_type="hmdr", payload=payload, metrics=ModelMetrics(cv_log_loss=0.6, pairs=9)
    )
    saved = store.save_model(record)
    assert store.models(mechanism="human") == [saved] and store.model("m1") == saved and store.model("m2") is None
    assert saved == record.model_copy(update={"created_at": saved.created_at})
    # A record an older whypref wrote (untyped weights) is named with what to do, not half-read.
    store.db["models"].insert({**store.db["models"].get("m1"), "id": "m0", "payload": '{"coef": [0.5, 0.0]}'})
    with pytest.raises(StoreError, match="model m0 was stored by an older whypref; refit 'human'"):
        store.models(mechanism="human")
    store.start_run("r1", "discover", {"budget": 3})
    store.finish_run("r1", "done", {"calls": 2})
    run = store.run("r1")
    assert (run["status"], run["stats"], run["config"]) == ("done", {"calls": 2}, {"budget": 3})
