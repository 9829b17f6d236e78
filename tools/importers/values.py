"""Precomputed concept vectors from a file: one row per pair, a ``pair_id`` column and one column per
concept (CSV or JSON Lines). Concepts not yet in the store are added as shared, hand-made concepts."""

from __future__ import annotations

import math
from pathlib import Path

from tools.concepts import Concept, ConceptKind, ConceptValue, concept_id
from tools.errors import InputError
from tools.importers.reading import Record, csv_records, jsonl_records
from tools.pairs import MAX_NAME
from tools.store import ConceptStore


def read_values(path: Path, store: ConceptStore, annotator: str) -> tuple[list[Concept], list[ConceptValue]]:
    """Validate a whole vectors file against the store; nothing is written here."""
    records = list(csv_records(path) if path.suffix == ".csv" else jsonl_records(path))
    if not records:
        raise InputError("no records found", file=path)
    known_pairs = store.pair_ids()
    known_concepts = {c.id: c for c in store.concepts()}
    columns = _concept_columns(records, known_concepts)
    if not columns:
        raise InputError("no concept columns besides pair_id", file=path, line=records[0].line)
    new = [
        Concept(name=name, kind=ConceptKind.MANUAL, provenance={"file": path.name})
        for name, cid in columns.items()
        if cid not in known_concepts
    ]
    values = []
    seen: dict[str, int] = {}
    for record in records:
        pair_id = record.text("pair_id", allow_empty=False)
        if pair_id not in known_pairs:
            raise record.error(f"no pair {pair_id!r} in the store (import the pairs first)", "pair_id")
        if pair_id in seen:
            raise record.error(f"pair {pair_id!r} already has a row, on line {seen[pair_id]}", "pair_id")
        seen[pair_id] = record.line
        values += [
            ConceptValue(pair_id=pair_id, concept_id=cid, annotator=annotator, value=_number(record, name))
            for name, cid in columns.items()
            if record.data.get(name) not in (None, "")
        ]
    return new, values


def _concept_columns(records: list[Record], known: dict[str, Concept]) -> dict[str, str]:
    """Every concept column of the file (in any row, in order of appearance) with its concept id.

    Two columns with one id, or a column whose id is a stored concept of another name, are refused:
    merging them would silently overwrite one with the other."""
    columns: dict[str, str] = {}
    by_id: dict[str, str] = {}
    for record in records:
        for name in record.data:
            if name == "pair_id" or name in columns:
                continue
            if len(name.strip()) > MAX_NAME:
                raise record.error(f"a concept name has at most {MAX_NAME} characters ({len(name)} here)", name[:40])
            try:
                cid = concept_id(name)
            except ValueError as error:
                raise record.error(str(error), name) from None
            if cid in by_id:
                raise record.error(
                    f"columns {by_id[cid]!r} and {name!r} name the same concept ({cid}); rename one", name
                )
            stored = known.get(cid)
            if stored is not None and name.strip() not in (stored.name, stored.id):
                raise record.error(
                    f"the store's concept {stored.name!r} has the same id ({cid}); use its name or rename the column",
                    name,
                )
            columns[name], by_id[cid] = cid, name
    return columns


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
