"""The discovery agent on planted data, with a scripted LLM that knows some true concepts and many
distractors (no real LLM: PlantedOracle from tests/helpers.py). Prints held-out accuracy per round, how many
true concepts the final set holds (and how many distractors), the LLM calls spent, and for reference
the held-out accuracy of the known true concepts and of every planted concept on the same split.

Usage: ``python benchmarks/bench_agent_planted.py [--quick] [--rounds 8] [--seed 0]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver
from rich.console import Console
from rich.table import Table

from agent.config import AgentConfig
from agent.graph import build_graph, start_run
from tools.concepts import concept_id
from tools.design import store_planted
from tools.feedback import concept_set_design, score_concept_set
from tools.llm import LLM
from tools.planted import make_planted
from tools.store import ConceptStore
from tools.testing import ScriptedChat

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the scripted LLMs live with the tests
from helpers import PlantedOracle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Small data and few rounds (seconds).")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = Console()
    pairs = 80 if args.quick else 400
    data = make_planted(
        n_domains=4,
        n_concepts=24,
        n_shared=8,
        n_pairs_per_domain=pairs,
        shared_active=0.75,
        specific_active=0.5,
        density=0.4,
        weight_range=(0.8, 2.0),
        random_state=args.seed,
    )
    weighted = [
        name for j, name in enumerate(data.concept_names) if data.coef_shared[j] != 0 or data.coef_domain[:, j].any()
    ]
    known = weighted[::2] + weighted[1::4]  # about three quarters of the true concepts
    distractors = [f"Distractor {k}" for k in range(30)]
    oracle = PlantedOracle(data, known, distractors, biased=["Position A", "Position B"], per_batch=4)
    config = AgentConfig(
        mechanism="planted",
        measured=False,
        relevance=False,
        pairs_per_domain=None,
        max_iterations=3 if args.quick else args.rounds,
        patience=3,
        batches_per_iteration=4,
        max_calls=1_000_000,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory() as folder:
        store = ConceptStore(Path(folder) / "planted.db")
        store_planted(store, data)
        for concept in store.concepts():  # the agent must find them; the oracle values what it names
            store.delete_concept(concept.id)
        chat = ScriptedChat(responder=oracle)
        llm = LLM(chat, "planted-oracle", store=store)
        saver = InMemorySaver()
        start = time.perf_counter()
        result = start_run(store, llm, config, saver, run_id="bench")
        seconds = time.perf_counter() - start
        # Reference sets scored on the agent's own split, with the planted values themselves.
        state = build_graph(saver).get_state({"configurable": {"thread_id": "bench"}}).values
        train, test = state["train_ids"], state["test_ids"]
        store_planted(store, data)
        ids = {c.id for c in store.concepts()}
        reference = {}
        for label, names in (("known true concepts", known), ("all planted concepts", data.concept_names)):
            chosen = [concept_id(n) for n in names if concept_id(n) in ids]
            design = concept_set_design(store, "planted", chosen, {*train, *test}, annotator="planted")
            reference[label] = score_concept_set(design, set(train), set(test), random_state=args.seed)

    table = Table(title=f"Agent on planted data: 4 domains x {pairs} pairs, {len(weighted)} true concepts")
    for column in ("round", "concepts", "added", "dropped", "rejected", "in-domain %", "OOD %", "calls"):
        table.add_column(column, justify="right")
    for r in result.history:
        table.add_row(
            str(r.iteration),
            str(r.concepts),
            str(len(r.added)),
            str(len(r.dropped) + len(r.merged)),
            str(len(r.rejected)),
            f"{100 * r.in_domain:.1f}",
            "-" if r.ood is None else f"{100 * r.ood:.1f}",
            str(r.calls),
        )
    console.print(table)
    final = set(result.concepts)
    true_ids = {concept_id(n) for n in weighted}
    known_ids = {concept_id(n) for n in known}
    console.print(
        f"Final set: {len(final)} concepts, {len(final & true_ids)} true of {len(known_ids)} the oracle knows "
        f"({len(true_ids)} true in all), {len(final - true_ids)} distractors; stop: {result.stop_reason}; "
        f"{result.calls} LLM calls; {seconds:.0f} s.",
        highlight=False,
    )
    for label, score in reference.items():
        ood = "-" if score.ood is None else f"{100 * score.ood:.1f}"
        console.print(f"Reference, {label}: in-domain {100 * score.in_domain:.1f}%, OOD {ood}%", highlight=False)


if __name__ == "__main__":
    main()
