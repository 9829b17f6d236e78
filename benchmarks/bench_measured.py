"""Measured-concept throughput (issue #16): pairs per second, before and after, with identical values.

Usage::

    python benchmarks/bench_measured.py --pairs 3000 --before db0a2c7

Real pairs from the shared sets (Auto-J, PandaLM, LLMEval2, MT-Bench, in turn). Three figures:
``measure_pairs`` in one process on the code of ``--before`` (its ``tools/measured.py``, loaded beside
this one) and on this code, checked to give the very same values; then measured-only annotation of a
fresh store as ``whypref annotate --measured-only`` runs it (worker processes, values written).
Results: benchmarks/out/measured.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RAW = ROOT.parent / "shared" / "data" / "raw"
OUT = ROOT / "benchmarks" / "out"
SETS = (
    (RAW / "autoj", "autoj"),
    (RAW / "pandalm", "pandalm"),
    (RAW / "llmeval2" / "LLMEval2_benchmark.jsonl", "llmeval2"),
    (RAW / "llmbar" / "Processed" / "MT-Bench", "llmbar"),
)


def real_pairs(n: int) -> list:
    from tools.importers import read_file

    sets = [[item.pair for item in read_file(path, fmt).items] for path, fmt in SETS]
    pairs, i = [], 0
    while len(pairs) < n and any(i < len(s) for s in sets):
        pairs += [s[i] for s in sets if i < len(s)]
        i += 1
    return pairs[:n]


def module_at(commit: str) -> ModuleType:
    """``tools/measured.py`` as it was at ``commit``, as a module of its own."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:tools/measured.py"], capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "measured_before.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("measured_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["measured_before"] = module
    spec.loader.exec_module(module)
    return module


def timed(measure, pairs: list) -> tuple[float, list]:
    started = time.perf_counter()
    values = measure(pairs)
    return time.perf_counter() - started, values


def annotate_store(pairs: list) -> float:
    from tools.annotation import Annotation, AnnotationConfig
    from tools.pairs import LabeledPair
    from tools.store import ConceptStore

    with tempfile.TemporaryDirectory() as folder, ConceptStore(Path(folder) / "m.db") as store:
        store.add_labeled_pairs([LabeledPair(pair=p) for p in pairs])
        started = time.perf_counter()
        Annotation(store, None, AnnotationConfig(llm_concepts=False)).run(store.pairs())
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--before", metavar="COMMIT", help="Also time this commit's measuring code.")
    args = parser.parse_args()
    from tools.measured import measure_pairs

    pairs = real_pairs(args.pairs)
    results: dict[str, float] = {"pairs": len(pairs)}
    if args.before:
        seconds, old = timed(module_at(args.before).measure_pairs, pairs)
        results["before_pairs_per_s"] = len(pairs) / seconds
        print(f"{args.before} (one process): {len(pairs) / seconds:6.0f} pairs/s")
    seconds, new = timed(measure_pairs, pairs)
    results["after_pairs_per_s"] = len(pairs) / seconds
    print(f"this code  (one process): {len(pairs) / seconds:6.0f} pairs/s")
    if args.before:
        same = [(v.pair_id, v.value, v.detail) for v in old] == [(v.pair_id, v.value, v.detail) for v in new]
        results["identical_values"] = same
        print(f"identical values: {same} ({len(new):,} values)")
        if not same:
            raise SystemExit("the values differ")
    seconds = annotate_store(pairs)
    results["annotate_pairs_per_s"] = len(pairs) / seconds
    print(f"annotate --measured-only (workers, values written): {len(pairs) / seconds:6.0f} pairs/s")
    OUT.mkdir(exist_ok=True)
    (OUT / "measured.json").write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
