"""Time to fail, exit status and message for every way an endpoint goes wrong (issue #12).

Usage: ``python benchmarks/bench_llm_failures.py [--before COMMIT] [--limit 300]``

``whypref annotate`` (Comp-rep, no relevance filter) runs as a user runs it, in a subprocess, on 12 demo
pairs and 5 concepts, against a fault-injecting OpenAI-compatible server on 127.0.0.1 (or a closed
port). For each fault it records the wall time, the exit status, whether the endpoint's own message
reached the user and how many values were stored; then the endpoint recovers and ``annotate`` runs
again, to show that nothing invalid blocks the re-run. ``--before`` runs the same with the code of an
earlier commit (a git worktree), each case capped at ``--limit`` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tools.concepts import Concept
from tools.demo_data import demo_pairs
from tools.store import ConceptStore
from tools.testing import Fault, OpenAIStub, closed_port_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the scripted LLMs live with the tests
from helpers import pipeline_responder

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "out"
CONCEPTS = ["Structure", "Engagement", "Code Examples", "Warmth", "Precision"]

# name: (fault for request n, the endpoint's message to look for)
CASES: dict[str, tuple[Callable[[int], Fault | int | None] | None, str]] = {
    "endpoint works": (None, ""),
    "401 wrong key": (lambda n: Fault(401, "Incorrect API key provided: sk-bad"), "Incorrect API key"),
    "404 unknown model": (lambda n: Fault(404, "The model `gpt-9` does not exist"), "does not exist"),
    "400 json_schema unsupported": (None, "json_schema"),  # refused by what the request asks: see REFUSALS
    "400 temperature rejected": (None, "temperature"),
    "429 with Retry-After, then ok": (
        lambda n: Fault(429, "Rate limit reached", headers={"retry-after": "2"}) if n <= 3 else None,
        "",
    ),
    "500 always": (
        lambda n: Fault(500, "The server had an error while processing your request"),
        "server had an error",
    ),
    "hangs (timeout 10 s)": (lambda n: Fault(200, delay=600), "timed out"),
    "invalid JSON answers": (None, ""),  # the responder's answers never fit: see below
    "connection refused": (None, "connection failed"),
}


REFUSALS: dict[str, Callable[[dict[str, Any]], Fault | None]] = {
    "400 json_schema unsupported": lambda body: (
        Fault(400, "response_format type json_schema is not supported")
        if (body.get("response_format") or {}).get("type") == "json_schema"
        else None
    ),
    "400 temperature rejected": lambda body: (
        Fault(400, "Unsupported value: 'temperature' does not support 0") if "temperature" in body else None
    ),
}


def make_store(path: Path) -> None:
    with ConceptStore(path) as store:
        store.add_labeled_pairs(demo_pairs(4))
        store.upsert_concepts([Concept(name=n, definition=f"A high score indicates {n.lower()}.") for n in CONCEPTS])


def annotate(db: Path, url: str, tree: Path | None, limit: float) -> dict[str, Any]:
    environment = {
        **os.environ,
        "WHYPREF_BASE_URL": url,
        "WHYPREF_MODEL": "stub-model",
        "WHYPREF_API_KEY": "sk-test",
        "WHYPREF_TIMEOUT": "10",
    }
    if tree is not None:
        environment["PYTHONPATH"] = str(tree)
    command = [sys.executable, "-c", "from cli import main; main()", "annotate", "--db", str(db)]
    command += ["--representation", "comp", "--no-relevance"]
    started = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=limit, cwd=tree or ROOT)
        status, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        status, output = None, str(expired.stdout or "") + str(expired.stderr or "")
    return {"seconds": time.monotonic() - started, "status": status, "output": output}


def stored_values(db: Path) -> int:
    with ConceptStore(db, create=False) as store:
        return next(store.db.query("select count(*) n from concept_values where annotator like 'comp:%'"))["n"]


def run_case(name: str, folder: Path, tree: Path | None, limit: float) -> dict[str, Any]:
    fault, words = CASES[name]
    db = folder / f"{name.replace(' ', '-')}.db"
    make_store(db)
    valid = {"yes": name != "invalid JSON answers"}

    def responder(messages: list[dict[str, str]]) -> str:
        return pipeline_responder(messages) if valid["yes"] else '{"c1": "maybe"'

    if name == "connection refused":
        first = annotate(db, closed_port_url(), tree, limit)
        requests = 0
    else:
        with OpenAIStub(responder, fail=fault, refuse=REFUSALS.get(name)) as stub:
            first = annotate(db, stub.base_url, tree, limit)
            requests = stub.requests
    values = stored_values(db)
    valid["yes"] = True
    with OpenAIStub(responder) as stub:  # the endpoint recovers
        annotate(db, stub.base_url, tree, limit)
    return {
        "case": name,
        "seconds": round(first["seconds"], 1),
        "exit": first["status"],
        "message_shown": words.lower() in first["output"].lower() if words else None,
        "requests": requests,
        "values": values,
        "rerun_requests": stub.requests,
        "values_after_rerun": stored_values(db),
        "tail": first["output"].strip().splitlines()[-1][:160] if first["output"].strip() else "",
    }


def run_all(tree: Path | None, limit: float) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as folder:
        return [run_case(name, Path(folder), tree, limit) for name in CASES]


def table(rows: list[dict[str, Any]], title: str) -> Table:
    out = Table(title=title)
    for column in (
        "case",
        "seconds",
        "exit",
        "endpoint's message shown",
        "values",
        "re-run: requests, values",
        "last line",
    ):
        out.add_column(column, justify="left" if column in ("case", "last line") else "right")
    for r in rows:
        seconds = f"{r['seconds']:.1f}" + (" (killed)" if r["exit"] is None else "")
        out.add_row(
            r["case"],
            seconds,
            "-" if r["exit"] is None else str(r["exit"]),
            "-" if r["message_shown"] is None else "yes" if r["message_shown"] else "no",
            str(r["values"]),
            f"{r['rerun_requests']}, {r['values_after_rerun']}",
            r["tail"],
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", metavar="COMMIT")
    parser.add_argument("--limit", type=float, default=300.0, help="Seconds each run may take before it is killed.")
    args = parser.parse_args()
    console = Console(width=200)
    OUT.mkdir(exist_ok=True)
    results: dict[str, Any] = {"after": run_all(None, args.limit)}
    console.print(table(results["after"], "annotate against a faulty endpoint (this code)"))
    if args.before:
        with tempfile.TemporaryDirectory() as folder:
            tree = Path(folder) / "tree"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.before], check=True)
            try:
                results["before"] = run_all(tree, args.limit)
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)
        console.print(table(results["before"], f"annotate against a faulty endpoint (code of {args.before})"))
    (OUT / "llm_failures.json").write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
