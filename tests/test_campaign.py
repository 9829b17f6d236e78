"""Defects a fault and bad-input campaign found (issue #14), each kept fixed by a test."""

import io
import json
import re

import pytest
from typer.testing import CliRunner

import tools.measured
from cli import app
from mcp_server.paths import AllowedDirectories
from tools.annotation import Annotation, AnnotationConfig
from tools.concepts import Concept
from tools.errors import InputError, StoreError
from tools.importers import ImportOptions, detect_format, import_file, read_file
from tools.importers.native import write_native
from tools.importers.reading import confined_to
from tools.importers.values import import_values
from tools.pairs import Label, LabeledPair, Pair
from tools.store import ConceptStore

SEPARATORS = "line\u2028separator, paragraph\u2029separator, next\u0085line"


def test_line_separators_inside_strings_survive_export_and_import(store, tmp_path):
    item = LabeledPair(
        pair=Pair(query=SEPARATORS, response_a="a\u2028b", response_b="c", domain="d", source="s"),
        labels=[Label(mechanism="human", verdict="A")],
    )
    out = io.StringIO()
    write_native([item], out)
    text = out.getvalue()
    assert text.count("\n") == 1 and not set("\u2028\u2029\u0085") & set(text)
    path = tmp_path / "export.jsonl"
    path.write_text(text, encoding="utf-8")
    assert detect_format(path) == "whypref"  # no --format needed for whypref's own export
    [back] = read_file(path, detect_format(path)).items
    assert back.pair == item.pair
    import_file(store, path)
    assert [p.query_text for p in store.pairs()] == [SEPARATORS]


def test_generic_jsonl_may_hold_raw_line_separators(tmp_path):
    row = {"query": SEPARATORS, "response_a": "a", "response_b": "b", "winner": "a", "domain": "d"}
    path = tmp_path / "generic.jsonl"
    path.write_text(json.dumps(row, ensure_ascii=False) + "\r\n" + json.dumps(row | {"query": "q2"}) + "\n")
    assert detect_format(path) == "jsonl"
    items = read_file(path, "jsonl").items
    assert [i.pair.query_text for i in items] == [SEPARATORS, "q2"]


