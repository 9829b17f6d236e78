"""Batch files: an LLM stage writes its uncached requests as an OpenAI Batch API JSONL, a local stand-in
for the Batch API / vllm run-batch answers the file, `whypref batch import` reads the results into the
cache (failed and misfitting lines reported, not cached), and a re-run of the stage completes from the
cache without a call. The endpoint is a closed port: any call would fail the run."""

import json

import pytest
from typer.testing import CliRunner

from cli import app
from helpers import pipeline_responder
from tools.concepts import Concept, ConceptKind
from tools.demo_data import DEMO_MECHANISMS, demo_pairs
from tools.store import ConceptStore
from tools.testing import closed_port_url, run_batch_file

runner = CliRunner()
CONCEPTS = ("Structure", "Code Examples", "Engagement")


@pytest.fixture
def batch_env(monkeypatch, tmp_path):
    monkeypatch.setenv("WHYPREF_BASE_URL", closed_port_url())  # a call would be refused
    monkeypatch.setenv("WHYPREF_MODEL", "stub-model")
    monkeypatch.setenv("WHYPREF_API_KEY", "test")
    monkeypatch.delenv("WHYPREF_BATCH_OUT", raising=False)
    db = tmp_path / "s.db"
    with ConceptStore(db) as store:
        store.add_labeled_pairs(demo_pairs(2), DEMO_MECHANISMS)
        for name in CONCEPTS:
            store.add_concept(Concept(name=name, definition=f"A high score indicates {name}.", kind=ConceptKind.LLM))
    return db


def said(result) -> str:
    """What a command printed, on one line (the console wraps long lines)."""
    return " ".join(result.output.split())


def annotate(db, batch):
    return runner.invoke(
        app, ["--batch-out", str(batch), "annotate", "--db", str(db), "--representation", "comp", "--no-relevance"]
    )


def test_a_batch_round_trip_ends_with_no_call(batch_env, tmp_path, monkeypatch):
    db, batch, results = batch_env, tmp_path / "batch.jsonl", tmp_path / "results.jsonl"
    first = annotate(db, batch)
    assert first.exit_code == 0, first.output
    lines = [json.loads(line) for line in batch.read_text().splitlines()]
    n = len(lines)  # 6 pairs in both orders, one call for the three concepts; identical requests once
    assert 10 <= n <= 12 and len({line["custom_id"] for line in lines}) == n
    assert f"wrote {n} compare requests" in said(first) and "whypref batch import" in said(first)
    assert {line["method"] for line in lines} == {"POST"} and {line["url"] for line in lines} == {
        "/v1/chat/completions"
    }
    assert all(line["body"]["model"] == "stub-model" and "response_format" in line["body"] for line in lines)
    with ConceptStore(db) as store:
        assert not any(v.annotator != "measured" for v in store.values())  # nothing valued yet

    # The batch runs; two requests fail there, one answer comes back without JSON, one off its schema.
    run_batch_file(
        batch, results, pipeline_responder, fail=lambda k: {"message": "overloaded"} if k in (3, 7) else None
    )
    answered = results.read_text().splitlines()
    broken = json.loads(answered[4])
    broken["response"]["body"]["choices"][0]["message"]["content"] = "I think A is better."
    answered[4] = json.dumps(broken)
    misfit = json.loads(answered[5])
    misfit["response"]["body"]["choices"][0]["message"]["content"] = '{"c1": 9}'
    answered[5] = json.dumps(misfit)
    results.write_text("\n".join([*answered, "not json"]) + "\n")

    imported = runner.invoke(app, ["batch", "import", str(results), "--db", str(db)])
    assert imported.exit_code == 1  # problems are loud...
    assert f"{n + 1} results: {n - 4} answers cached, 0 already answered, 5 not cached" in said(imported)
    assert f"{results}:3: the request failed" in said(imported)
    assert f"{results}:6: the answer does not fit its schema" in said(imported)
    assert f"{results}:5: the answer is not JSON" in said(imported) and f"{results}:{n + 1}: not JSON" in said(imported)

    # ...and the four unanswered requests are written again, the others kept.
    batch.unlink()
    second = annotate(db, batch)
    assert second.exit_code == 0 and "wrote 4 compare requests" in said(second), second.output
    assert f"{n - 4} already answered" in said(second)
    run_batch_file(batch, results, pipeline_responder)
    again = runner.invoke(app, ["batch", "import", str(results), "--db", str(db)])
    assert again.exit_code == 0 and "4 answers cached" in said(again)

    # Everything is answered: the stage completes from the cache (the endpoint is a closed port).
    batch.unlink()
    done = annotate(db, batch)
    assert done.exit_code == 0, done.output
    assert "Annotated 6 pairs" in said(done) and not batch.exists()
    with ConceptStore(db) as store:
        values = [v for v in store.values() if v.annotator != "measured"]
    assert len(values) == 6 * len(CONCEPTS)
    assert all(v.value == 0 for v in values if v.concept_id == "engagement")  # position bias zeroed as ever
    # Importing the same results twice changes nothing.
    repeat = runner.invoke(app, ["batch", "import", str(results), "--db", str(db)])
    assert repeat.exit_code == 0 and "4 already answered" in said(repeat)


