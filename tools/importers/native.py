"""whypref's own JSON Lines format: one LabeledPair per line, as ``whypref export --format jsonl`` writes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from tools.importers.base import ImportOptions
from tools.importers.reading import jsonl_records, validation_problem
from tools.pairs import LabeledPair


def read_native(path: Path, options: ImportOptions) -> Iterator[LabeledPair]:
    """Pairs were validated when first stored, so empty responses are accepted here as they were then."""
    for record in jsonl_records(path):
        data = dict(record.data)
        stated_id = data.get("pair", {}).get("id") if isinstance(data.get("pair"), dict) else None
        try:
            item = LabeledPair.model_validate(data)
        except ValidationError as error:
            problem, field = validation_problem(error)
            raise record.error(problem, field) from None
        if stated_id is not None and stated_id != item.pair.id:
            raise record.error(f"id {stated_id!r} does not match the pair's content ({item.pair.id})", "id")
        yield item


# Line separators JSON allows raw inside strings but line-splitting readers break lines on.
_SEPARATORS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\u0085": "\\u0085"})


def write_native(items: Iterable[LabeledPair], out: IO[str]) -> int:
    count = 0
    for item in items:
        line = json.dumps(item.model_dump(mode="json", exclude_none=True), ensure_ascii=False)
        out.write(line.translate(_SEPARATORS) + "\n")  # outside strings JSON holds none of them
        count += 1
    return count


def looks_native(path: Path) -> bool:
    """Whether a JSON Lines file's first record has the shape ``export --format jsonl`` writes."""
    for record in jsonl_records(path):
        return isinstance(record.data.get("pair"), dict) and "labels" in record.data
    return False
