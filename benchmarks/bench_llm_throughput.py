"""Throughput of annotation against a local OpenAI-compatible endpoint with 200 ms latency per call.

Usage: ``python benchmarks/bench_llm_throughput.py [--pairs 48] [--latency 0.2]``. Pairs annotated per
second (Comp-rep, both orders, no relevance filter) at concurrency 1, 8 and 32, each run on a fresh
store so nothing comes from the cache; then a re-run on a warm cache.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from langchain_openai import ChatOpenAI
from rich.console import Console
from rich.table import Table

from tools.annotation import Annotation, AnnotationConfig
from tools.concepts import Concept
from tools.demo_data import demo_pairs
from tools.llm import LLM
from tools.store import ConceptStore
from tools.testing import OpenAIStub

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the scripted LLMs live with the tests
from helpers import pipeline_responder


def run(pairs: int, latency: float, concurrency: int, store: ConceptStore, stub: OpenAIStub) -> tuple[float, int]:
    chat = ChatOpenAI(base_url=stub.base_url, api_key="x", model="stub", max_retries=2)
    llm = LLM(chat, "stub", store=store, max_concurrency=concurrency)
    before = stub.requests
    start = time.perf_counter()
    Annotation(store, llm, AnnotationConfig(relevance=False)).run(list(store.pairs())[:pairs])
    return pairs / (time.perf_counter() - start), stub.requests - before


def fresh_store(folder: Path, name: str, pairs: int) -> ConceptStore:
    store = ConceptStore(folder / f"{name}.db")
    items = (demo_pairs(8) * (pairs // 24 + 1))[:pairs]
    # Distinct queries, so that no prompt repeats (a repeat would be served by the cache).
    store.add_labeled_pairs(
        [
            i.model_copy(
                update={
                    "pair": i.pair.model_copy(
                        update={
                            "query": [
                                i.pair.query[0].model_copy(update={"content": f"{i.pair.query_text} (variant {n})"})
                            ]
                        }
                    )
                }
            )
            for n, i in enumerate(items)
        ]
    )
    store.upsert_concepts(
        [
            Concept(name=n, definition=f"A high score indicates more {n.lower()}.")
            for n in ("Structure", "Code Examples", "Engagement", "Clarity", "Safety Advice")
        ]
    )
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=48)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    table = Table(title=f"Annotation throughput, {args.latency * 1000:.0f} ms per call, {args.pairs} pairs")
    for column in ("concurrency", "pairs / s", "HTTP requests", "speed-up"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as folder, OpenAIStub(pipeline_responder, latency=args.latency) as stub:
        base = None
        for concurrency in (1, 8, 32):
            store = fresh_store(Path(folder), f"c{concurrency}", args.pairs)
            rate, requests = run(args.pairs, args.latency, concurrency, store, stub)
            base = base or rate
            table.add_row(str(concurrency), f"{rate:.2f}", str(requests), f"{rate / base:.1f}x")
        rate, requests = run(args.pairs, args.latency, 32, store, stub)
        table.add_row("32, cached re-run", f"{rate:.0f}", str(requests), "-")
    Console().print(table)


if __name__ == "__main__":
    main()
