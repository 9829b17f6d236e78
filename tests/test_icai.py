import json

import pytest

from tools.concepts import Concept, ConceptKind, ConceptValue
from tools.errors import InputError
from tools.importers import import_file, read_file
from tools.importers.icai import DEFAULT_DESCRIPTION, hash_string, icai_document, write_icai
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


def test_export_then_import_round_trips_without_loss(tmp_path, store):
    items = [
        LabeledPair(
            pair=Pair(
                query=f"q{i}",
                response_a=f"a{i}",
                response_b=f"b{i}",
                domain=f"d{i % 2}",
                source="s",
                metadata={"model_a": "gpt-4", "model_b": "llama", "icai_id": f"c{i}", "note": i},
            ),
            labels=[Label(mechanism="human", verdict=v), Label(mechanism="judge", verdict_ab="A", verdict_ba="B")],
        )
        for i, v in enumerate(["A", "B", "tie", "A"])
    ]
    brevity = Concept(name="Brevity", definition="A high score: short.", kind=ConceptKind.GENERIC)
    length = Concept(name="Length", definition="More words.", kind=ConceptKind.MEASURED)
    twin = Concept(name="Shortness", definition="A high score: short.")  # same definition as Brevity
    ids = [i.pair.id for i in items]
    values = [
        ConceptValue(pair_id=ids[0], concept_id="brevity", annotator="icai", value=1.0),
        ConceptValue(pair_id=ids[1], concept_id="brevity", annotator="icai", value=-1.0),
        ConceptValue(
            pair_id=ids[2], concept_id="brevity", annotator="icai", value=0.0, detail={"no_pref_reason": "both"}
        ),
        ConceptValue(
            pair_id=ids[3], concept_id="brevity", annotator="icai", value=0.0, detail={"no_pref_reason": "invalid"}
        ),
        ConceptValue(pair_id=ids[0], concept_id="length", annotator="icai", value=-0.37),
        ConceptValue(pair_id=ids[1], concept_id="shortness", annotator="icai", value=1.0),
    ]
    document = icai_document(
        items,
        dataset_name="t",
        reference="human",
        concepts=[brevity, length, twin],
        values={(v.pair_id, v.concept_id): v for v in values},
    )
    assert document["metadata"]["version"] == "2.0"
    assert document["metadata"]["default_annotator"] == "ba751e7b"  # ICAI's fixed id, which Feedback Forensics reads
    assert document["annotators"]["ba751e7b"]["name"] == "human"
    assert [c["id"] for c in document["comparisons"]] == ["c0", "c1", "c2", "c3"]
    assert document["comparisons"][0]["response_a"] == {"text": "a0", "model": "gpt-4"}
    path = tmp_path / "out.json"
    write_icai(document, path)
    batch = read_file(path, "icai")
    assert [i.pair for i in batch.items] == [i.pair for i in items]  # ids, model names and metadata kept
    assert [i.labels for i in batch.items] == [i.labels for i in items]  # both orders kept
    assert {(c.name, c.kind, c.definition) for c in batch.concepts} == {
        (c.name, c.kind, c.definition) for c in (brevity, length, twin)
    }
    assert sorted(batch.values, key=lambda v: (v.pair_id, v.concept_id)) == sorted(
        values, key=lambda v: (v.pair_id, v.concept_id)
    )


def test_a_file_made_by_icai_imports_and_exports_back(tmp_path):
    """The shape of ICAI's create_annotated_pairs output (inverse_cai.data.annotated_pairs_format):
    default annotator under its fixed id named after the preferred_text column, principles hashed by
    their text, votes with reasons, non-preference principles, model names in the responses."""
    principle, other = "Select the response that is more concise.", "Select the response that is more polite."
    nonpref = "The response mentions a date."
    annotations = [
        {
            "ba751e7b": {"pref": "a"},
            hash_string(principle): {"pref": "a"},
            hash_string(other): {"pref": None, "no_pref_reason": "not_applicable"},
        },
        {
            "ba751e7b": {"pref": "b"},
            hash_string(principle): {"pref": None, "no_pref_reason": "invalid"},
            hash_string(nonpref): {"pref": None, "no_pref_reason": "non_preference_annotation", "value": True},
        },
    ]
    document = {
        "metadata": {"version": "2.0", "dataset_name": "d", "default_annotator": "ba751e7b"},
        "annotators": {
            "ba751e7b": {"name": "preferred_text", "description": DEFAULT_DESCRIPTION, "type": "unknown"},
            hash_string(principle): {"description": principle, "type": "principle"},
            hash_string(other): {"description": other, "type": "principle"},
            hash_string(nonpref): {"description": nonpref, "type": "non_preference_principle"},
        },
        "comparisons": [
            {
                "id": f"cmp{i}",
                "prompt": f"question {i}",
                "response_a": {"text": f"answer a{i}", "model": "m1"},
                "response_b": {"text": f"answer b{i}", "model": "m2"},
                "annotations": annotations[i],
                "metadata": {"domain": "chat"},
            }
            for i in range(2)
        ],
    }
    path = tmp_path / "icai.json"
    path.write_text(json.dumps(document))
    batch = read_file(path, "icai")
    assert [label.mechanism for i in batch.items for label in i.labels] == ["human", "human"]
    again = icai_document(
        batch.items,
        dataset_name="d",
        reference="human",
        concepts=batch.concepts,
        values={(v.pair_id, v.concept_id): v for v in batch.values},
    )
    assert [c["id"] for c in again["comparisons"]] == ["cmp0", "cmp1"]
    assert [c["response_a"] for c in again["comparisons"]] == [c["response_a"] for c in document["comparisons"]]
    assert [c["annotations"] for c in again["comparisons"]] == annotations  # every vote and reason
    assert {k: (v["description"], v["type"]) for k, v in again["annotators"].items() if k != "ba751e7b"} == {
        k: (v["description"], v["type"]) for k, v in document["annotators"].items() if k != "ba751e7b"
    }
    assert again["annotators"]["ba751e7b"]["description"] == DEFAULT_DESCRIPTION


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


def test_principles_whose_names_give_one_id_stay_apart(tmp_path):
    document = {
        "metadata": {"version": "2.0", "default_annotator": "h"},
        "annotators": {
            "h": {"name": "human", "type": "human"},
            "p1": {"description": "Be concise.", "type": "principle"},
            "p2": {"description": "be concise!", "type": "principle"},
        },
        "comparisons": [
            {
                "prompt": "q",
                "response_a": {"text": "a"},
                "response_b": {"text": "b"},
                "annotations": {"h": {"pref": "a"}, "p1": {"pref": "a"}, "p2": {"pref": "b"}},
                "metadata": {"domain": "d"},
            }
        ],
    }
    path = tmp_path / "two.json"
    path.write_text(json.dumps(document))
    batch = read_file(path, "icai")
    assert len({c.id for c in batch.concepts}) == 2
    by_name = {c.definition: c.id for c in batch.concepts}
    assert {v.concept_id: v.value for v in batch.values} == {by_name["Be concise."]: 1.0, by_name["be concise!"]: -1.0}
