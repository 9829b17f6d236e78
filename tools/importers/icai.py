"""ICAI's "annotated pairs" JSON format (v2.0), read and written, to move data between whypref,
Inverse Constitutional AI and Feedback Forensics.

Annotators that are not principles become mechanisms; ICAI's default annotator (its dataset's
``preferred_text`` column) takes the name given by ``--mechanism`` (default ``human``), or the
mechanism name whypref exported under it. Principle annotators are concepts: their votes become
concept values (+1 for a, -1 for b, 0 with the reason for no preference) of annotator ``icai``. On
export, a mechanism's tie is written as ``"tie"``, which ICAI's own annotators also produce; a
whypref export read back gives the same pairs, labels (both orders), concepts and values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.concepts import Concept, ConceptKind, ConceptValue, concept_id
from tools.errors import InputError
from tools.importers.base import ImportOptions, LabelSpec, PairBuilder
from tools.importers.reading import Record, json_document
from tools.pairs import MAX_NAME, LabeledPair, Verdict

FORMAT_VERSION = "2.0"
PRINCIPLE_ANNOTATOR = "icai"
_PREFS = {"a": Verdict.A, "text_a": Verdict.A, "b": Verdict.B, "text_b": Verdict.B, "tie": Verdict.TIE}
_PREF_OF = {Verdict.A: "a", Verdict.B: "b", Verdict.TIE: "tie"}
_PRINCIPLE_TYPES = ("principle", "non_preference_principle")
_ID = "icai_id"  # pair metadata key holding a comparison's own id
# ICAI's default annotator (the dataset's own preference column) and its fixed id, md5-derived.
DEFAULT_COLUMN = "preferred_text"
DEFAULT_DESCRIPTION = "Default annotator from original dataset (from column `preferred_text`)"


def hash_string(text: str) -> str:
    """ICAI's id convention: the first 8 hex digits of the md5 of the text."""
    return hashlib.md5(text.encode("utf-8")).hexdigest()[:8]


DEFAULT_ANNOTATOR = hash_string(DEFAULT_DESCRIPTION)


def _document(path: Path) -> dict[str, Any]:
    doc = json_document(path)
    if not isinstance(doc, dict) or not {"annotators", "comparisons"} <= doc.keys():
        raise InputError("not an annotated-pairs document (needs 'annotators' and 'comparisons')", file=path)
    metadata = doc.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InputError(f"expected an object, found {type(metadata).__name__}", file=path, field="metadata")
    version = str(metadata.get("version", "1.0"))
    if version.split(".")[0] != "2":
        raise InputError(f"annotated-pairs version {version}; whypref reads version 2.x", file=path, field="version")
    annotators = doc["annotators"]
    if not isinstance(annotators, dict) or not all(isinstance(a, dict) for a in annotators.values()):
        raise InputError("expected an object of annotator objects", file=path, field="annotators")
    for annotator_id, info in annotators.items():
        for key in ("name", "description", "type"):
            if info.get(key) is not None and not isinstance(info[key], str):
                raise InputError(f"annotator {annotator_id!r}: expected text", file=path, field=key)
    if not isinstance(doc["comparisons"], list):
        raise InputError("expected a list of comparisons", file=path, field="comparisons")
    for index, comparison in enumerate(doc["comparisons"], start=1):
        record = Record(path, index, comparison if isinstance(comparison, dict) else {})
        if not isinstance(comparison, dict):
            raise record.error(f"comparison {index}: expected an object, found {type(comparison).__name__}")
        for field in ("annotations", "metadata"):
            value = comparison.get(field)
            if value is not None and not isinstance(value, dict):
                raise record.error(f"comparison {index}: expected an object, found {type(value).__name__}", field)
        for annotator_id, annotation in (comparison.get("annotations") or {}).items():
            if annotation is not None and not isinstance(annotation, dict):
                raise record.error(
                    f"comparison {index}: annotation of {annotator_id!r} is not an object", "annotations"
                )
        prompt = comparison.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise record.error(f"comparison {index}: expected text", "prompt")
    return doc


def _text(response: Any, record: Record, field: str) -> str:
    if not isinstance(response, dict) or not isinstance(response.get("text"), str):
        raise record.error("expected an object with a 'text' string", field)
    return response["text"]