def test_batch_import_names_bad_input(batch_env, tmp_path):
    db = batch_env
    missing = runner.invoke(app, ["batch", "import", str(tmp_path / "nope.jsonl"), "--db", str(db)])
    assert missing.exit_code == 1 and "nope.jsonl: no such file" in str(missing.exception)  # main() prints it
    stray = tmp_path / "stray.jsonl"
    stray.write_text(json.dumps({"custom_id": "0" * 64, "response": {"status_code": 200, "body": {}}}) + "\n{}\n")
    with ConceptStore(db) as store:
        before = store.content_digest()
    out = runner.invoke(app, ["batch", "import", str(stray), "--db", str(db)])
    assert out.exit_code == 1 and "is no request of this store" in said(out) and ":2: no custom_id" in said(out)
    with ConceptStore(db) as store:
        assert store.content_digest() == before


def test_batch_files_need_an_endpoint_model(batch_env, tmp_path, monkeypatch):
    monkeypatch.delenv("WHYPREF_BASE_URL")
    out = annotate(batch_env, tmp_path / "b.jsonl")
    assert out.exit_code == 1 and "batch files are for an endpoint's model" in str(out.exception)


def test_batch_mode_lasts_one_invocation(batch_env, tmp_path):
    """--batch-out belongs to the command it precedes: the next command in the same process calls the
    endpoint again (here a closed port, so it fails loudly)."""
    assert annotate(batch_env, tmp_path / "b.jsonl").exit_code == 0
    plain = runner.invoke(app, ["annotate", "--db", str(batch_env), "--representation", "comp", "--no-relevance"])
    assert plain.exit_code == 1 and "connection failed" in str(plain.exception)


def test_an_unwritable_batch_file_is_named_and_nothing_is_kept_pending(batch_env, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = annotate(batch_env, blocker / "b.jsonl")
    assert out.exit_code == 1 and "cannot write the batch file" in str(out.exception)
    with ConceptStore(batch_env) as store:
        assert store.count("llm_cache") == 0  # the measured values annotate writes first stay; no request pending


def test_a_batch_through_the_endpoints_batch_api(batch_env, tmp_path, monkeypatch):
    from tools.testing import OpenAIStub

    db, batch = batch_env, tmp_path / "batch.jsonl"
    assert annotate(db, batch).exit_code == 0
    n = len(batch.read_text().splitlines())
    with OpenAIStub(pipeline_responder) as stub:
        monkeypatch.setenv("WHYPREF_BASE_URL", stub.base_url)
        submitted = runner.invoke(app, ["batch", "submit", str(batch)])
        assert submitted.exit_code == 0, submitted.output
        assert stub.files["file-1"] == batch.read_bytes() and stub.requests == 0  # uploaded as written; no call
        [batch_id] = stub.batches
        assert f"Batch {batch_id}: in_progress" in said(submitted) and f"whypref batch status {batch_id}" in said(
            submitted
        )
        waiting = runner.invoke(app, ["batch", "status", batch_id, "--db", str(db)])
        assert waiting.exit_code == 0 and "in_progress" in said(waiting) and "Results" not in said(waiting)
        results = tmp_path / "out.jsonl"
        done = runner.invoke(app, ["batch", "status", batch_id, "--db", str(db), "--results", str(results)])
        assert done.exit_code == 0, done.output
        assert f"completed; {n} of {n} requests done" in said(done) and f"{n} answers cached" in said(done)
        assert len(results.read_text().splitlines()) == n
        unknown = runner.invoke(app, ["batch", "status", "batch_404", "--db", str(db)])
        problem = str(unknown.exception)  # main() prints it
        assert unknown.exit_code == 1 and "Batch API answered 404" in problem and stub.base_url in problem
    batch.unlink()
    rerun = annotate(db, batch)  # the endpoint is gone: everything comes from the cache
    assert rerun.exit_code == 0 and "Annotated 6 pairs" in said(rerun) and not batch.exists(), rerun.output
