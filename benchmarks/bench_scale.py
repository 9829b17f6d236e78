"""whypref at scale (issue #16): wall time and peak RSS of each step on synthetic stores of N pairs.

Usage::

    python benchmarks/bench_scale.py --pairs 10000 100000

Pairs are recombined from the responses of the shared real sets (Auto-J, PandaLM, LLMEval2, MT-Bench):
each pair takes a real request and two real responses to it or to another request (each copy marked
invisibly, so that no two pairs share a text and query groups stay small), in one of 16 domains; its
"human" label prefers the longer response with probability 0.7 (so the fit has something to find).
Each step runs in a process of its own, so its peak RSS is its own: import (a whypref JSONL file),
measured annotation, fit (grouped CV over the penalty grid, no held-out evaluation), evaluate
(in-domain, nested CV) and explain (no bootstrap). Peak RSS is given twice: of the step's largest
process (``ru_maxrss``) and of its process tree (worker processes included: the sum of their
proportional set sizes, so pages a forked worker shares with its parent count once; sampled from /proc
every second: it reads /proc, which costs CPU). ``--steps`` runs only some
steps (e.g. ``--pairs 1000000 --steps import annotate fit explain``: the million-pair target, which
leaves out evaluate). Results are added to benchmarks/out/scale.json by number of pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
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


def tree_pss_mb(root: int) -> float:
    """Proportional set size of a process and all its descendants, from /proc (Linux)."""
    parent = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:  # gone meanwhile
                continue
    tree, grown = {root}, True
    while grown:
        more = {pid for pid, ppid in parent.items() if ppid in tree} - tree
        tree |= more
        grown = bool(more)
    total_kb = 0
    for pid in tree:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total_kb += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return total_kb / 1024


class TreeSampler(threading.Thread):
    """The largest :func:`tree_pss_mb` of a process while it runs."""

    def __init__(self, pid: int) -> None:
        super().__init__()
        self.pid, self.peak, self.done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(1.0):
            self.peak = max(self.peak, tree_pss_mb(self.pid))


def run(n: int, steps: list[str]) -> dict[str, dict[str, float]]:
    folder = Path(tempfile.mkdtemp())
    data, db = folder / "pairs.jsonl", folder / "scale.db"
    write_pairs(data, n)
    results: dict[str, dict[str, float]] = {}
    for name in steps:
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, __file__, "--step", name, str(db), str(data)], cwd=ROOT)
        sampler = TreeSampler(child.pid)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        sampler.done.set()
        sampler.join()
        if status:
            raise SystemExit(f"{name} failed on {n} pairs")
        seconds = time.perf_counter() - started
        results[name] = {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "tree_pss_mb": sampler.peak}
        print(
            f"{n:>9,} pairs  {name:9s} {seconds:8.1f} s  {usage.ru_maxrss / 1024:7.0f} MB "
            f"(process tree {sampler.peak:.0f} MB)",
            flush=True,
        )
    results["store"] = {"mb": db.stat().st_size / 2**20, "file_mb": data.stat().st_size / 2**20}
    print(f"{n:>9,} pairs  store {results['store']['mb']:.0f} MB (input file {results['store']['file_mb']:.0f} MB)")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, nargs="+", default=[10_000])
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--step", nargs=3, metavar=("STEP", "DB", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        name, db, data = args.step
        step(name, Path(db), Path(data))
        return
    OUT.mkdir(exist_ok=True)
    saved = OUT / "scale.json"
    results = json.loads(saved.read_text(encoding="utf-8")) if saved.exists() else {}
    for n in args.pairs:
        results[str(n)] = run(n, args.steps)
        saved.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
