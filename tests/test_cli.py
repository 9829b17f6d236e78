"""The command line, driven as a user would (typer's runner in-process; errors through main())."""

import json

import pytest
from typer.testing import CliRunner

from cli import app, main
from tools.store import ConceptStore

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_import_stats_export_on_real_data(raw, tmp_path):
    db = tmp_path / "s.db"
    out = invoke("import", raw / "llmbar/Processed/MT-Bench", "--db", db)
    assert "Imported 200 pairs (200 new)" in out
    stats = json.loads(invoke("stats", "--db", db, "--json"))
    assert stats["pairs"] == 200 and len(stats["counts"]) == 8
    gpt4 = next(a for a in stats["agreement"] if a["mechanism"] == "gpt-4" and a["reference"] == "human")
    assert round(100 * gpt4["accuracy"], 1) == 81.0
    table = invoke("stats", "--db", db)
    assert "Agreement with human per domain" in table and "gpt-4" in table
    invoke("export", tmp_path / "out.jsonl", "--db", db)
    db2 = tmp_path / "copy.db"
    invoke("import", tmp_path / "out.jsonl", "--format", "whypref", "--db", db2)
    with ConceptStore(db) as one, ConceptStore(db2) as two:
        assert list(one.labeled_pairs()) == list(two.labeled_pairs())


def test_generic_import_with_options(tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text("prompt,x,y,who,judge\nq1,a,b,x,y\nq2,c,d,y,x\n")
    db = tmp_path / "s.db"
    out = invoke(
        "import",
        path,
        "--db",
        db,
        "--query-column",
        "prompt",
        "--a-column",
        "x",
        "--b-column",
        "y",
        "--winner-column",
        "who",
        "--label",
        "gpt=judge",
        "--domain",
        "chat",
        "--mechanism",
        "crowd",
    )
    assert "2 pairs" in out and "crowd, gpt" in out
    with ConceptStore(db) as store:
        assert {(m.name, m.kind.value) for m in store.mechanisms()} == {("crowd", "human"), ("gpt", "unknown")}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stats", "--db", "{tmp}/none.db"], "no such store"),
        (["import", "{tmp}/missing.jsonl", "--db", "{tmp}/s.db"], "missing.jsonl: file does not exist"),
        (["import", "{tmp}", "--db", "{tmp}/s.db", "--format", "jsonl"], "is a directory"),
        (["import", "{tmp}/x.jsonl", "--format", "nope", "--db", "{tmp}/s.db"], "unknown format 'nope'"),
        (["export", "{tmp}/o.txt", "--format", "xml", "--db", "{tmp}/s.db"], "unknown export format 'xml'"),
    ],
)
def test_errors_are_one_line_with_exit_status_1(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.setattr("sys.argv", ["whypref", *[a.format(tmp=tmp_path) for a in args]])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    assert message in " ".join(capsys.readouterr().err.split())


def test_pairs_lists_ids_to_explain(tmp_path):
    path, db = tmp_path / "p.jsonl", tmp_path / "s.db"
    rows = [
        {"query": f"how do I cook {x}?", "response_a": "a", "response_b": "b", "winner": "a", "domain": d}
        for x, d in (("rice", "food"), ("[tea]", "drink"), ("eggs", "food"))
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    invoke("import", path, "--db", db)
    listed = [json.loads(line) for line in invoke("pairs", "--db", db, "--domain", "food", "--json").splitlines()]
    with ConceptStore(db) as store:
        assert sorted(p["id"] for p in listed) == sorted(p.id for p in store.pairs(domain="food"))
    assert {p["query"] for p in listed} == {"how do I cook rice?", "how do I cook eggs?"}
    table = invoke("pairs", "--db", db, "--contains", "[tea]")
    assert "[tea]" in table and "1 pairs" in table
