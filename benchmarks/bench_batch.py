"""A batch round trip at scale (issue #16): LLM annotation of N pairs written as an OpenAI Batch API file,
answered by a local stand-in for the Batch API / vllm run-batch (tools.testing.run_batch_file), imported
into the cache, and the stage run again, which must make no call (its endpoint is a closed port).

Usage::

    python benchmarks/bench_batch.py --pairs 10000

Prints the requests written, results imported, re-run calls, and the wall time and peak RSS of each step.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from tools.annotation import Annotation, AnnotationConfig
from tools.batch import BatchWritten, import_results
from tools.concepts import Concept, ConceptKind
from tools.demo_data import DEMO_MECHANISMS, demo_pairs
from tools.llm import LLM
from tools.settings import Settings
from tools.store import ConceptStore
from tools.testing import closed_port_url, run_batch_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the scripted LLMs live with the tests
from helpers import pipeline_responder

CONCEPTS = ("Structure", "Code Examples", "Engagement")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    batch, results = folder / "batch.jsonl", folder / "results.jsonl"
    os.environ |= {"WHYPREF_BASE_URL": closed_port_url(), "WHYPREF_MODEL": "stub-model", "WHYPREF_API_KEY": "x"}
    config = AnnotationConfig(representation="comp", relevance=False)
    with ConceptStore(folder / "s.db") as store:
        items = demo_pairs(-(-args.pairs // 3))[: args.pairs]
        store.add_labeled_pairs(items, DEMO_MECHANISMS)
        for name in CONCEPTS:
            store.add_concept(Concept(name=name, definition=f"A high score indicates {name}.", kind=ConceptKind.LLM))
        pairs = [item.pair for item in items]
        Annotation(store, None, AnnotationConfig(llm_concepts=False)).run(pairs)  # measured first, apart
        steps: list[tuple[str, float, str]] = []

        started = time.perf_counter()
        llm = LLM.from_settings(Settings(batch_out=batch), store)
        try:
            Annotation(store, llm, config).run(pairs)
            raise SystemExit("the stage called nothing and wrote nothing: unexpected")
        except BatchWritten as written:
            steps.append(("write the batch file", time.perf_counter() - started, f"{written.written} requests"))

        started = time.perf_counter()
        answered = run_batch_file(batch, results, pipeline_responder)
        steps.append(("the stand-in runs it", time.perf_counter() - started, f"{answered} results"))

        started = time.perf_counter()
        report = import_results(store, results)
        imported = f"{report.cached} cached, {len(report.problems)} not"
        steps.append(("whypref batch import", time.perf_counter() - started, imported))

        started = time.perf_counter()
        llm = LLM.from_settings(Settings(batch_out=batch), store)
        result = Annotation(store, llm, config).run(pairs)
        usage = llm.usage.total
        rerun = f"{usage.calls} calls, {usage.cached} from the cache, {result.values_written} values"
        steps.append(("re-run the stage", time.perf_counter() - started, rerun))
    print(f"{len(pairs)} pairs x {len(CONCEPTS)} LLM concepts, Comp-rep in both orders")
    for name, seconds, what in steps:
        print(f"  {name:24s} {seconds:7.1f} s  {what}")
    print(f"  peak RSS {peak_mb():.0f} MB; batch file {batch.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