def read_icai(path: Path, options: ImportOptions) -> Iterator[LabeledPair]:
    doc = _document(path)
    default = doc.get("metadata", {}).get("default_annotator")
    mechanisms = {
        annotator_id: _mechanism_name(annotator_id, info, annotator_id == default, options)
        for annotator_id, info in doc["annotators"].items()
        if info.get("type") not in _PRINCIPLE_TYPES
    }
    builder = PairBuilder(options.source or path.name.split(".")[0], options.allow_empty_responses)
    for index, comparison in enumerate(doc["comparisons"], start=1):
        record = Record(path, index, comparison)  # 'line' is the comparison's number here
        metadata = dict(comparison.get("metadata") or {})
        domain = options.domain or metadata.pop(options.mapping.domain_column, None)
        source = options.source or metadata.pop("source", None) or builder.source
        if not domain:
            raise record.error("no domain (give --domain, or put it in the comparison's metadata)", "domain")
        # What the pair model has no field for is kept in its metadata, and written back on export.
        if comparison.get("id") is not None:
            metadata[_ID] = str(comparison["id"])
        for side in ("a", "b"):
            response = comparison.get(f"response_{side}")
            if isinstance(response, dict) and response.get("model") is not None:
                metadata[f"model_{side}"] = str(response["model"])
        labels = []
        for annotator_id, annotation in (comparison.get("annotations") or {}).items():
            if annotator_id in mechanisms and annotation and annotation.get("pref") is not None:
                orders = [_verdict(record, annotation.get(key)) for key in ("pref", "pref_ab", "pref_ba")]
                verdict, ab, ba = orders
                spec = LabelSpec(mechanisms[annotator_id], verdict_ab=ab, verdict_ba=ba) if ab and ba else None
                labels.append(spec or LabelSpec(mechanisms[annotator_id], verdict=verdict))
        yield replace(builder, source=str(source)).build(
            record,
            query=comparison.get("prompt") or "",
            response_a=_text(comparison.get("response_a"), record, "response_a"),
            response_b=_text(comparison.get("response_b"), record, "response_b"),
            domain=str(domain),
            labels=labels,
            metadata=metadata,
        )


def _mechanism_name(annotator_id: str, info: dict[str, Any], default: bool, options: ImportOptions) -> str:
    """ICAI names its default annotator after the column it came from; whypref exports its reference
    mechanism's own name there."""
    name = info.get("name")
    if default:
        return options.mechanism if name in (None, DEFAULT_COLUMN) else str(name)
    return str(name or annotator_id)


def _verdict(record: Record, pref: Any) -> Verdict | None:
    if pref is None:
        return None
    if str(pref).lower() not in _PREFS:
        raise record.error(f"unknown label {pref!r} (accepted: a, b, text_a, text_b, tie)", "pref")
    return _PREFS[str(pref).lower()]


def read_icai_principles(path: Path, pair_ids: list[str]) -> tuple[list[Concept], list[ConceptValue]]:
    """The principle annotators of a document as concepts, with their votes as concept values: a / b
    are +1 / -1 (or the exact ``value`` whypref exported), any vote without a preference (not
    applicable, both, neither, invalid) is 0 with its reason kept. Principles whose names would give
    one concept id are told apart by their annotator id.

    ``pair_ids`` are the ids the comparisons were stored under, in document order.
    """
    doc = _document(path)
    principles: dict[str, Concept] = {}
    taken: set[str] = set()
    for annotator_id, info in doc["annotators"].items():
        if info.get("type") not in _PRINCIPLE_TYPES:
            continue
        text = info.get("description") or annotator_id
        name = (info.get("name") or text)[:MAX_NAME]
        if concept_id(name) in taken:
            name = f"{name[: MAX_NAME - 11]} ({annotator_id[:8]})"
        kind = info.get("kind") if info.get("kind") in {k.value for k in ConceptKind} else ConceptKind.MANUAL.value
        provenance = {"icai_annotator": annotator_id, "file": path.name} | (
            {"icai_type": info["type"]} if info["type"] != "principle" else {}
        )
        principles[annotator_id] = Concept(
            name=name, definition=info.get("description", ""), kind=ConceptKind(kind), provenance=provenance
        )
        taken.add(principles[annotator_id].id)
    values = []
    for pair_id, comparison in zip(pair_ids, doc["comparisons"], strict=True):
        for annotator_id, annotation in (comparison.get("annotations") or {}).items():
            if annotator_id in principles and annotation is not None:
                values.append(_principle_value(pair_id, principles[annotator_id].id, annotation))
    return list(principles.values()), values


