"""The figures a statistician would ask for: honest accuracy beside length, domain effects that can
appear, stable lifts and exact A/B symmetry (issue #11). No LLM: measured concepts only.

Usage::

    python benchmarks/bench_statistics.py            # everything (about 25 minutes on 2 cores)
    python benchmarks/bench_statistics.py --quick    # 2 planted seeds, 3 real sets, no OOD on PandaLM
    python benchmarks/bench_statistics.py --before 84bf090   # also run the planted and stability parts
                                                             # with the code of that commit, side by side

Sections:

1. Planted domain effects: 8 domains, 150 or 400 pairs each, 12 shared concepts (6 with a shared
   weight), concept ``up`` helping strongly (+1.5) in domains 0 and 1 only and ``down`` hurting (-1.5)
   in domains 2 and 3 only; 10% of labels flipped. Precision / recall of the domain deviations s(d)
   (a cell counts when its sign is right), over 5 seeds.
2. Every stored real set and mechanism: non-tie accuracy, in-domain (nested CV grouped by query) and
   out of domain (leave one domain out), with 95% intervals over held-out pairs, for HMDR, flat (or
   shared: they coincide when every concept is shared), "the longer response wins" and a length-only
   regression, the paired differences and the verdict. In-domain HMDR with random pair splits beside
   it shows what query leakage does.
3. Lift stability: the top (domain, concept) lift of each set refitted with 5 CV fold seeds.
4. Swap test: the local explanation of every pair of a set and of its swapped copy.

Results: benchmarks/out/statistics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.special import expit

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"
OUT = Path(__file__).resolve().parent / "out"
ROOT = Path(__file__).resolve().parents[1]
SETS = {  # name: (path, format)
    "autoj": (RAW / "autoj", "autoj"),
    "llmbar-mtbench": (RAW / "llmbar" / "Processed" / "MT-Bench", "llmbar"),
    "llmbar-natural": (RAW / "llmbar" / "LLMBar" / "Natural", "llmbar"),
    "llmbar-adversarial": (RAW / "llmbar" / "LLMBar" / "Adversarial", "llmbar"),
    "llmbar-faireval": (RAW / "llmbar" / "Processed" / "FairEval", "llmbar"),
    "llmeval2": (RAW / "llmeval2" / "LLMEval2_benchmark.jsonl", "llmeval2"),
    "pandalm": (RAW / "pandalm", "pandalm"),
    "alpaca-eval": (RAW / "alpaca_eval", "alpaca-eval"),
}
QUICK_SETS = ("autoj", "llmbar-mtbench", "pandalm")
PLANTED_DOMAINS, PLANTED_SHARED = 8, 12
UP, DOWN = 6, 7  # the concepts with domain effects: +1.5 in domains 0-1, -1.5 in domains 2-3


def legacy() -> bool:
    """True when running on the code before issue #11 (the paper's grid, no grouped splits)."""
    import tools.model_selection as ms

    return hasattr(ms, "paper_grid")


