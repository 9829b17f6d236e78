"""End to end on real data with the embedded model: Auto-J, 2 domains x 40 pairs, human labels.

Usage: ``python benchmarks/bench_pipeline_autoj.py [--domains Code "General Communication"] [--pairs 40]``
(set WHYPREF_BASE_URL to measure another endpoint instead). Prints wall time, calls and tokens per
stage, how often Comp-rep answers survive the swapped order, and HMDR in-domain accuracy (repeated
random splits, 95% bootstrap interval) with measured concepts only, LLM concepts only, and both.

The store (with the LLM cache) is kept in benchmarks/out/, so an interrupted run resumes where it
stopped and a finished one re-prints its figures without new calls.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tools.annotation import Annotation, AnnotationConfig
from tools.concepts import ConceptKind
from tools.design import load_design
from tools.discovery import Discovery, DiscoveryConfig
from tools.importers import read_file
from tools.llm import LLM
from tools.model_selection import evaluate_in_domain
from tools.settings import Settings
from tools.store import ConceptStore

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"
OUT = Path(__file__).resolve().parent / "out"


def select(pairs_per_domain: int, domains: list[str]):
    """The first non-tied human-labelled pairs of each domain, by pair id (deterministic)."""
    items = read_file(RAW / "autoj", "autoj").items
    chosen = []
    for domain in domains:
        rows = sorted(
            (
                i
                for i in items
                if i.pair.domain == domain
                and next(label for label in i.labels if label.mechanism == "human").verdict.value != "tie"
            ),
            key=lambda i: i.pair.id,
        )
        chosen += rows[:pairs_per_domain]
    return chosen


def accuracy(store: ConceptStore, concept_ids: list[str], repeats: int) -> str:
    design = load_design(store, "human", concept_ids=concept_ids)
    row = evaluate_in_domain(["hmdr"], design.evaluation_data(), repeats=repeats).row("hmdr")
    return f"{row.non_tie_accuracy:.1f} [{row.low:.1f}, {row.high:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--domains", nargs="+", default=["Code", "General Communication"])
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--max-chars", type=int, default=700, help="Responses are cut to this in prompts.")
    parser.add_argument(
        "--generic",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Also annotate the method's 10 generic concepts (about twice the annotation time).",
    )
    parser.add_argument("--repeats", type=int, default=3, help="Repeats of the 5-fold nested CV.")
    args = parser.parse_args()
    console = Console()
    OUT.mkdir(exist_ok=True)
    store = ConceptStore(OUT / "autoj-pipeline.db")
    store.add_labeled_pairs(select(args.pairs, args.domains))
    pairs = list(store.pairs())
    settings = Settings(max_response_chars=args.max_chars)
    llm = LLM.from_settings(settings, store)
    timings = {}

    start = time.perf_counter()
    config = DiscoveryConfig(batches_per_domain=args.batches, concepts_per_batch=5, include_generic=args.generic)
    Discovery(store, llm, config).run()
    timings["discover"] = time.perf_counter() - start
    start = time.perf_counter()
    result = Annotation(store, llm, AnnotationConfig(relevance=False)).run(pairs)
    timings["annotate"] = time.perf_counter() - start

    usage = Table(title=f"Auto-J {' + '.join(args.domains)}: {len(pairs)} pairs, model {llm.name}")
    for column in ("stage", "calls", "cached", "missing", "prompt tokens", "completion tokens"):
        usage.add_column(column, justify="left" if column == "stage" else "right")
    for stage, u in llm.usage.stages.items():
        usage.add_row(
            stage, str(u.calls), str(u.cached), str(u.missing), f"{u.prompt_tokens:,}", f"{u.completion_tokens:,}"
        )
    t = llm.usage.total
    usage.add_row(
        "total",
        str(t.calls),
        str(t.cached),
        str(t.missing),
        f"{t.prompt_tokens:,}",
        f"{t.completion_tokens:,}",
        style="bold",
    )
    console.print(usage)
    console.print(
        f"Wall time: discover {timings['discover']:.0f} s, annotate {timings['annotate']:.0f} s "
        f"(this run; cached calls cost nothing). Calls per pair: {t.calls / len(pairs):.2f}; "
        f"tokens per pair: {(t.prompt_tokens + t.completion_tokens) / len(pairs):,.0f}."
    )
    if result.swap_consistent is not None:
        console.print(
            f"Swap rule: {100 * result.swap_consistent:.1f}% of the non-zero answers given with A first "
            "were confirmed with B first (the rest became 0)."
        )

    concepts = store.concepts()
    measured = [c.id for c in concepts if c.kind is ConceptKind.MEASURED]
    llm_made = [c.id for c in concepts if c.kind is not ConceptKind.MEASURED]
    table = Table(title=f"HMDR in-domain accuracy on human labels (%, {args.repeats} random splits, 95% CI)")
    for column in ("concepts", "n", "accuracy"):
        table.add_column(column)
    for name, ids in (("measured only", measured), ("LLM only", llm_made), ("both", measured + llm_made)):
        table.add_row(name, str(len(ids)), accuracy(store, ids, args.repeats))
    console.print(table)


if __name__ == "__main__":
    main()
