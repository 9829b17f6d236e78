"""ICAI's "annotated pairs" JSON format (v2.0), read and written, to move data between whypref,
Inverse Constitutional AI and Feedback Forensics.

Annotators that are not principles become mechanisms; the default annotator takes the name given
by ``--mechanism`` (default ``human``). Principle annotators are concepts: their votes become
concept values (+1 for a, -1 for b, 0 for no preference) of annotator ``icai``. On export, a
mechanism's tie is written as ``"tie"``, which ICAI's own annotators also produce.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.concepts import Concept, ConceptKind, ConceptValue
from tools.errors import InputError
from tools.importers.base import ImportOptions, LabelSpec, PairBuilder
from tools.importers.reading import Record, json_document
from tools.pairs import LabeledPair, Verdict

FORMAT_VERSION = "2.0"
PRINCIPLE_ANNOTATOR = "icai"
_PREFS = {"a": Verdict.A, "text_a": Verdict.A, "b": Verdict.B, "text_b": Verdict.B, "tie": Verdict.TIE}


def hash_string(text: str) -> str:
    """ICAI's id convention: the first 8 hex digits of the md5 of the text."""
    return hashlib.md5(text.encode("utf-8")).hexdigest()[:8]  # noqa: S324 - an id, not security


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
        annotator_id: options.mechanism if annotator_id == default else (info.get("name") or annotator_id)
        for annotator_id, info in doc["annotators"].items()
        if info.get("type") != "principle"
    }
    builder = PairBuilder(options.source or path.name.split(".")[0], options.allow_empty_responses)
    for index, comparison in enumerate(doc["comparisons"], start=1):
        record = Record(path, index, comparison)  # 'line' is the comparison's number here
        metadata = dict(comparison.get("metadata") or {})
        domain = options.domain or metadata.pop(options.mapping.domain_column, None)
        source = options.source or metadata.pop("source", None) or builder.source
        if not domain:
            raise record.error("no domain (give --domain, or put it in the comparison's metadata)", "domain")
        labels = []
        for annotator_id, annotation in (comparison.get("annotations") or {}).items():
            if annotator_id not in mechanisms:
                continue
            pref = annotation.get("pref") if isinstance(annotation, dict) else None
            if pref is None:
                continue
            if str(pref).lower() not in _PREFS:
                raise record.error(f"unknown label {pref!r} (accepted: a, b, text_a, text_b, tie)", "pref")
            labels.append(LabelSpec(mechanisms[annotator_id], verdict=_PREFS[str(pref).lower()]))
        yield replace(builder, source=str(source)).build(
            record,
            query=comparison.get("prompt") or "",
            response_a=_text(comparison.get("response_a"), record, "response_a"),
            response_b=_text(comparison.get("response_b"), record, "response_b"),
            domain=str(domain),
            labels=labels,
            metadata=metadata,
        )


def read_icai_principles(path: Path, pair_ids: list[str]) -> tuple[list[Concept], list[ConceptValue]]:
    """The principle annotators of a document as concepts, with their votes as concept values.

    ``pair_ids`` are the ids the comparisons were stored under, in document order.
    """
    doc = _document(path)
    principles = {
        annotator_id: Concept(
            name=info.get("description", annotator_id)[:200],
            definition=info.get("description", ""),
            kind=ConceptKind.MANUAL,
            provenance={"icai_annotator": annotator_id, "file": path.name},
        )
        for annotator_id, info in doc["annotators"].items()
        if info.get("type") == "principle"
    }
    values = []
    for pair_id, comparison in zip(pair_ids, doc["comparisons"], strict=True):
        for annotator_id, annotation in (comparison.get("annotations") or {}).items():
            if annotator_id in principles:
                pref = (annotation or {}).get("pref")
                value = {"a": 1.0, "text_a": 1.0, "b": -1.0, "text_b": -1.0}.get(str(pref).lower(), 0.0)
                values.append(
                    ConceptValue(
                        pair_id=pair_id,
                        concept_id=principles[annotator_id].id,
                        annotator=PRINCIPLE_ANNOTATOR,
                        value=value,
                    )
                )
    return list(principles.values()), values


def icai_document(
    items: list[LabeledPair],
    *,
    dataset_name: str,
    reference: str | None,
    concepts: list[Concept] = (),  # type: ignore[assignment]
    values: dict[tuple[str, str], float] | None = None,
) -> dict[str, Any]:
    """An annotated-pairs v2.0 document: mechanisms as annotators, concepts as principle annotators."""
    mechanisms = sorted({label.mechanism for item in items for label in item.labels})
    annotators: dict[str, dict[str, Any]] = {
        hash_string("column_" + m): {
            "name": m,
            "description": f"whypref mechanism {m}",
            "type": "human" if m.startswith("human") else "unknown",
        }
        for m in mechanisms
    }
    principle_ids = {c.id: hash_string(c.definition or c.name) for c in concepts}
    annotators |= {principle_ids[c.id]: {"description": c.definition or c.name, "type": "principle"} for c in concepts}
    comparisons = []
    for item in items:
        annotations: dict[str, dict[str, Any]] = {
            hash_string("column_" + label.mechanism): {
                "pref": {Verdict.A: "a", Verdict.B: "b", Verdict.TIE: "tie"}[label.verdict]
            }
            for label in item.labels
        }
        for concept in concepts:
            value = (values or {}).get((item.pair.id, concept.id))
            if value is not None:
                annotations[principle_ids[concept.id]] = (
                    {"pref": "a" if value > 0 else "b"} if value else {"pref": None, "no_pref_reason": "not_applicable"}
                )
        comparisons.append(
            {
                "id": item.pair.id,
                "prompt": item.pair.query_text or None,
                "response_a": {"text": item.pair.response_a},
                "response_b": {"text": item.pair.response_b},
                "annotations": annotations,
                "metadata": item.pair.metadata | {"domain": item.pair.domain, "source": item.pair.source},
            }
        )
    return {
        "metadata": {
            "version": FORMAT_VERSION,
            "description": "Annotated pairs exported by whypref",
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "dataset_name": dataset_name,
            "default_annotator": hash_string("column_" + reference) if reference in mechanisms else None,
            "available_metadata_keys_per_comparison": ["domain", "source"],
        },
        "annotators": annotators,
        "comparisons": comparisons,
    }


def write_icai(document: dict[str, Any], out: Path) -> None:
    out.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
