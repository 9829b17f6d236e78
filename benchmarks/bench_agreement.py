"""Judges against humans on real data, without any LLM: LLMBar MT-Bench (human + 4 judges) and Auto-J
(human + Auto-J-13B), read in place from the shared data folder.

Usage: ``python benchmarks/bench_agreement.py [--top 3] [--llm-store benchmarks/out/autoj-pipeline.db]``

Prints, per dataset, the agreement matrix over all mechanisms (row = reference; the method's measure:
reference ties left out, the other's tie 0.5), then fits HMDR on the 14 measured concepts for every
mechanism and lists, per domain, the concepts whose global lift differs most between humans and each
judge. With ``--llm-store`` (a store annotated by bench_pipeline_autoj.py) the same comparison is made
there with its LLM concepts as well. Results: benchmarks/out/agreement.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console

from cli.tables import agreement_table, differences_table
from tools.annotation import Annotation, AnnotationConfig
from tools.comparison import agreement_matrix, weight_differences
from tools.importers import ImportOptions, import_file
from tools.store import ConceptStore
from tools.workflows import fit_mechanism

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"
OUT = Path(__file__).resolve().parent / "out"
DATASETS = {"llmbar/MT-Bench": (RAW / "llmbar" / "Processed" / "MT-Bench", "llmbar"), "autoj": (RAW / "autoj", "autoj")}


def compare_all(console: Console, store: ConceptStore, source: str | None, top: int, label: str) -> dict:
    matrix = agreement_matrix(store, source=source)
    console.print(agreement_table(matrix, f"{label}: agreement % (row = reference)"))
    judges = [name for name in matrix.mechanisms if name != "human"]
    fits = {name: fit_mechanism(store, name, source=source) for name in ["human", *judges]}
    console.print(
        "  HMDR held-out non-tie accuracy (in-domain, grouped): "
        + ", ".join(
            f"{name} {f.evaluation.row('hmdr').non_tie_accuracy:.1f}% ({f.pairs} pairs)"
            for name, f in fits.items()
            if f.evaluation is not None
        ),
        highlight=False,
    )
    differences = {}
    for judge in judges:
        # Both fitted on the same pairs and penalties; only differences whose interval excludes 0.
        differences[judge] = weight_differences(store, "human", judge, source=source, top_k=top)
        console.print(differences_table(differences[judge]))
    return {
        "agreement": matrix.model_dump(),
        "fits": {name: f.model_dump() for name, f in fits.items()},
        "differences": {name: d.model_dump() for name, d in differences.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=3, help="Concepts per domain in the difference tables.")
    parser.add_argument("--llm-store", type=Path, default=OUT / "autoj-pipeline.db")
    args = parser.parse_args()
    console = Console(width=140)
    OUT.mkdir(exist_ok=True)
    started = time.perf_counter()
    results = {}
    with ConceptStore(OUT / "agreement.db") as store:
        for path, fmt in DATASETS.values():
            import_file(store, path, fmt, ImportOptions())
        Annotation(store, None, AnnotationConfig(llm_concepts=False)).run(list(store.pairs()))
        for source in DATASETS:
            results[source] = compare_all(console, store, source, args.top, f"{source}, measured concepts")
    if args.llm_store.exists():
        with ConceptStore(args.llm_store, create=False) as store:
            results["llm-store"] = compare_all(
                console, store, None, args.top, f"{args.llm_store.name} (measured + LLM concepts)"
            )
    console.print(f"Wall time {time.perf_counter() - started:.1f} s (no LLM call).")
    (OUT / "agreement.json").write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
