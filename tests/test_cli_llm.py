"""discover / annotate / concepts / demo from the command line, against an OpenAI-compatible server on
127.0.0.1 that answers like an LLM (scripted), as a user with their own endpoint would run them."""

import json

from typer.testing import CliRunner

from cli import app
from tools.demo_data import write_demo_set
from tools.store import ConceptStore

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_discover_annotate_and_manage_concepts(endpoint, tmp_path):
    db = tmp_path / "s.db"
    write_demo_set(tmp_path / "demo.jsonl", 100)  # the demo's pairs (its fits are not needed here)
    invoke("import", tmp_path / "demo.jsonl", "--db", tmp_path / "demo.db")
    invoke("export", tmp_path / "pairs.jsonl", "--db", tmp_path / "demo.db")
    invoke("import", tmp_path / "pairs.jsonl", "--format", "whypref", "--db", db)
    dry = invoke("discover", "--db", db, "--batches", "1", "--dry-run")
    assert "Nothing was spent" in dry and endpoint.requests == 0
    out = invoke("discover", "--db", db, "--batches", "1")
    assert "Discovered" in out and "Cost:" in out and "LLM calls" in out
    dry = invoke("annotate", "--db", db, "--dry-run")
    assert "relevance" in dry and "comp" in dry
    before = endpoint.requests
    out = invoke("annotate", "--db", db, "--limit", "3")
    assert "Annotated 3 pairs" in out and "Swap rule" in out and endpoint.requests > before
    listing = invoke("concepts", "list", "--db", db)
    assert "structure" in listing and "length" in listing
    shown = json.loads(invoke("concepts", "show", "structure", "--db", db))
    assert shown["name"] == "Structure" and "batches" in shown["provenance"]
    invoke("concepts", "add", "Warmth", "--definition", "A high score indicates a warm tone.", "--db", db)
    invoke("concepts", "edit", "warmth", "--domain-specific", "--domain", "health", "--db", db)
    invoke("concepts", "delete", "engagement", "--db", db)
    with ConceptStore(db) as store:
        concepts = {c.id: c for c in store.concepts()}
    assert concepts["warmth"].domains == ("health",) and "engagement" not in concepts
    bad = runner.invoke(app, ["concepts", "show", "nope", "--db", str(db)])
    assert bad.exit_code != 0
