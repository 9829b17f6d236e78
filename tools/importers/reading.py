"""Reading records from files with their line numbers, so every error can name file, line and field."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from tools.errors import InputError

_CONFINEMENT: ContextVar[tuple[Path, ...] | None] = ContextVar("confinement", default=None)


@contextmanager
def confined_to(roots: tuple[Path, ...]) -> Iterator[None]:
    """Every file read in this context must lie inside ``roots`` (resolved directories)."""
    token = _CONFINEMENT.set(roots)
    try:
        yield
    finally:
        _CONFINEMENT.reset(token)


def allowed(path: Path) -> bool:
    """Whether the current confinement (if any) lets ``path`` be read."""
    roots = _CONFINEMENT.get()
    return roots is None or any(path.resolve().is_relative_to(root) for root in roots)


@contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    """The file opened for reading bytes (gzip-transparent); a missing file or a folder is an InputError.
    Under a confinement the *opened* file is checked, not the name: the name may be swapped for a
    symlink between a check and the open."""
    if not path.exists():
        raise InputError("file does not exist", file=path)
    if path.is_dir():
        raise InputError("is a directory; this format reads one file", file=path)
    with open(path, "rb") as handle:
        if _CONFINEMENT.get() is not None:
            real = path.resolve()
            opened, named = os.fstat(handle.fileno()), os.stat(real)
            if not allowed(real) or (opened.st_dev, opened.st_ino) != (named.st_dev, named.st_ino):
                raise InputError("outside the allowed directories", file=path)
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=handle) as unzipped:
                yield unzipped  # type: ignore[misc]
        else:
            yield handle


def _decoded(raw: bytes, path: Path, line_offset: int = 0) -> str:
    """UTF-8 text; a non-UTF-8 byte is an InputError naming its line, column and (in JSON) field."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        field = _field_holding_bad_byte(raw.split(b"\n")[line - 1])
        raise InputError(
            f"byte 0x{raw[error.start]:02x} at column {column} is not valid UTF-8 (re-save the file as UTF-8)",
            file=path,
            line=line_offset + line,
            field=field,
        ) from None


def read_text(path: Path) -> str:
    """The file's text as UTF-8 (gzip-transparent); a missing file or a non-UTF-8 byte is an InputError."""
    with _opened(path) as raw:
        return _decoded(raw.read(), path).removeprefix("\ufeff")  # a byte-order mark, as spreadsheets write


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(number, text) of every line, read as it comes: split on newlines only (str.splitlines would also
    split on U+2028, U+2029, U+0085..., which JSON allows unescaped inside strings), so memory does not
    grow with the file."""
    with _opened(path) as raw:
        for number, line in enumerate(raw, start=1):
            text = _decoded(line, path, number - 1).removesuffix("\n").removesuffix("\r")
            yield number, text.removeprefix("\ufeff") if number == 1 else text


def _field_holding_bad_byte(line: bytes) -> str | None:
    """Best effort: the JSON key whose value holds the undecodable byte, when the line is a JSON object."""
    try:
        data = json.loads(line.decode("utf-8", errors="surrogateescape"))
    except ValueError:
        return None
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str) and any("\udc80" <= ch <= "\udcff" for ch in value):
                return str(key)
    return None


@dataclass(frozen=True)
class Record:
    """One record of a file: its data and where it came from."""

    file: Path
    line: int
    data: dict[str, Any]

    def error(self, problem: str, field: str | None = None) -> InputError:
        return InputError(problem, file=self.file, line=self.line, field=field)

    def get(self, field: str) -> Any:
        """A required field's value."""
        if field not in self.data or self.data[field] is None:
            present = ", ".join(sorted(map(str, self.data))) or "none"
            raise self.error(f"missing field (fields present: {present})", field)
        return self.data[field]

    def text(self, field: str, *, allow_empty: bool = True) -> str:
        """A required text field; numbers and booleans some sources store unquoted become their text."""
        value = self.get(field)
        if isinstance(value, float) and value != value:  # NaN: how pandas-made JSON spells an empty cell
            value = ""
        if isinstance(value, bool):
            value = str(value)
        if isinstance(value, int | float):
            value = str(value)
        if not isinstance(value, str):
            raise self.error(f"expected text, found {type(value).__name__}", field)
        if not allow_empty and not value.strip():
            raise self.error("is empty", field)
        return value


