"""The discovery agent against the one-shot pipeline on real data at the same number of LLM calls.

Auto-J, 2-3 domains, human labels, the embedded model (or WHYPREF_BASE_URL's endpoint). The agent runs
under a call budget; then the one-shot pipeline (tools.discovery + tools.annotation) gets as many
batches as fit in the calls the agent actually spent. Both concept sets (with the free measured
concepts) are scored on the agent's own split: HMDR fitted on its training pairs, held-out accuracy
in-domain and out-of-domain (tools.feedback.score_concept_set).

Usage: ``python benchmarks/bench_agent_autoj.py [--domains Code "General Communication"] [--pairs 24]
[--budget-calls 600]``; ``--quick`` checks the script in seconds with a scripted model instead.
Stores (with the LLM cache) are kept in benchmarks/out/, so an interrupted run resumes
(``--resume``) and a finished one re-prints its figures without new calls.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agent.config import AgentConfig
from agent.graph import build_graph, resume_run, sqlite_checkpointer, start_run
from tools.annotation import Annotation, AnnotationConfig
from tools.concepts import ConceptKind
from tools.discovery import Discovery, DiscoveryConfig
from tools.feedback import ConceptSetScore, concept_set_design, score_concept_set
from tools.llm import LLM
from tools.settings import Settings
from tools.store import ConceptStore
from tools.testing import ScriptedChat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline_autoj import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the scripted LLMs live with the tests
from helpers import pipeline_responder

OUT = Path(__file__).resolve().parent / "out"
RUN_ID = "bench-agent"


def llm_for(store: ConceptStore, quick: bool, max_chars: int) -> LLM:
    if quick:
        return LLM(ScriptedChat(responder=pipeline_responder), "scripted", store=store, max_response_chars=max_chars)
    return LLM.from_settings(Settings(max_response_chars=max_chars), store)


def one_shot(store: ConceptStore, llm: LLM, calls: int, pairs: list) -> tuple[int, int]:
    """Discovery with the most batches whose estimated cost, with annotation, fits ``calls``; then
    annotation. Returns (batches per domain, calls spent)."""
    batches = 1
    while True:
        config = DiscoveryConfig(batches_per_domain=batches + 1, concepts_per_batch=5, include_generic=False)
        estimate = Discovery(store, llm, config).estimate()
        concepts = (batches + 1) * len(store.domains()) * config.concepts_per_batch // 2
        cost = sum(e.calls for e in estimate.values()) + 2 * len(pairs) * math.ceil(concepts / 20)
        if cost > calls:
            break
        batches += 1
    config = DiscoveryConfig(batches_per_domain=batches, concepts_per_batch=5, include_generic=False)
    before = llm.usage.total.calls
    Discovery(store, llm, config).run()
    Annotation(store, llm, AnnotationConfig(relevance=False)).run(pairs)
    return batches, llm.usage.total.calls - before


def score(store: ConceptStore, train: list[str], test: list[str]) -> tuple[ConceptSetScore, int]:
    concepts = store.concepts()
    design = concept_set_design(store, "human", [c.id for c in concepts], {*train, *test})
    llm_made = sum(c.kind is not ConceptKind.MEASURED for c in concepts)
    return score_concept_set(design, set(train), set(test)), llm_made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--domains", nargs="+", default=["Code", "General Communication"])
    parser.add_argument("--pairs", type=int, default=24, help="Pairs per domain.")
    parser.add_argument("--budget-calls", type=int, default=600)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--max-chars", type=int, default=700, help="Responses are cut to this in prompts.")
    parser.add_argument("--resume", action="store_true", help="Resume the agent run of a killed benchmark.")
    parser.add_argument("--quick", action="store_true", help="A scripted model and 12 pairs per domain (seconds).")
    args = parser.parse_args()
    console = Console()
    if args.quick:
        args.pairs, args.budget_calls, args.iterations = 12, 400, 2
    out = Path(tempfile.mkdtemp()) if args.quick else OUT
    out.mkdir(exist_ok=True)
    chosen = select(args.pairs, args.domains)

    agent_store = ConceptStore(out / "autoj-agent.db")
    agent_store.add_labeled_pairs(chosen)
    llm = llm_for(agent_store, args.quick, args.max_chars)
    config = AgentConfig(
        mechanism="human",
        domains=args.domains,
        pairs_per_domain=args.pairs,
        max_calls=args.budget_calls,
        max_iterations=args.iterations,
        relevance=False,
        batches_per_iteration=4,
    )
    with sqlite_checkpointer(agent_store.path) as saver:
        runs = {row["id"]: row["status"] for row in agent_store.db.query("select id, status from runs")}
        if RUN_ID not in runs:
            start_run(agent_store, llm, config, saver, run_id=RUN_ID)
        elif runs[RUN_ID] != "finished" and args.resume:
            resume_run(agent_store, llm, RUN_ID, saver)
        elif runs[RUN_ID] != "finished":
            raise SystemExit(f"an unfinished agent run is in {agent_store.path}: rerun with --resume")
        state = build_graph(saver).get_state({"configurable": {"thread_id": RUN_ID}}).values
    train, test = state["train_ids"], state["test_ids"]
    spent = agent_store.run_usage(RUN_ID)

    base_store = ConceptStore(out / "autoj-oneshot.db")
    base_store.add_labeled_pairs(chosen)
    base_llm = llm_for(base_store, args.quick, args.max_chars)
    batches, base_calls = one_shot(base_store, base_llm, spent.calls, list(base_store.pairs()))

    history = Table(title=f"Agent rounds (budget {args.budget_calls} calls)")
    for column in ("round", "concepts", "added", "dropped", "rejected", "in-domain %", "OOD %", "calls"):
        history.add_column(column, justify="right")
    for record in state.get("history", []):
        history.add_row(
            str(record["iteration"]),
            str(record["concepts"]),
            str(len(record["added"])),
            str(len(record["dropped"]) + len(record["merged"])),
            str(len(record["rejected"])),
            f"{100 * record['in_domain']:.1f}",
            "-" if record["ood"] is None else f"{100 * record['ood']:.1f}",
            str(record["calls"]),
        )
    console.print(history)
    table = Table(title=f"Auto-J {' + '.join(args.domains)}, {len(train)} training / {len(test)} held-out pairs")
    for column in ("method", "LLM concepts", "LLM calls", "in-domain %", "OOD %"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for name, store, calls in (
        (f"agent (stop: {state.get('stop_reason')})", agent_store, spent.calls),
        (f"one-shot ({batches} batches per domain)", base_store, base_calls),
    ):
        result_score, llm_made = score(store, train, test)
        ood = "-" if result_score.ood is None else f"{100 * result_score.ood:.1f}"
        table.add_row(name, str(llm_made), str(calls), f"{100 * result_score.in_domain:.1f}", ood)
    console.print(table)
    console.print(f"Model: {llm.name}. Calls count answers not already in each store's cache.", highlight=False)


if __name__ == "__main__":
    main()
