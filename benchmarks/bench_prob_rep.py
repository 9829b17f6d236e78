"""Prob-rep against Comp-rep with the embedded model, on real human preferences (issue #12).

Usage: ``python benchmarks/bench_prob_rep.py [--pairs 160] [--representations prob comp] [--threads 1]``

LLMBar MT-Bench (human labels, no ties), the first ``--pairs`` pairs by id; five of the method's
generic concepts (Clarity, Accuracy, Helpfulness, Specificity, Relevance) with definitions written
as the method writes them; responses cut to ``--max-chars`` in prompts. Each representation is
annotated in a store of its own (the content-hash cache makes a re-run free; delete
benchmarks/out/prob-rep-*.db to measure again). Prints, per representation: LLM calls and seconds per
pair, the share of non-zero values, the agreement of each concept's sign with the human choice; then
HMDR's non-tie accuracy (nested CV grouped by query, 95% intervals) on the measured concepts alone and
with each representation's concepts, with the paired difference, beside "the longer response wins".
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from tools.annotation import Annotation, AnnotationConfig, annotator_name
from tools.concepts import Concept, ConceptKind
from tools.design import Design, load_design
from tools.importers import ImportOptions, import_file
from tools.llm import LLM
from tools.measured import measured_concepts
from tools.model_selection import cv_folds, grid_search_cv, row_scores, subset_masks
from tools.resampling import ClusterBootstrap
from tools.settings import Settings
from tools.store import ConceptStore

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"
OUT = Path(__file__).resolve().parent / "out"
CONCEPTS = {
    "Clarity": "A high score indicates the response is clear and easy to understand; a low score, hard to follow.",
    "Accuracy": "A high score indicates the response is factually correct; a low score, it contains errors.",
    "Helpfulness": "A high score indicates the response helps the user achieve their goal; a low score, it does not.",
    "Specificity": "A high score indicates the response is specific to the request; a low score, vague or generic.",
    "Relevance": "A high score indicates the response addresses what was asked; a low score, it drifts off topic.",
}


def build(path: Path, n_pairs: int) -> list:
    store = ConceptStore(path)
    if not store.count("pairs"):
        import_file(store, RAW / "llmbar" / "Processed" / "MT-Bench", "llmbar", ImportOptions())
    human = {r["pair_id"]: r["verdict"] for r in store.label_rows(mechanism="human")}
    pairs = [p for p in store.pairs() if human.get(p.id, "tie") != "tie"][:n_pairs]
    store.upsert_concepts([Concept(name=n, definition=d, kind=ConceptKind.GENERIC) for n, d in CONCEPTS.items()])
    return [store, pairs, human]


def annotate(representation: str, n_pairs: int, max_chars: int, console: Console) -> dict[str, Any]:
    store, pairs, human = build(OUT / f"prob-rep-{representation}.db", n_pairs)
    llm = LLM.from_settings(Settings(max_response_chars=max_chars), store)
    config = AnnotationConfig(representation=representation, relevance=False)  # type: ignore[arg-type]
    started = time.perf_counter()
    done = [0]

    def progress(stage: str, finished: int, total: int) -> None:
        if finished and (finished - done[0]) * 20 >= total or finished == total:
            done[0] = finished
            console.print(f"  {representation}/{stage}: {finished}/{total} ({time.perf_counter() - started:.0f} s)")

    result = Annotation(store, llm, config, progress).run(pairs)
    seconds = time.perf_counter() - started
    annotator = annotator_name(representation, llm.name)  # type: ignore[arg-type]
    values = {
        (r["pair_id"], r["concept_id"]): r["value"]
        for r in store.db.query("select * from concept_values where annotator = ?", [annotator])
    }
    agreement = {}
    for concept in CONCEPTS:
        cid = concept.lower()
        signs = [(np.sign(values.get((p.id, cid), 0.0)), 1 if human[p.id] == "A" else -1) for p in pairs]
        decided = [(s, h) for s, h in signs if s != 0]
        agreement[concept] = (float(np.mean([s == h for s, h in decided])) if decided else None, len(decided))
    cells = [values.get((p.id, c.lower())) for p in pairs for c in CONCEPTS]
    store.close()
    return {
        "representation": representation,
        "pairs": len(pairs),
        "calls": llm.usage.total.calls,
        "cached": llm.usage.total.cached,
        "missing": llm.usage.total.missing,
        "seconds": seconds,
        "seconds_per_pair": seconds / len(pairs) if llm.usage.total.calls else None,
        "calls_per_pair": llm.usage.total.calls / len(pairs),
        "nonzero_share": float(np.mean([v is not None and v != 0 for v in cells])),
        "valued_share": float(np.mean([v is not None for v in cells])),
        "sign_agreement": agreement,
        "swap_consistent": result.swap_consistent,
        "model": llm.name,
    }


def held_out_scores(design: Design) -> np.ndarray:
    """Per-pair score of HMDR in 5-fold CV grouped by query (tuned inside each training fold), the same
    folds whatever the concepts (they depend on the pairs only)."""
    scores = np.zeros(design.y.size)
    for train, test in cv_folds(design.domains, design.y, design.groups, 5, 0):
        model = grid_search_cv(
            "hmdr",
            design.X[train],
            design.y[train],
            design.domains[train],
            design.shared_mask,
            subset_masks(design.domain_masks, design.domains[train]),
            groups=design.groups[train],
        ).estimator
        scores[test] = row_scores(design.y[test], model.decision_function(design.X[test], design.domains[test]))
    return scores


def accuracy(representations: list[str], n_pairs: int) -> dict[str, Any]:
    """HMDR on measured concepts alone and with each representation's concepts, on the same pairs and
    folds, with the paired difference (bootstrap over query groups within domains)."""
    out: dict[str, Any] = {}
    measured = [c.id for c in measured_concepts()]
    baseline: np.ndarray | None = None
    for representation in representations:
        store, pairs, _ = build(OUT / f"prob-rep-{representation}.db", n_pairs)
        Annotation(store, None, AnnotationConfig(llm_concepts=False)).run(pairs)
        keep = {p.id for p in pairs}
        for label, ids in (
            ("measured", measured),
            (f"measured + {representation}", measured + [c.lower() for c in CONCEPTS]),
        ):
            if label in out:
                continue
            design = load_design(store, "human", concept_ids=ids)
            design = design.subset(np.array([p in keep for p in design.pair_ids]))
            scores = held_out_scores(design)
            bootstrap = ClusterBootstrap(design.domains, design.groups)
            [interval] = bootstrap.interval(scores)
            entry = {"accuracy": 100 * interval.estimate, "low": 100 * interval.low, "high": 100 * interval.high}
            longer = row_scores(design.y, np.sign(design.lengths[:, 0] - design.lengths[:, 1]))
            [gap] = bootstrap.interval(scores - longer)
            entry["minus_longer"] = [100 * gap.estimate, 100 * gap.low, 100 * gap.high]
            if baseline is None:
                baseline = scores
            else:
                [gain] = bootstrap.interval(scores - baseline)
                entry["minus_measured"] = [100 * gain.estimate, 100 * gain.low, 100 * gain.high]
            out[label] = entry
        store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=160)
    parser.add_argument("--representations", nargs="+", default=["prob", "comp"], choices=["prob", "comp", "score"])
    parser.add_argument("--max-chars", type=int, default=1200)
    parser.add_argument("--threads", type=int, default=1, help="Embedded model threads (WHYPREF_THREADS).")
    args = parser.parse_args()
    os.environ.setdefault("WHYPREF_THREADS", str(args.threads))
    console = Console(width=160)
    OUT.mkdir(exist_ok=True)
    runs = [annotate(r, args.pairs, args.max_chars, console) for r in args.representations]
    table = Table(title=f"Embedded model on {args.pairs} LLMBar MT-Bench pairs (human, no ties), 5 generic concepts")
    for column in ("representation", "calls / pair", "s / pair", "valued", "non-zero", "sign = human (n) per concept"):
        table.add_column(
            column, justify="left" if column in ("representation", "sign = human (n) per concept") else "right"
        )
    for run in runs:
        agreement = ", ".join(
            f"{c} {100 * a:.0f}% ({n})" if a is not None else f"{c} -" for c, (a, n) in run["sign_agreement"].items()
        )
        table.add_row(
            run["representation"],
            f"{run['calls_per_pair']:.1f}",
            "cached" if run["seconds_per_pair"] is None else f"{run['seconds_per_pair']:.1f}",
            f"{100 * run['valued_share']:.0f}%",
            f"{100 * run['nonzero_share']:.0f}%",
            agreement,
        )
    console.print(table)
    results = accuracy(args.representations, args.pairs)
    table = Table(title="HMDR non-tie accuracy % (5-fold CV grouped by query, tuned inside; 95% CI)")
    for column in ("concepts", "hmdr", "minus longer wins", "minus measured alone"):
        table.add_column(column)

    def points(values: list[float] | None) -> str:
        return "" if values is None else f"{values[0]:+.1f} [{values[1]:+.1f}, {values[2]:+.1f}]"

    for label, entry in results.items():
        table.add_row(
            label,
            f"{entry['accuracy']:.1f} [{entry['low']:.1f}, {entry['high']:.1f}]",
            points(entry["minus_longer"]),
            points(entry.get("minus_measured")),
        )
    console.print(table)
    (OUT / "prob_rep.json").write_text(json.dumps({"runs": runs, "accuracy": results}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