# -- 1. planted domain effects -------------------------------------------------------------------
def planted(n_per_domain: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    domains = np.repeat([f"domain{d}" for d in range(PLANTED_DOMAINS)], n_per_domain)
    index = np.repeat(np.arange(PLANTED_DOMAINS), n_per_domain)
    X = np.where(rng.random((domains.size, PLANTED_SHARED)) < 0.4, rng.choice([-1.0, 1.0], (domains.size, 12)), 0.0)
    shared = np.zeros(PLANTED_SHARED)
    shared[:6] = rng.choice([-1, 1], 6) * rng.uniform(0.5, 1.5, 6)
    deviation = np.zeros((PLANTED_DOMAINS, PLANTED_SHARED))
    deviation[[0, 1], UP] = 1.5
    deviation[[2, 3], DOWN] = -1.5
    margin = X @ shared + np.einsum("ij,ij->i", X, deviation[index])
    y = np.where(rng.random(domains.size) < expit(margin), 1, -1)
    y = np.where(rng.random(domains.size) < 0.1, -y, y)
    return {"X": X, "y": y, "domains": domains, "deviation": deviation}


def planted_recovery(seeds: list[int], sizes: list[int]) -> list[dict[str, Any]]:
    """Point support of s(d) and, with this code, the domain effects the explanation establishes
    (the domain part's bootstrap interval excludes 0, 200 refits)."""
    from tools.model_selection import grid_search_cv

    results = []
    for size in sizes:
        for seed in seeds:
            data = planted(size, seed)
            names = [f"c{j}" for j in range(PLANTED_SHARED)]
            masks = {d: np.ones(PLANTED_SHARED, dtype=bool) for d in np.unique(data["domains"])}
            arguments = (data["X"], data["y"], data["domains"], np.ones(PLANTED_SHARED, bool), masks)
            started = time.perf_counter()
            model = grid_search_cv("hmdr", *arguments, random_state=seed).estimator
            true = np.sign(data["deviation"])
            entry = {"pairs_per_domain": size, "seed": seed, "true": int(np.sum(true != 0))}
            entry["point"] = _counts(np.sign(model.coef_domain_), true)
            if not legacy():
                from tools.explain import bootstrap_global_lift

                lift = bootstrap_global_lift(model, *arguments[:3], names, *arguments[3:], n_bootstrap=200)
                established = np.zeros_like(true)
                for d, entry_d in enumerate(lift.domains):
                    for c in entry_d.concepts:
                        if c.domain_effect:
                            established[d, names.index(c.concept)] = np.sign(c.specific)
                entry["established"] = _counts(established, true)
            entry["seconds"] = time.perf_counter() - started
            results.append(entry)
    return results


def _counts(found: np.ndarray, true: np.ndarray) -> dict[str, int]:
    """Cells found, found with the right sign, and the planted concepts found in the other domains."""
    other = true[:, [UP, DOWN]] == 0
    return {
        "found": int(np.sum(found != 0)),
        "hits": int(np.sum((found == true) & (true != 0))),
        "planted_elsewhere": int(np.sum((found[:, [UP, DOWN]] != 0) & other)),
    }


def recovery_table(results: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    columns = ("pairs / domain", "support", "precision", "recall", "up/down deviating elsewhere")
    for column in columns:
        table.add_column(column, justify="right")
    for size in sorted({r["pairs_per_domain"] for r in results}):
        rows = [r for r in results if r["pairs_per_domain"] == size]
        true = sum(r["true"] for r in rows)
        elsewhere = len(rows) * 2 * (PLANTED_DOMAINS - 2)
        for kind in ("point", "established"):
            if kind not in rows[0]:
                continue
            found, hits = (sum(r[kind][k] for r in rows) for k in ("found", "hits"))
            label = "fitted s(d) != 0" if kind == "point" else "domain effect (interval excludes 0)"
            table.add_row(
                str(size),
                label,
                f"{hits / max(found, 1):.2f}",
                f"{hits / true:.2f}",
                f"{sum(r[kind]['planted_elsewhere'] for r in rows)}/{elsewhere}",
            )
    return table


# -- stores --------------------------------------------------------------------------------------
def store_for(name: str):
    from tools.annotation import Annotation, AnnotationConfig
    from tools.importers import ImportOptions, import_file
    from tools.store import ConceptStore

    path = OUT / f"statistics-{name}.db"
    fresh = not path.exists()
    store = ConceptStore(path)
    if fresh:
        source, fmt = SETS[name]
        import_file(store, source, fmt, ImportOptions())
        Annotation(store, None, AnnotationConfig(llm_concepts=False)).run(list(store.pairs()))
    return store


def mechanisms_of(store) -> list[str]:
    return sorted({row["mechanism"] for row in store.label_rows()})


# -- 2. real sets --------------------------------------------------------------------------------
def real_sets(names: list[str], with_ood: bool, console: Console) -> dict[str, Any]:
    from tools.errors import WhyprefError
    from tools.workflows import evaluate_mechanism

    results: dict[str, Any] = {}
    for name in names:
        store = store_for(name)
        for mechanism in mechanisms_of(store):
            key = f"{name}/{mechanism}"
            started = time.perf_counter()
            entry: dict[str, Any] = {}
            models: list[Any] = ["hmdr", "shared", "flat"]
            for protocol in ("in-domain", "ood") if with_ood else ("in-domain",):
                try:
                    evaluation = evaluate_mechanism(store, mechanism, protocol=protocol, models=models)
                    entry[protocol] = evaluation.model_dump()
                except WhyprefError as error:
                    entry[protocol] = {"error": str(error)}
            try:
                leaky = evaluate_mechanism(store, mechanism, protocol="in-domain", models=["hmdr"], grouped=False)
                entry["random-splits"] = leaky.row("hmdr").model_dump()
            except WhyprefError as error:
                entry["random-splits"] = {"error": str(error)}
            entry["seconds"] = time.perf_counter() - started
            results[key] = entry
            console.print(real_table(key, entry))
    return results


def real_table(key: str, entry: dict[str, Any]) -> Table:
    table = Table(title=f"{key}: non-tie accuracy % [95% CI] ({entry['seconds']:.0f} s)")
    for column in ("protocol", "model", "accuracy", "pairs", "minus longer", "minus length-lr", "beats length"):
        table.add_column(column, justify="left" if column in ("protocol", "model") else "right")
    for protocol in ("in-domain", "ood"):
        evaluation = entry.get(protocol)
        if evaluation is None:
            continue
        if "error" in evaluation:
            table.add_row(protocol, "-", evaluation["error"][:60], "", "", "", "")
            continue
        gaps = {(d["model"], d["baseline"]): d for d in evaluation["differences"]}
        for row in evaluation["rows"]:
            cells = []
            for baseline in ("longer", "length-lr"):
                gap = gaps.get((row["model"], baseline))
                cells.append(f"{gap['difference']:+.1f} [{gap['low']:+.1f}, {gap['high']:+.1f}]" if gap else "")
            table.add_row(
                protocol,
                row["model"],
                f"{row['non_tie_accuracy']:.1f} [{row['low']:.1f}, {row['high']:.1f}]",
                str(row["n_pairs"]),
                *cells,
                row["explains_more_than_length"] or "",
            )
        for note in evaluation["notes"]:
            if "coincide" in note:
                table.add_row(protocol, "(note)", note[:60], "", "", "", "")
    leaky = entry.get("random-splits", {})
    if "non_tie_accuracy" in leaky:
        table.add_row(
            "in-domain, random pairs",
            "hmdr",
            f"{leaky['non_tie_accuracy']:.1f} [{leaky['low']:.1f}, {leaky['high']:.1f}]",
            str(leaky["n_pairs"]),
            "",
            "",
            "",
        )
    return table


# -- 3. lift stability ---------------------------------------------------------------------------
def stability(names: list[str], seeds: int) -> dict[str, Any]:
    """The (domain, concept) with the largest mean |lift|, refitted with each CV fold seed."""
    from tools.design import load_design
    from tools.model_selection import grid_search_cv

    results = {}
    for name in names:
        store = store_for(name)
        mechanism = "human" if "human" in mechanisms_of(store) else mechanisms_of(store)[0]
        design = load_design(store, mechanism)
        if legacy():
            fitting = design.without_ties()
            extra: dict[str, Any] = {}
        else:
            fitting, _ = design.for_fitting()
            extra = {"groups": fitting.groups}
        paper, points = [], []
        for seed in range(seeds):
            try:
                model = grid_search_cv(
                    "hmdr",
                    fitting.X,
                    fitting.y,
                    fitting.domains,
                    fitting.shared_mask,
                    fitting.domain_masks,
                    random_state=seed,
                    **extra,
                ).estimator
            except ValueError as error:  # the code before #11 crashed on some sets (e.g. a domain of ties)
                results[name] = {"mechanism": mechanism, "error": str(error)}
                break
            paper.append(50.0 * (model.coef_shared_ + model.coef_domain_))
            if not legacy():
                from tools.explain import lift_table

                points.append(lift_table(model, fitting.X, fitting.domains))
        if name in results:
            continue
        reference = np.mean(points if points else paper, axis=0)
        d, j = np.unravel_index(np.argmax(np.abs(reference)), reference.shape)
        cell_paper = [float(p[d, j]) for p in paper]
        results[name] = {
            "mechanism": mechanism,
            "domain": str(model.domains_[d]),
            "concept": fitting.concept_names[j],
            "paper_lift_percent": cell_paper,
            "lift_pp": [float(p[d, j]) for p in points] if points else None,
        }
    return results


def stability_table(results: dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    for column in ("set", "cell", "50 b % (min .. max, spread / mean)", "lift pp (min .. max, spread / mean)"):
        table.add_column(column)
    for name, r in results.items():
        if "error" in r:
            table.add_row(f"{name}/{r['mechanism']}", "crashed", r["error"][:70], "")
            continue
        cells = []
        for values in (r["paper_lift_percent"], r["lift_pp"]):
            if not values:
                cells.append("-")
                continue
            spread = max(values) - min(values)
            cells.append(f"{min(values):+.1f} .. {max(values):+.1f} ({spread / max(abs(np.mean(values)), 1e-9):.0%})")
        table.add_row(f"{name}/{r['mechanism']}", f"{r['domain']} / {r['concept']}", *cells)
    return table


# -- 4. swap test --------------------------------------------------------------------------------
def swap_test(name: str) -> dict[str, Any]:
    from tools.design import load_design
    from tools.explain import first_preferred, global_lift, local_lift
    from tools.workflows import fit_mechanism, load_model

    store = store_for(name)
    fit_mechanism(store, "human", evaluate=False)
    record, model = load_model(store, "human")
    design = load_design(store, "human", concept_ids=record.payload.concept_ids)
    X, domains = design.X, design.domains
    stored, swapped = local_lift(model, X, domains), local_lift(model, -X, domains)
    p_a = first_preferred(model.decision_function(X, domains))
    p_b_swapped = first_preferred(-model.decision_function(-X, domains))
    same_global = global_lift(model, X, domains, design.concept_names) == global_lift(
        model, -X, domains, design.concept_names
    )
    return {
        "set": name,
        "pairs": int(X.shape[0]),
        "local_lifts_exactly_negated": int(np.sum(np.all(swapped == -stored, axis=1))),
        "probabilities_exactly_swapped": int(np.sum(p_b_swapped == p_a)),
        "global_lift_identical": bool(same_global),
        "largest_difference": float(np.max(np.abs(swapped + stored))),
    }


# -- before / after ------------------------------------------------------------------------------
def run_before(commit: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the planted and stability parts with the code of ``commit`` (a git worktree) in a subprocess."""
    with tempfile.TemporaryDirectory() as folder:
        tree = Path(folder) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit], check=True)
        try:
            output = Path(folder) / "before.json"
            command = [sys.executable, str(Path(__file__).resolve()), "--legacy-part", str(output)]
            command += ["--quick"] if args.quick else []
            environment = {**os.environ, "PYTHONPATH": str(tree)}
            subprocess.run(command, check=True, env=environment, cwd=tree)
            return json.loads(output.read_text())
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)


def comparable_parts(args: argparse.Namespace) -> dict[str, Any]:
    seeds = [0, 1] if args.quick else [0, 1, 2, 3, 4]
    names = list(QUICK_SETS) if args.quick else ["autoj", "llmbar-mtbench", "llmeval2", "pandalm"]
    return {"planted": planted_recovery(seeds, [150, 400]), "stability": stability(names, 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--before", metavar="COMMIT", help="Also run the comparable parts with this commit's code.")
    parser.add_argument("--legacy-part", type=Path, help=argparse.SUPPRESS)  # internal: the --before subprocess
    parser.add_argument("--sets", nargs="+", choices=sorted(SETS), help="Real sets (default: all; --quick: 3).")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    if args.legacy_part:
        args.legacy_part.write_text(json.dumps(comparable_parts(args)), encoding="utf-8")
        return
    console = Console(width=160)
    started = time.perf_counter()
    results: dict[str, Any] = comparable_parts(args)
    console.print(recovery_table(results["planted"], "Planted domain effects (this code): deviations s(d)"))
    console.print(stability_table(results["stability"], "Lift of the top cell across 5 CV fold seeds (this code)"))
    if args.before:
        before = run_before(args.before, args)
        results["before"] = before
        console.print(recovery_table(before["planted"], f"Planted domain effects (code of {args.before})"))
        console.print(stability_table(before["stability"], f"Lift stability (code of {args.before})"))
    names = args.sets or (list(QUICK_SETS) if args.quick else list(SETS))
    results["real"] = real_sets(names, with_ood=True, console=console)
    results["swap"] = [swap_test(name) for name in ("autoj", "pandalm")]
    for swap in results["swap"]:
        console.print(
            f"Swap test on {swap['set']}: {swap['local_lifts_exactly_negated']}/{swap['pairs']} local explanations "
            f"exactly negated, {swap['probabilities_exactly_swapped']}/{swap['pairs']} probabilities exactly "
            f"swapped, global lift identical: {swap['global_lift_identical']}",
            highlight=False,
        )
    console.print(f"Wall time {time.perf_counter() - started:.0f} s.")
    (OUT / "statistics.json").write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