TOO_DEEP = "JSON nested too deeply (thousands of levels): not a preference record"


def jsonl_records(path: Path) -> Iterator[Record]:
    """One record per non-blank line of a JSON Lines file, read as it comes."""
    for number, line in text_lines(path):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"malformed JSON ({error.msg} at column {error.colno})", file=path, line=number) from None
        except RecursionError:
            raise InputError(TOO_DEEP, file=path, line=number) from None
        if not isinstance(data, dict):
            raise InputError(f"expected a JSON object, found {type(data).__name__}", file=path, line=number)
        yield Record(path, number, data)


def json_document(path: Path) -> Any:
    """A whole JSON file, parsed."""
    try:
        return json.loads(read_text(path))
    except RecursionError:
        raise InputError(TOO_DEEP, file=path) from None
    except json.JSONDecodeError as error:
        raise InputError(
            f"malformed JSON ({error.msg} at column {error.colno})", file=path, line=error.lineno
        ) from None


def json_array_records(path: Path, text: str | None = None) -> Iterator[Record]:
    """The objects of a top-level JSON array, each with the line it starts on."""
    text = read_text(path) if text is None else text
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0)
    if position >= len(text) or text[position] != "[":
        raise InputError("expected a JSON array of records (or use --format jsonl)", file=path, line=1)
    position = _skip_space(text, position + 1)
    line, counted = 1, 0  # lines counted incrementally: recounting from the start is quadratic

    def line_at(at: int) -> int:
        nonlocal line, counted
        line, counted = line + text.count("\n", counted, at), at
        return line

    while position < len(text) and text[position] != "]":
        start = line_at(position)
        try:
            data, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise InputError(f"malformed JSON ({error.msg})", file=path, line=error.lineno) from None
        except RecursionError:
            raise InputError(TOO_DEEP, file=path, line=start) from None
        if not isinstance(data, dict):
            raise InputError(f"expected a JSON object, found {type(data).__name__}", file=path, line=start)
        yield Record(path, start, data)
        position = _skip_space(text, position)
        if position < len(text) and text[position] == ",":
            position = _skip_space(text, position + 1)
        elif position < len(text) and text[position] != "]":
            raise InputError("malformed JSON (expected ',' or ']')", file=path, line=line_at(position))
    if position >= len(text):
        raise InputError("malformed JSON (the array is not closed)", file=path, line=text.count("\n") + 1)


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


_MAX_CELL = 64 * 1024 * 1024


def csv_records(path: Path) -> Iterator[Record]:
    """One record per CSV row (header row first), each with the line the row starts on."""
    csv.field_size_limit(_MAX_CELL)  # the default, 131,072 characters, is shorter than many responses
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""), strict=True)
    if not reader.fieldnames:
        raise InputError("empty CSV file (expected a header row)", file=path, line=1)
    start = reader.line_num + 1
    try:
        for row in reader:
            if None in row:
                raise InputError(f"{len(row[None])} more value(s) than header columns", file=path, line=start)
            yield Record(path, start, {k: v for k, v in row.items() if v is not None})
            start = reader.line_num + 1
    except csv.Error as error:
        problem = str(error)
        if problem == "unexpected end of data":  # a quote opened and never closed swallows the rest
            problem = f"a quoted value starting on line {start} is never closed"
            raise InputError(f"malformed CSV ({problem})", file=path, line=start) from None
        raise InputError(f"malformed CSV ({problem})", file=path, line=reader.line_num) from None


def validation_problem(error: ValidationError, names: dict[str, str] | None = None) -> tuple[str, str | None]:
    """The first problem of a pydantic error, with our field name translated to the file's column."""
    first = error.errors()[0]
    location = [str(part) for part in first["loc"] if not isinstance(part, int)]
    field = location[-1] if location else None
    if field is not None and names:
        field = names.get(field, field)
    return first["msg"], field
