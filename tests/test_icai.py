import json

import pytest

from tools.concepts import Concept
from tools.errors import InputError
from tools.importers import import_file, read_file
from tools.importers.icai import icai_document, write_icai
from tools.pairs import Label, LabeledPair, Pair, Verdict

# An annotated-pairs v2.0 document as ICAI / Feedback Forensics write it (two annotators, one a principle).
DOCUMENT = {
    "metadata": {
        "version": "2.0",
        "dataset_name": "toy",
        "default_annotator": "ba751e7b",
        "available_metadata_keys_per_comparison": ["domain"],
    },
    "annotators": {
        "ba751e7b": {"name": "preferred_text", "description": "Default annotator", "type": "unknown"},
        "11111111": {"name": "gpt-judge", "description": "a judge", "type": "unknown"},
        "4fc867c5": {"description": "Select the response that is more concise.", "type": "principle"},
    },
    "comparisons": [
        {
            "id": "b482d7eb",
            "prompt": "Capital of France?",
            "response_a": {"text": "Paris.", "model": "x"},
            "response_b": {"text": "The capital is Paris.", "model": "y"},
            "annotations": {"ba751e7b": {"pref": "b"}, "11111111": {"pref": "tie"}, "4fc867c5": {"pref": "a"}},
            "metadata": {"domain": "geo"},
        },
        {
            "id": "f7de08a2",
            "prompt": "2 + 2?",
            "response_a": {"text": "2 + 2 = 4"},
            "response_b": {"text": "4"},
            "annotations": {"ba751e7b": {"pref": "a"}, "4fc867c5": {"pref": None, "no_pref_reason": "not_applicable"}},
            "metadata": {"domain": "math"},
        },
    ],
}


def test_import_reads_mechanisms_and_principles(tmp_path, store):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(DOCUMENT))
    summary = import_file(store, path, "icai")
    assert summary.mechanisms == ["gpt-judge", "human"] and summary.domains == ["geo", "math"]
    first, second = sorted(store.labeled_pairs(), key=lambda i: i.pair.query_text)
    verdicts = {(label.mechanism, label.verdict) for label in second.labels}
    assert verdicts == {("human", Verdict.B), ("gpt-judge", Verdict.TIE)}
    (concept,) = store.concepts()
    assert concept.definition == "Select the response that is more concise."
    matrix = store.concept_matrix([second.pair.id, first.pair.id], [concept.id], "icai")
    assert matrix.ravel().tolist() == [1.0, 0.0]


def test_export_then_import_round_trips(tmp_path, store):
    items = [
        LabeledPair(
            pair=Pair(query=f"q{i}", response_a=f"a{i}", response_b=f"b{i}", domain=f"d{i % 2}", source="s"),
            labels=[Label(mechanism="human", verdict=v), Label(mechanism="judge", verdict_ab="A", verdict_ba="B")],
        )
        for i, v in enumerate(["A", "B", "tie"])
    ]
    concept = Concept(name="Brevity", definition="A high score: short.")
    values = {(items[0].pair.id, concept.id): 1.0, (items[1].pair.id, concept.id): -1.0}
    document = icai_document(items, dataset_name="t", reference="human", concepts=[concept], values=values)
    assert document["metadata"]["version"] == "2.0"
    assert document["annotators"][document["metadata"]["default_annotator"]]["name"] == "human"
    path = tmp_path / "out.json"
    write_icai(document, path)
    back = read_file(path, "icai").items
    assert [i.pair for i in back] == [i.pair for i in items]
    assert [{(label.mechanism, label.verdict) for label in i.labels} for i in back] == [
        {(label.mechanism, label.verdict) for label in i.labels} for i in items
    ]
    batch = read_file(path, "icai")
    assert sorted(v.value for v in batch.values) == [-1.0, 1.0]  # the third pair had no value to export
    assert [c.definition for c in batch.concepts] == ["A high score: short."]


def test_wrong_version_and_missing_domain(tmp_path):
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(DOCUMENT | {"metadata": {"version": "1.0"}}))
    with pytest.raises(InputError, match="version 1.0"):
        read_file(path, "icai")
    doc = json.loads(json.dumps(DOCUMENT))
    del doc["comparisons"][1]["metadata"]
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError) as caught:
        read_file(path, "icai")
    assert (caught.value.line, caught.value.field) == (2, "domain")
