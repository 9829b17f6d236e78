"""Each kind of bad input gets one clear error naming file, line and field, and the store is unchanged."""

import json
import subprocess
import sys

import pytest

from tools.errors import InputError
from tools.importers import import_file

GOOD = {"query": "q", "response_a": "a", "response_b": "b", "winner": "a", "domain": "d"}


@pytest.fixture
def seeded(store, tmp_path):
    """A store already holding data, which a failed import must not touch."""
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(GOOD | {"query": f"q{i}"}) + "\n" for i in range(3)))
    import_file(store, good)
    return store


def lines(*rows):
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


CASES = {
    "malformed line": (lines(GOOD, b'{"query": "q", "response_a": ', GOOD), 2, None, "malformed JSON"),
    "missing field": (
        lines(GOOD, GOOD, {k: v for k, v in GOOD.items() if k != "response_b"}),
        3,
        "response_b",
        "missing field",
    ),
    "unknown label": (lines(GOOD, GOOD | {"winner": "maybe"}), 2, "winner", "unknown label 'maybe'"),
    "empty response": (lines(GOOD | {"response_a": "  "}), 1, "response_a", "empty response"),
    "non-UTF-8 byte": (
        lines(GOOD, GOOD, b'{"query": "caf\xe9", "response_a": "a", "response_b": "b", "winner": "a", "domain": "d"}'),
        3,
        "query",
        "not valid UTF-8",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_named_and_nothing_is_written(seeded, tmp_path, case):
    content, line, field, problem = CASES[case]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    before = seeded.content_digest()
    with pytest.raises(InputError) as caught:
        import_file(seeded, path)
    error = caught.value
    assert (error.file, error.line, error.field) == (path, line, field)
    assert problem in str(error) and str(path) in str(error) and f"line {line}" in str(error)
    assert seeded.content_digest() == before


def test_missing_file(seeded, tmp_path):
    before = seeded.content_digest()
    with pytest.raises(InputError, match="file does not exist"):
        import_file(seeded, tmp_path / "nope.jsonl")
    assert seeded.content_digest() == before


def test_csv_line_numbers_count_multiline_cells(tmp_path, store):
    path = tmp_path / "bad.csv"
    path.write_text('query,response_a,response_b,winner,domain\n"two\nlines",a,b,a,d\nq,a,b,??,d\n', encoding="utf-8")
    with pytest.raises(InputError) as caught:
        import_file(store, path)
    assert (caught.value.line, caught.value.field) == (4, "winner")


def test_json_array_errors_name_the_line_where_the_record_starts(tmp_path, store):
    records = [GOOD, GOOD | {"query": "x"}, {k: v for k, v in GOOD.items() if k != "domain"}]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(records, indent=2))
    with pytest.raises(InputError) as caught:
        import_file(store, path)
    starts = [number for number, line in enumerate(path.read_text().splitlines(), start=1) if line == "  {"]
    assert (caught.value.line, caught.value.field) == (starts[2], "domain")


def test_cli_reports_one_clear_line_and_fails(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(CASES["unknown label"][0])
    db = tmp_path / "cli.db"
    run = subprocess.run(
        [sys.executable, "-m", "cli", "import", str(path), "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert f"{path}, line 2: field 'winner': unknown label 'maybe'" in " ".join(run.stderr.split())
    assert "Traceback" not in run.stderr
