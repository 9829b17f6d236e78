"""Precomputed concept vectors from a file: one row per pair, a ``pair_id`` column and one column per
concept (CSV or JSON Lines). Concepts not yet in the store are added as shared, hand-made concepts."""

from __future__ import annotations

import math
from pathlib import Path

from tools.concepts import Concept, ConceptKind, ConceptValue, concept_id
from tools.errors import InputError
from tools.importers.reading import Record, csv_records, jsonl_records
from tools.store import ConceptStore


def read_values(path: Path, store: ConceptStore, annotator: str) -> tuple[list[Concept], list[ConceptValue]]:
    """Validate a whole vectors file against the store; nothing is written here."""
    records = list(csv_records(path) if path.suffix == ".csv" else jsonl_records(path))
    if not records:
        raise InputError("no records found", file=path)
    known_pairs = {row["id"] for row in store.db.query("select id from pairs")}
    known_concepts = {c.id: c for c in store.concepts()}
    names = [k for k in records[0].data if k != "pair_id"]
    if not names:
        raise InputError("no concept columns besides pair_id", file=path, line=records[0].line)
    new = [
        Concept(name=n, kind=ConceptKind.MANUAL, provenance={"file": path.name})
        for n in names
        if concept_id(n) not in known_concepts
    ]
    values = []
    for record in records:
        pair_id = record.text("pair_id", allow_empty=False)
        if pair_id not in known_pairs:
            raise record.error(f"no pair {pair_id!r} in the store (import the pairs first)", "pair_id")
        values += [
            ConceptValue(pair_id=pair_id, concept_id=concept_id(name), annotator=annotator, value=_number(record, name))
            for name in names
            if record.data.get(name) not in (None, "")
        ]
    return new, values


def _number(record: Record, field: str) -> float:
    raw = record.data[field]
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise record.error(f"expected a number, found {raw!r}", field) from None
    if not math.isfinite(value):
        raise record.error(f"expected a finite number, found {raw!r}", field)
    return value


def import_values(store: ConceptStore, path: Path, annotator: str) -> int:
    """Read and store a vectors file in one transaction."""
    concepts, values = read_values(path, store, annotator)
    with store.atomic():
        store.upsert_concepts(concepts)
        store.put_values(values)
    return len(values)