@pytest.fixture
def paired(store, tmp_path):
    """A store with three pairs and a stored concept named 'Warm tone'."""
    rows = [{"query": f"q{i}", "response_a": "a", "response_b": "b", "winner": "a", "domain": "d"} for i in range(3)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    import_file(store, path)
    store.upsert_concepts([Concept(name="Warm tone")])
    return store, [p.id for p in store.pairs()]


VALUE_FILES = {
    "two columns, one id": ("pair_id,Brevity,brevity!\n{0},1,-1\n", 2, "brevity!", "name the same concept"),
    "column vs stored concept": ("pair_id,WARM TONE\n{0},1\n", 2, "WARM TONE", "'Warm tone' has the same id"),
    "repeated pair": ("pair_id,Brevity\n{0},1\n{1},1\n{0},-1\n", 4, "pair_id", "already has a row, on line 2"),
    "no letters": ("pair_id,!!!\n{0},1\n", 2, "!!!", "has no letters or digits"),
    "name too long": ("pair_id," + "x" * 250 + "\n{0},1\n", 2, "x" * 40, "at most 200 characters"),
}


@pytest.mark.parametrize("case", VALUE_FILES)
def test_import_values_refuses_what_would_merge_or_crash(paired, tmp_path, case):
    store, ids = paired
    text, line, field, problem = VALUE_FILES[case]
    path = tmp_path / "values.csv"
    path.write_text(text.format(*ids))
    before = store.content_digest()
    with pytest.raises(InputError, match=re.escape(problem)) as caught:
        import_values(store, path, "me")
    assert (caught.value.file, caught.value.line, caught.value.field) == (path, line, field)
    assert store.content_digest() == before


def test_import_values_reads_columns_that_first_appear_later(paired, tmp_path):
    store, ids = paired
    path = tmp_path / "values.jsonl"
    rows = [{"pair_id": ids[0], "Brevity": 1}, {"pair_id": ids[1], "Warm tone": -1, "Brevity": 0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert import_values(store, path, "me") == 3
    stored = {(r["pair_id"], r["concept_id"]): r["value"] for r in store.db.query("select * from concept_values")}
    assert stored == {(ids[0], "brevity"): 1.0, (ids[1], "warm-tone"): -1.0, (ids[1], "brevity"): 0.0}


def test_a_file_swapped_for_a_symlink_after_the_check_is_not_read(tmp_path):
    allowed_dir, outside = tmp_path / "allowed", tmp_path / "secret.jsonl"
    allowed_dir.mkdir()
    outside.write_text(json.dumps({"query": "secret", "response_a": "a", "response_b": "b", "winner": "a"}) + "\n")
    name = allowed_dir / "pairs.jsonl"
    name.write_text(json.dumps({"query": "q", "response_a": "a", "response_b": "b", "winner": "a"}) + "\n")
    files = AllowedDirectories((allowed_dir.resolve(),))
    checked = files.resolve(str(name))  # the server's check passes...
    name.unlink()
    name.symlink_to(outside)  # ...then the name is swapped before the importer opens it
    with confined_to(files.roots), pytest.raises(InputError, match="outside the allowed directories"):
        read_file(checked, "jsonl", ImportOptions(domain="d"))
    assert read_file(checked, "jsonl", ImportOptions(domain="d")).items  # unconfined (the CLI) reads it


def test_llmbar_question_files_are_looked_for_only_inside_the_allowed_directories(tmp_path):
    (tmp_path / "mtbench_questions").mkdir()
    (tmp_path / "mtbench_questions" / "mt_bench_question.jsonl").write_text(
        json.dumps({"question_id": 1, "category": "writing", "turns": ["Write a poem."]}) + "\n"
    )
    data = tmp_path / "allowed" / "Processed" / "MT-Bench"
    data.mkdir(parents=True)
    record = {"input": "Write a poem.", "output_1": "Roses.", "output_2": "Violets.", "label": 1}
    (data / "dataset.json").write_text(json.dumps([record]))
    assert [i.pair.domain for i in read_file(data, "llmbar").items] == ["writing"]  # the CLI searches up
    with confined_to(((tmp_path / "allowed").resolve(),)), pytest.raises(InputError, match="pass it with --questions"):
        read_file(data, "llmbar")


HOSTILE_DOMAINS = ["[/]", "[bold]loud", "$x_1$ math", "域" * 150, "D" * 200]


def test_names_with_brackets_and_long_names_print_as_they_are(tmp_path):
    """Rich markup, mathtext and file-name limits: hostile but valid names go through every command."""
    rows = [
        {
            "query": f"question {d} {i}",
            "response_a": f"answer {i}: " + "word " * (5 + i % 7) + ("- item\n" * (i % 3)),
            "response_b": f"reply {i}: " + "word " * (4 + (i * 3) % 9),
            "winner": "a" if (i * 7) % 10 < 6 else "b",
            "domain": d,
        }
        for d in HOSTILE_DOMAINS
        for i in range(30)
    ]
    path, db = tmp_path / "hostile.jsonl", tmp_path / "s.db"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    imported = cli("import", path, "--db", db)
    assert "[/]" in imported and "[bold]loud" in imported
    assert "[/]" in cli("stats", "--db", db)
    assert "Use of [citations]" in cli(
        "concepts", "add", "Use of [citations]", "--definition", "A high score: cites.", "--db", db
    )
    cli("annotate", "--measured-only", "--db", db)
    cli("fit", "-m", "human", "--db", db)
    for bootstrap in ("0", "2"):  # 2 refits made a negative error bar once
        out = cli("explain", "-m", "human", "--db", db, "--bootstrap", bootstrap, "--out", tmp_path / "r")
        assert "[/]" in out and "$x_1$ math" in out
    charts = list((tmp_path / "r").glob("*.png"))
    assert charts and all(len(p.name.encode()) < 255 for p in charts)
    one = cli("explain", "-m", "human", "--db", db, "--domain", "域" * 150, "--out", tmp_path / "r")
    assert "域" * 20 in one


def cli(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


HEADER = "query,response_a,response_b,winner,domain\n"
CSV_FILES = {
    "unclosed quote": (HEADER + 'q1,"a,b,a,d\nq2,a,b,a,d\n', 2, "quoted value starting on line 2 is never closed"),
}


def test_a_csv_with_a_byte_order_mark_and_huge_cells_imports(store, tmp_path):
    path = tmp_path / "sheet.csv"
    long = "x" * 200_000
    path.write_bytes(("\ufeff" + HEADER + f"q1,{long},b,a,d\nq2,a,b,b,d\n").encode("utf-8"))
    import_file(store, path)
    assert sorted(len(p.response_a) for p in store.pairs()) == [1, 200_000]


@pytest.mark.parametrize("case", CSV_FILES)
def test_malformed_csv_is_named(store, tmp_path, case):
    text, line, problem = CSV_FILES[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=problem) as caught:
        import_file(store, path)
    assert caught.value.line == line and store.count("pairs") == 0


def test_unknown_domain_or_source_is_named(tmp_path):
    db = tmp_path / "s.db"
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps({"query": "q", "response_a": "a", "response_b": "b", "winner": "a", "domain": "d"}) + "\n"
    )
    cli("import", path, "--db", db, "--source", "mine")
    for args, known in (
        (("stats", "--source", "nope"), "'mine'"),
        (("stats", "--domain", "nope"), "'d'"),
        (("concepts", "add", "Brevity", "--definition", "short", "--domain", "nope"), "'d'"),
    ):
        result = CliRunner().invoke(app, [*args, "--db", str(db)])
        message = str(result.exception)
        assert result.exit_code != 0 and "no " in message and "'nope'" in message and known in message
    with ConceptStore(db) as store:
        assert [c.id for c in store.concepts() if c.id == "brevity"] == []


GOOD_ICAI = {
    "metadata": {"version": "2.0"},
    "annotators": {"h": {"name": "human", "type": "human"}},
    "comparisons": [
        {
            "prompt": "q",
            "response_a": {"text": "a"},
            "response_b": {"text": "b"},
            "annotations": {"h": {"pref": "a"}},
            "metadata": {"domain": "d"},
        }
    ],
}
MALFORMED_ICAI = {
    "annotators not an object": ({"annotators": []}, "annotators"),
    "annotator not an object": ({"annotators": {"h": "human"}}, "annotators"),
    "annotator name not text": ({"annotators": {"h": {"name": 3}}}, "name"),
    "comparisons not a list": ({"comparisons": {"0": {}}}, "comparisons"),
    "comparison not an object": ({"comparisons": ["x"]}, None),
    "annotations not an object": (
        {"comparisons": [GOOD_ICAI["comparisons"][0] | {"annotations": ["a"]}]},
        "annotations",
    ),
    "annotation not an object": (
        {"comparisons": [GOOD_ICAI["comparisons"][0] | {"annotations": {"h": "a"}}]},
        "annotations",
    ),
    "metadata not an object": ({"metadata": "2.0"}, "metadata"),
    "prompt not text": ({"comparisons": [GOOD_ICAI["comparisons"][0] | {"prompt": ["q"]}]}, "prompt"),
}


@pytest.mark.parametrize("case", MALFORMED_ICAI)
def test_malformed_icai_files_are_named(store, tmp_path, case):
    change, field = MALFORMED_ICAI[case]
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(GOOD_ICAI | change))
    with pytest.raises(InputError) as caught:
        import_file(store, path, "icai")
    assert caught.value.field == field and str(path) in str(caught.value)
    assert store.count("pairs") == 0
    path.write_text(json.dumps(GOOD_ICAI))
    assert import_file(store, path, "icai").pairs == 1


@pytest.mark.parametrize("fmt", ["jsonl", "json", "icai"])
def test_deeply_nested_json_is_refused_with_a_message(store, tmp_path, fmt):
    path = tmp_path / ("deep.jsonl" if fmt == "jsonl" else "deep.json")
    deep = "[" * 100_000 + "]" * 100_000
    path.write_text(deep + "\n" if fmt == "jsonl" else "[" + deep + "]" if fmt == "json" else deep)
    with pytest.raises(InputError, match="nested too deeply"):
        import_file(store, path, fmt)


def test_a_busy_store_is_a_clear_message_and_measuring_does_not_hold_it(store, tmp_path, monkeypatch):
    path = tmp_path / "p.jsonl"
    rows = [
        {"query": f"q{i}", "response_a": "a " * (i + 1), "response_b": "b", "winner": "a", "domain": "d"}
        for i in range(5)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    import_file(store, path)
    pairs = list(store.pairs())
    other = ConceptStore(store.path, busy_timeout=0.2)
    writable_while_measuring = []
    real = tools.measured.measure_rows

    def measuring(chunk):
        other.put_values([])  # another command writes while values are computed: no wait, no error
        writable_while_measuring.append(len(chunk))
        return real(chunk)

    monkeypatch.setattr(tools.measured, "measure_rows", measuring)
    Annotation(store, None, AnnotationConfig(llm_concepts=False)).run(pairs)
    assert writable_while_measuring == [5]
    before = other.content_digest()
    # A long write by this command makes the other one give up, clearly.
    with store.atomic(), pytest.raises(StoreError, match="is busy: another command has been writing"):
        other.upsert_concepts([Concept(name="Brevity")])
    assert other.content_digest() == before
    other.close()