def _principle_value(pair_id: str, cid: str, annotation: dict[str, Any]) -> ConceptValue:
    pref, exact = annotation.get("pref"), annotation.get("value")
    sign = {"a": 1.0, "text_a": 1.0, "b": -1.0, "text_b": -1.0}.get(str(pref).lower())
    detail: dict[str, Any] = {}
    if sign is not None and isinstance(exact, int | float) and not isinstance(exact, bool) and exact * sign > 0:
        value = float(exact)
    elif sign is not None:
        value = sign
    else:
        value = 0.0
        detail = {"no_pref_reason": str(annotation.get("no_pref_reason") or "not_applicable")}
        if "value" in annotation:  # a non-preference principle's vote
            detail["value"] = annotation["value"]
    return ConceptValue(pair_id=pair_id, concept_id=cid, annotator=PRINCIPLE_ANNOTATOR, value=value, detail=detail)


def icai_document(
    items: list[LabeledPair],
    *,
    dataset_name: str,
    reference: str | None,
    concepts: list[Concept] = (),  # type: ignore[assignment]
    values: dict[tuple[str, str], ConceptValue] | None = None,
) -> dict[str, Any]:
    """An annotated-pairs v2.0 document: mechanisms as annotators (the reference under ICAI's fixed
    default-annotator id, which Feedback Forensics looks for), concepts as principle annotators.

    Beyond what ICAI writes, and read back by whypref: both presentation orders of a label
    (``pref_ab`` / ``pref_ba``), a principle's concept name and kind, and a non-unit value."""
    mechanisms = sorted({label.mechanism for item in items for label in item.labels})
    annotator_ids = {m: DEFAULT_ANNOTATOR if m == reference else hash_string("column_" + m) for m in mechanisms}
    annotators: dict[str, dict[str, Any]] = {
        annotator_ids[m]: {
            "name": m,
            "description": DEFAULT_DESCRIPTION if m == reference else f"whypref mechanism {m}",
            "type": "human" if m.startswith("human") else "unknown",
        }
        for m in mechanisms
    }
    principle_ids: dict[str, str] = {}
    for c in concepts:
        text = c.definition or c.name
        principle_id = hash_string(text)
        if principle_id in annotators:  # two concepts with one definition
            principle_id = hash_string(f"{text} ({c.id})")
        principle_ids[c.id] = principle_id
        kind = str(c.provenance.get("icai_type", "principle"))
        annotators[principle_id] = {"description": text, "type": kind, "name": c.name, "kind": c.kind.value}
    comparisons = []
    for item in items:
        annotations: dict[str, dict[str, Any]] = {}
        for label in item.labels:
            annotation = {"pref": _PREF_OF[label.verdict]}
            if label.verdict_ab is not None and label.verdict_ba is not None:
                annotation |= {"pref_ab": _PREF_OF[label.verdict_ab], "pref_ba": _PREF_OF[label.verdict_ba]}
            annotations[annotator_ids[label.mechanism]] = annotation
        for concept in concepts:
            value = (values or {}).get((item.pair.id, concept.id))
            if value is not None:
                annotations[principle_ids[concept.id]] = _principle_annotation(value)
        metadata = dict(item.pair.metadata)
        comparison_id = metadata.pop(_ID, None) or item.pair.id
        responses: list[dict[str, Any]] = []
        for side, text in (("a", item.pair.response_a), ("b", item.pair.response_b)):
            model = metadata.pop(f"model_{side}", None)
            responses.append({"text": text} | ({"model": model} if model is not None else {}))
        comparisons.append(
            {
                "id": comparison_id,
                "prompt": item.pair.query_text,  # "", never null: ICAI's loader calls str methods on it
                "response_a": responses[0],
                "response_b": responses[1],
                "annotations": annotations,
                "metadata": metadata | {"domain": item.pair.domain, "source": item.pair.source},
            }
        )
    return {
        "metadata": {
            "version": FORMAT_VERSION,
            "description": "Annotated pairs exported by whypref",
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "dataset_name": dataset_name,
            "default_annotator": DEFAULT_ANNOTATOR if reference in mechanisms else None,
            "available_metadata_keys_per_comparison": ["domain", "source"],
        },
        "annotators": annotators,
        "comparisons": comparisons,
    }


def _principle_annotation(value: ConceptValue) -> dict[str, Any]:
    if value.value == 0:
        reason = value.detail.get("no_pref_reason", "not_applicable")
        return {"pref": None, "no_pref_reason": reason} | (
            {"value": value.detail["value"]} if "value" in value.detail else {}
        )
    annotation: dict[str, Any] = {"pref": "a" if value.value > 0 else "b"}
    return annotation if abs(value.value) == 1 else annotation | {"value": value.value}


def write_icai(document: dict[str, Any], out: Path) -> None:
    out.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
