"""Judge hack (steering) and tie break with the embedded model as judge and generator, on Auto-J.

Usage: ``python benchmarks/bench_steering.py [--quick] [--label-pairs 12] [--queries 10] [--tiebreak 0]``
(set WHYPREF_BASE_URL to use another endpoint instead).

1. Auto-J pairs of 3 domains go into benchmarks/out/steering.db with their measured concepts (free).
2. The LLM judges ``--label-pairs`` pairs per domain in both orders (a flip is a tie): mechanism
   ``judge:<model>``. Its position bias and agreement with humans are printed.
3. HMDR is fitted for the judge (on its non-tied labels) and for humans (all pairs of the domains).
4. For ``--queries`` held-out queries per domain the LLM writes a plain response, one told to consider
   the judge's top-k concepts of the domain, and one told to consider k random concepts; the judge
   compares each steered response with the plain one in both orders. Win rate = win + tie / 2, with
   a 95% bootstrap interval over queries.
5. Optionally (``--tiebreak N``) the judge is re-asked on up to N of its ties with concepts from the
   human explanation, its own, their difference, or random ones.

Every LLM call is cached in the store: a killed run resumes where it stopped, a finished one re-prints
its figures without a call. Results: benchmarks/out/steering.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console

from cli.tables import tiebreak_table, win_rate_table
from tools.annotation import Annotation, AnnotationConfig
from tools.comparison import agreement_matrix, concept_weights, weight_differences
from tools.importers import read_file
from tools.judge import judge_name, label_pairs
from tools.llm import LLM
from tools.settings import Settings
from tools.steering import JudgeEvaluator, held_out_queries, steer, top_concepts
from tools.store import ConceptStore
from tools.tiebreak import tie_break
from tools.workflows import FitReport, fit_mechanism

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"
OUT = Path(__file__).resolve().parent / "out"
DOMAINS = ["Code", "Creative Writing", "General Communication"]


def select(domains: list[str], max_response_chars: int):
    """Auto-J pairs of the domains whose two responses are short enough to judge cheaply."""
    items = read_file(RAW / "autoj", "autoj").items
    return [
        i
        for i in items
        if i.pair.domain in domains and max(len(i.pair.response_a), len(i.pair.response_b)) <= max_response_chars
    ]


def sample(store: ConceptStore, domains: list[str], per_domain: int):
    """The first pairs by id of each domain that humans did not tie (deterministic)."""
    decided = {r["pair_id"] for r in store.label_rows(mechanism="human") if r["verdict"] != "tie"}
    chosen = []
    for domain in domains:
        chosen += [p for p in store.pairs(domain=domain) if p.id in decided][:per_domain]
    return chosen


def accuracy_text(report: FitReport) -> str:
    if report.evaluation is None:
        return f"held-out accuracy n/a ({report.evaluation_note})"
    row = report.evaluation.row(report.model)
    return f"held-out non-tie accuracy {row.non_tie_accuracy:.1f}% [{row.low:.1f}, {row.high:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", nargs="+", default=DOMAINS)
    parser.add_argument("--label-pairs", type=int, default=20, help="Pairs per domain the judge labels.")
    parser.add_argument("--queries", type=int, default=10, help="Held-out queries per domain to steer.")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-chars", type=int, default=600, help="Responses are cut to this in judge prompts.")
    parser.add_argument("--max-tokens", type=int, default=200, help="Generation budget per response.")
    parser.add_argument("--tiebreak", type=int, default=0, help="Re-ask the judge on up to this many ties.")
    parser.add_argument("--quick", action="store_true", help="A tiny run: 8 pairs and 1 query per domain.")
    parser.add_argument("--db", type=Path, default=OUT / "steering.db")
    args = parser.parse_args()
    if args.quick:
        args.label_pairs, args.queries = 8, 1
    console = Console()
    OUT.mkdir(exist_ok=True)
    store = ConceptStore(args.db)
    store.add_labeled_pairs(select(args.domains, 2500))
    Annotation(store, None, AnnotationConfig(llm_concepts=False)).run(list(store.pairs()))
    settings = Settings(max_response_chars=args.max_chars)
    llm = LLM.from_settings(settings, store)
    started = time.perf_counter()

    def progress(stage: str, done: int, total: int) -> None:
        if done == total or done % 10 == 0:
            console.print(f"  {stage}: {done}/{total} ({time.perf_counter() - started:.0f} s)", highlight=False)

    judge = judge_name(llm.name)
    pairs = sample(store, args.domains, args.label_pairs)
    labelled = label_pairs(store, llm, pairs, mechanism=judge, progress=progress)
    console.print(
        f"Judge {judge}: {labelled.labelled}/{labelled.pairs} pairs labelled, "
        f"{100 * (labelled.ties or 0):.0f}% ties (verdict flipped with the order), "
        f"{100 * (labelled.first_shown or 0):.0f}% of answers picked the response shown first.",
        highlight=False,
    )
    matrix = agreement_matrix(store, mechanisms=["human", judge])
    cell = next(c for c in matrix.cells if c.reference == "human")
    console.print(
        f"Agreement with humans on those pairs: {percent_value(cell.accuracy)} (ties 0.5, n={cell.scored_pairs})"
    )
    fit_judge = fit_mechanism(store, judge)
    fit_human = fit_mechanism(store, "human")
    console.print(
        f"HMDR on measured concepts: judge {accuracy_text(fit_judge)} on {fit_judge.pairs} non-tied pairs; "
        f"humans {accuracy_text(fit_human)} on {fit_human.pairs} pairs."
    )
    weights = concept_weights(store, judge)
    for domain in args.domains:
        top = ", ".join(c.name for c in top_concepts(weights, domain, args.k))
        console.print(f"  judge's top-{args.k} in {domain}: {top or '(none rewarded)'}", highlight=False)
    gaps = weight_differences(store, "human", judge, top_k=3)

    queries = held_out_queries(store, judge, domains=args.domains, per_domain=args.queries, max_query_chars=400)
    evaluator = JudgeEvaluator(llm)
    result = steer(
        store,
        llm,
        judge,
        queries,
        evaluator,
        k=args.k,
        max_tokens=args.max_tokens,
        progress=progress,
    )
    console.print(win_rate_table(result))
    if result.unsteerable:
        console.print(f"Left out (the judge's model rewards no concept there): {', '.join(result.unsteerable)}")
    console.print(
        "Paper (Gemini-1.5-Pro judge): 85.9 with explanation concepts vs 65.1 with random ones; "
        "GPT-4o 68.7 vs 58.6; QRM reward model 55.1 vs 44.1."
    )
    tiebreak = None
    if args.tiebreak:
        tiebreak = tie_break(store, llm, judge, k=args.k, limit=args.tiebreak, progress=progress)
        console.print(tiebreak_table(tiebreak))
    console.print(f"LLM: {llm.usage.line()} on {llm.name}; wall time {time.perf_counter() - started:.0f} s")
    (OUT / "steering.json").write_text(
        _dump(
            {
                "judge": labelled.model_dump(),
                "agreement_with_humans": cell.model_dump(),
                "fits": {
                    "judge": fit_judge.model_dump(),
                    "human": fit_human.model_dump(),
                },
                "differences_human_minus_judge": gaps.model_dump(),
                "steering": result.model_dump(mode="json"),
                "tiebreak": tiebreak.model_dump() if tiebreak else None,
                "usage": llm.usage.line(),
            }
        ),
        encoding="utf-8",
    )


def percent_value(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _dump(payload: dict) -> str:
    import json

    return json.dumps(payload, indent=1, default=str)


if __name__ == "__main__":
    main()
