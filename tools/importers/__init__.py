"""Importers: every file format whypref reads, behind one interface.

``read_file`` parses and validates a whole file (nothing is written); ``import_file`` then stores it
in one transaction, so a bad record anywhere leaves the store exactly as it was.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from tools.concepts import Concept, ConceptValue
from tools.errors import InputError
from tools.importers.base import ColumnMapping, Format, ImportOptions
from tools.importers.datasets import read_alpaca_eval, read_autoj, read_llmbar, read_llmeval2, read_pandalm
from tools.importers.generic import read_csv, read_json, read_jsonl
from tools.importers.icai import read_icai, read_icai_principles
from tools.importers.native import looks_native, read_native
from tools.pairs import LabeledPair, Mechanism, MechanismKind
from tools.progress import Progress
from tools.store import ConceptStore, ImportSummary

__all__ = [
    "FORMATS",
    "ColumnMapping",
    "ImportBatch",
    "ImportOptions",
    "detect_format",
    "import_file",
    "iter_items",
    "read_file",
]

FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format(
            "jsonl",
            "JSON Lines with a column mapping (chosen/rejected or response_a/response_b/winner)",
            read_jsonl,
            MechanismKind.UNKNOWN,
        ),
        Format("csv", "CSV with a header row and a column mapping", read_csv, MechanismKind.UNKNOWN),
        Format("json", "a JSON array of records with a column mapping", read_json, MechanismKind.UNKNOWN),
        Format(
            "whypref",
            "whypref's own JSON Lines (what `whypref export --format jsonl` writes)",
            read_native,
            MechanismKind.UNKNOWN,
        ),
        Format("icai", "ICAI / Feedback Forensics annotated-pairs JSON (v2.0)", read_icai, MechanismKind.UNKNOWN),
        Format("autoj", "Auto-J pairwise test set folder (human + Auto-J-13B, both orders)", read_autoj),
        Format("llmeval2", "LLMEval2 benchmark JSONL (human; domain = dataset)", read_llmeval2),
        Format("pandalm", "PandaLM test set folder (3 annotators + majority, GPT-3.5, PandaLM-7B)", read_pandalm),
        Format("llmbar", "an LLMBar dataset folder or tree (human + every evaluator, both orders)", read_llmbar),
        Format("alpaca-eval", "AlpacaEval annotations.json(.gz), one file or a folder of them", read_alpaca_eval),
    ]
}

_BY_FOLDER = {
    "autoj": "autoj",
    "pandalm": "pandalm",
    "llmbar": "llmbar",
    "llmeval2": "llmeval2",
    "alpaca_eval": "alpaca-eval",
}
_BY_SUFFIX = {".jsonl": "jsonl", ".csv": "csv", ".json": "json"}


def detect_format(path: Path) -> str:
    """The format a path most likely holds, from its name; ask for --format when unsure."""
    for part in reversed(path.resolve().parts):
        if part.lower() in _BY_FOLDER:
            return _BY_FOLDER[part.lower()]
    if path.name.startswith("annotations.json"):
        return "alpaca-eval"
    suffix = "".join(path.suffixes[-2:-1]) if path.suffix == ".gz" else path.suffix
    if suffix in _BY_SUFFIX:
        fmt = _BY_SUFFIX[suffix]
        return "whypref" if fmt == "jsonl" and looks_native(path) else fmt
    raise InputError(f"cannot tell the format from the name; pass --format ({', '.join(FORMATS)})", file=path)


@dataclass
class ImportBatch:
    """Everything one file holds, validated and ready to store."""

    items: list[LabeledPair]
    mechanisms: list[Mechanism]
    concepts: list[Concept] = field(default_factory=list)
    values: list[ConceptValue] = field(default_factory=list)


READ_STAGE = "read"  # progress: records read so far (the total is not known)
IMPORT_CHUNK = 2000  # pairs validated, then written, at a time (all inside the import's one transaction)


def iter_items(
    path: Path, fmt: str, options: ImportOptions | None = None, progress: Progress | None = None
) -> Iterator[LabeledPair]:
    """Parse and validate a file record by record. Identical rows of one file stay separate pairs."""
    options = options or ImportOptions()
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    seen: Counter[str] = Counter()
    for count, item in enumerate(FORMATS[fmt].read(Path(path), options), 1):
        if seen[item.pair.id]:
            repeat = item.pair.model_copy(update={"duplicate_index": seen[item.pair.id]})
            seen[item.pair.id] += 1
            item = LabeledPair(pair=repeat, labels=item.labels)
        seen[item.pair.id] += 1
        if progress is not None:
            progress(READ_STAGE, count, None)
        yield item


def _mechanisms(fmt: str, options: ImportOptions | None, items: Iterable[LabeledPair]) -> list[Mechanism]:
    names = sorted({label.mechanism for item in items for label in item.labels})
    return [Mechanism(name=n, kind=FORMATS[fmt].kind_of(n, options or ImportOptions())) for n in names]


def read_file(
    path: Path, fmt: str, options: ImportOptions | None = None, progress: Progress | None = None
) -> ImportBatch:
    """Parse and validate a whole file (nothing is written)."""
    items = list(iter_items(path, fmt, options, progress))
    if not items:
        raise InputError("no records found", file=path)
    batch = ImportBatch(items, _mechanisms(fmt, options, items))
    if fmt == "icai":
        batch.concepts, batch.values = read_icai_principles(Path(path), [item.pair.id for item in items])
    return batch


def import_file(
    store: ConceptStore,
    path: Path,
    fmt: str | None = None,
    options: ImportOptions | None = None,
    progress: Progress | None = None,
) -> ImportSummary:
    """Read, validate and store a file in one transaction: all of it lands, or none of it.

    Records are validated and written :data:`IMPORT_CHUNK` at a time, so memory does not grow with the
    file; a bad record anywhere still rolls back everything before it."""
    fmt = fmt or detect_format(path)
    if fmt == "icai":  # its principles' values need every pair id first
        batch = read_file(path, fmt, options, progress)
        with store.atomic():
            summary = store.add_labeled_pairs(batch.items, batch.mechanisms)
            store.upsert_concepts(batch.concepts)
            store.put_values(batch.values)
        return summary
    parts: list[ImportSummary] = []
    with store.atomic():
        records = iter_items(path, fmt, options, progress)
        while chunk := list(islice(records, IMPORT_CHUNK)):
            parts.append(store.add_labeled_pairs(chunk, _mechanisms(fmt, options, chunk)))
        if not parts:
            raise InputError("no records found", file=path)
    return ImportSummary(
        pairs=sum(p.pairs for p in parts),
        new_pairs=sum(p.new_pairs for p in parts),
        labels=sum(p.labels for p in parts),
        domains=sorted({d for p in parts for d in p.domains}),
        mechanisms=sorted({m for p in parts for m in p.mechanisms}),
    )
