"""Generic preference files (JSONL, CSV, JSON array) read through a column mapping.

Layouts: ``chosen``/``rejected`` (the chosen response is put first or second by a content hash, so
labels stay balanced and re-imports are identical), or ``response_a``/``response_b``/``winner``.
Columns not mapped are kept as metadata.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tools.importers.base import VERDICT_SPELLINGS, ImportOptions, LabelSpec, PairBuilder, parse_verdict
from tools.importers.reading import Record, csv_records, json_array_records, jsonl_records
from tools.pairs import LabeledPair, Verdict


def read_jsonl(path: Path, options: ImportOptions) -> Iterator[LabeledPair]:
    return _read(jsonl_records(path), path, options)


def read_csv(path: Path, options: ImportOptions) -> Iterator[LabeledPair]:
    return _read(csv_records(path), path, options)


def read_json(path: Path, options: ImportOptions) -> Iterator[LabeledPair]:
    return _read(json_array_records(path), path, options)


def _read(records: Iterable[Record], path: Path, options: ImportOptions) -> Iterator[LabeledPair]:
    m = options.mapping
    builder = PairBuilder(options.source or path.name.split(".")[0], options.allow_empty_responses)
    chosen_layout: bool | None = None
    for record in records:
        if chosen_layout is None:
            chosen_layout = m.chosen in record.data and m.response_a not in record.data
            builder.column_names = (
                {"response_a": m.chosen, "response_b": m.rejected}
                if chosen_layout
                else {"response_a": m.response_a, "response_b": m.response_b}
            )
            builder.column_names |= {"query": m.query, "domain": m.domain_column}
        yield (_chosen_rejected if chosen_layout else _a_b_winner)(record, builder, options)


def _domain(record: Record, options: ImportOptions) -> str:
    if options.domain is not None:
        return options.domain
    if options.mapping.domain_column not in record.data:
        raise record.error(
            "missing field (name the domain column with --domain-column, or give --domain)",
            options.mapping.domain_column,
        )
    return record.text(options.mapping.domain_column)


def _query(record: Record, column: str) -> Any:
    value = record.get(column)
    return value if isinstance(value, list) else record.text(column)


def _metadata(record: Record, used: set[str]) -> dict[str, Any]:
    return {k: v for k, v in record.data.items() if k not in used}


def _chosen_rejected(record: Record, builder: PairBuilder, options: ImportOptions) -> LabeledPair:
    m = options.mapping
    chosen, rejected = record.text(m.chosen), record.text(m.rejected)
    # Deterministic, content-based order: balanced A/B labels and identical re-imports.
    chosen_first = hashlib.sha256((chosen + "\x00" + rejected).encode()).digest()[0] % 2 == 0
    a, b = (chosen, rejected) if chosen_first else (rejected, chosen)
    return builder.build(
        record,
        query=_query(record, m.query),
        response_a=a,
        response_b=b,
        domain=_domain(record, options),
        labels=[LabelSpec(options.mechanism, verdict=Verdict.A if chosen_first else Verdict.B)],
        metadata=_metadata(record, {m.query, m.chosen, m.rejected, m.domain_column}),
    )


def _a_b_winner(record: Record, builder: PairBuilder, options: ImportOptions) -> LabeledPair:
    m = options.mapping
    # A verdict may also name the winning response's column ("winner": "gpt4_answer").
    spellings = VERDICT_SPELLINGS | {m.response_a.lower(): Verdict.A, m.response_b.lower(): Verdict.B}
    labels = [LabelSpec(options.mechanism, verdict=parse_verdict(record, m.winner, spellings))]
    labels += [
        LabelSpec(mechanism, verdict=parse_verdict(record, column, spellings))
        for mechanism, column in m.extra_labels.items()
        if record.data.get(column) not in (None, "")
    ]
    used = {m.query, m.response_a, m.response_b, m.winner, m.domain_column, *m.extra_labels.values()}
    return builder.build(
        record,
        query=_query(record, m.query),
        response_a=record.text(m.response_a),
        response_b=record.text(m.response_b),
        domain=_domain(record, options),
        labels=labels,
        metadata=_metadata(record, used),
    )
