"""whypref at scale (issue #16): wall time and peak RSS of each step on synthetic stores of N pairs.

Usage::

    python benchmarks/bench_scale.py --pairs 10000 100000

Pairs are recombined from the responses of the shared real sets (Auto-J, PandaLM, LLMEval2, MT-Bench):
each pair takes a real request and two real responses to it or to another request (each copy marked
invisibly, so that no two pairs share a text and query groups stay small), in one of 16 domains; its
"human" label prefers the longer response with probability 0.7 (so the fit has something to find).
Each step runs in a process of its own, so its peak RSS is its own: import (a whypref JSONL file),
measured annotation, fit (grouped CV over the penalty grid, no held-out evaluation), evaluate
(in-domain, nested CV) and explain (no bootstrap). Results: benchmarks/out/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT.parent / "shared" / "data" / "raw"
OUT = ROOT / "benchmarks" / "out"
SETS = {
    "autoj": (RAW / "autoj", "autoj"),
    "pandalm": (RAW / "pandalm", "pandalm"),
    "llmeval2": (RAW / "llmeval2" / "LLMEval2_benchmark.jsonl", "llmeval2"),
    "mtbench": (RAW / "llmbar" / "Processed" / "MT-Bench", "llmbar"),
}
STEPS = ("import", "annotate", "fit", "evaluate", "explain")


def _mark(k: int) -> str:
    return "".join("\u200b" if bit == "0" else "\u200c" for bit in f"{k:b}")


def write_pairs(path: Path, n: int, seed: int = 0) -> None:
    """``n`` synthetic pairs as whypref JSON Lines, streamed to ``path``."""
    from tools.importers import read_file

    texts: list[tuple[str, str]] = []  # (query, response)
    for source, fmt in SETS.values():
        for item in read_file(source, fmt).items:
            pair = item.pair
            texts += [(pair.query_text, pair.response_a), (pair.query_text, pair.response_b)]
    rng = np.random.default_rng(seed)
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            query, a = texts[rng.integers(len(texts))]
            b = texts[rng.integers(len(texts))][1]
            # Each response gets an invisible mark of its own (zero-width characters, no words): real sets
            # rarely reuse a response, and reused ones would link every pair into one query group.
            a, b = a + _mark(2 * i), b + _mark(2 * i + 1)
            longer_first = len(a) >= len(b)
            a_wins = longer_first if rng.random() < 0.7 else not longer_first
            record = {
                "pair": {
                    "query": [{"role": "user", "content": f"{query} (#{i})"}],
                    "response_a": a,
                    "response_b": b,
                    "domain": f"d{i % 16:02d}",
                    "source": "scale",
                },
                "labels": [{"mechanism": "human", "verdict": "A" if a_wins else "B"}],
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def step(name: str, db: Path, data: Path) -> None:
    """One step, in this process."""
    from tools.annotation import AnnotationConfig
    from tools.importers import import_file
    from tools.operations import Selection, annotate
    from tools.store import ConceptStore
    from tools.workflows import evaluate_mechanism, explain_global, fit_mechanism

    with ConceptStore(db) as store:
        if name == "import":
            import_file(store, data, "whypref")
        elif name == "annotate":
            annotate(store, None, AnnotationConfig(llm_concepts=False), Selection())
        elif name == "fit":
            fit_mechanism(store, "human", evaluate=False)
        elif name == "evaluate":
            evaluate_mechanism(store, "human", protocol="in-domain", models=["hmdr"])
        elif name == "explain":
            explain_global(store, "human", n_bootstrap=0)


def run(n: int) -> dict[str, dict[str, float]]:
    folder = Path(tempfile.mkdtemp())
    data, db = folder / "pairs.jsonl", folder / "scale.db"
    write_pairs(data, n)
    results: dict[str, dict[str, float]] = {}
    for name in STEPS:
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, __file__, "--step", name, str(db), str(data)], cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        if status:
            raise SystemExit(f"{name} failed on {n} pairs")
        results[name] = {"seconds": time.perf_counter() - started, "peak_rss_mb": usage.ru_maxrss / 1024}
        print(f"{n:>9,} pairs  {name:9s} {results[name]['seconds']:8.1f} s  {results[name]['peak_rss_mb']:7.0f} MB")
    results["store"] = {"mb": db.stat().st_size / 2**20, "file_mb": data.stat().st_size / 2**20}
    print(f"{n:>9,} pairs  store {results['store']['mb']:.0f} MB (input file {results['store']['file_mb']:.0f} MB)")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, nargs="+", default=[10_000])
    parser.add_argument("--step", nargs=3, metavar=("STEP", "DB", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        name, db, data = args.step
        step(name, Path(db), Path(data))
        return
    results = {str(n): run(n) for n in args.pairs}
    OUT.mkdir(exist_ok=True)
    (OUT / "scale.json").write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
