"""Concepts that explain more than length, without an LLM (issue #13).

Usage::

    python benchmarks/bench_concepts.py --old 84bf090     # everything, beside the 14 concepts of that commit
    python benchmarks/bench_concepts.py --sets autoj llmbar-mtbench --no-ood

For every stored set and mechanism (human labels and the judges), non-tie accuracy in-domain (nested
5-fold CV grouped by query) and out of domain (leave one domain out, its query groups out of
training), with 95% intervals and the paired difference with "the longer response wins", for:

- ``longer`` and ``length-lr``: the length baselines;
- ``tfidf-lr``: a black box, L2 logistic regression on TF-IDF(A) - TF-IDF(B) (word 1-2-grams in any
  script), its C chosen by CV grouped by query inside each training fold;
- ``hmdr-14``: HMDR on the 14 measured concepts of the code before issue #13 (with ``--old``);
- ``hmdr``: HMDR on today's measured library (tools/measured.py);
- ``hmdr+mined``: HMDR on the library plus the phrases tools/mining.py mines inside each training fold;
- ``boosted`` (with ``--ceiling``, in-domain): gradient-boosted trees on both responses' raw
  measurements, a flexible black box on the same information as ``hmdr``: what any model of these
  measurements can reach (non-linear effects and interactions included), not an explanation.

``--repeats N`` averages each pair's in-domain score over N splits into folds (steadier figures; the
intervals stay over held-out pairs).

Also: the signal of every measured concept on every set (the share of pairs where the response with
more of it was preferred, with its interval), and the cost of measuring and mining per 1,000 pairs.
Results: benchmarks/out/concepts.json.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegressionCV

from tools.annotation import Annotation, AnnotationConfig
from tools.design import Design, load_design
from tools.errors import WhyprefError
from tools.importers import ImportOptions, import_file
from tools.measured import _WORD, measure_pairs, measured_concepts
from tools.mining import mine_patterns, phrases
from tools.model_selection import (
    CustomModel,
    EvaluationData,
    _log_loss,
    cv_folds,
    evaluate_in_domain,
    evaluate_out_of_domain,
    grid_search_cv,
    subset_masks,
)
from tools.resampling import ClusterBootstrap
from tools.store import ConceptStore

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"
OUT = Path(__file__).resolve().parent / "out"
ROOT = Path(__file__).resolve().parents[1]
SETS = {
    "autoj": (RAW / "autoj", "autoj"),
    "llmbar-mtbench": (RAW / "llmbar" / "Processed" / "MT-Bench", "llmbar"),
    "llmeval2": (RAW / "llmeval2" / "LLMEval2_benchmark.jsonl", "llmeval2"),
    "pandalm": (RAW / "pandalm", "pandalm"),
    "llmbar-natural": (RAW / "llmbar" / "LLMBar" / "Natural", "llmbar"),
    "llmbar-adversarial": (RAW / "llmbar" / "LLMBar" / "Adversarial", "llmbar"),
    "alpaca-eval": (RAW / "alpaca_eval", "alpaca-eval"),
}
OLD_14 = (
    "length list-formatting headings code-blocks links numbers emphasis paragraphs hedging refusal-or-apology "
    "questions-to-user repetition query-overlap readability"
).split()
BOOSTING_ROUNDS = (25, 50, 100, 200, 400)  # chosen by CV grouped by query inside each training fold
SKIP = {"human-annotator1", "human-annotator2", "human-annotator3"}  # PandaLM's majority is "human"


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def store_for(name: str) -> tuple[ConceptStore, float]:
    """The set's store with today's measured concepts; seconds per 1,000 pairs to measure them."""
    path = OUT / f"concepts-{name}.db"
    store = ConceptStore(path)
    if not store.count("pairs"):
        source, fmt = SETS[name]
        import_file(store, source, fmt, ImportOptions())
    pairs = list(store.pairs())
    Annotation(store, None, AnnotationConfig(llm_concepts=False)).run(pairs)  # stores what is not measured yet
    started = time.perf_counter()  # the cost itself: every pair measured afresh
    measure_pairs(pairs)
    return store, 1000 * (time.perf_counter() - started) / len(pairs)


def old_values(name: str, commit: str) -> dict[tuple[str, str], float]:
    """The 14 measured concepts of ``commit``: its own code measures a copy of the set's store."""
    with tempfile.TemporaryDirectory() as folder:
        tree, copy = Path(folder) / "tree", Path(folder) / "old.db"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit], check=True)
        try:
            # The backup API, not a file copy: the open store's latest writes may still be in its WAL.
            with sqlite3.connect(OUT / f"concepts-{name}.db") as live, sqlite3.connect(copy) as target:
                live.backup(target)
            # That commit's own entry point (the CLI has moved between modules).
            project = tomllib.loads((tree / "pyproject.toml").read_text(encoding="utf-8"))
            module, function = project["project"]["scripts"]["whypref"].split(":")
            code = f"from {module} import {function}; {function}()"
            command = [sys.executable, "-c", code, "annotate", "--measured-only", "--db", str(copy)]
            done = subprocess.run(
                command, env={"PYTHONPATH": str(tree), "PATH": ""}, cwd=tree, capture_output=True, text=True
            )
            if done.returncode:
                raise RuntimeError(f"the code of {commit} could not measure {name}: {done.stderr[-2000:]}")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)
        with ConceptStore(copy, create=False) as old:
            marks = ", ".join("?" * len(OLD_14))
            query = f"select pair_id, concept_id, value from concept_values where concept_id in ({marks})"
            return {(r["pair_id"], r["concept_id"]): r["value"] for r in old.db.query(query, OLD_14)}


def tfidf_model(texts: list[tuple[str, str]]) -> CustomModel:
    def margins(data: EvaluationData, train: NDArray[np.intp], test: NDArray[np.intp], seed: int) -> NDArray:
        vectorizer = TfidfVectorizer(
            tokenizer=words, lowercase=False, token_pattern=None, ngram_range=(1, 2), min_df=2, sublinear_tf=True
        )
        vectorizer.fit([t for i in train for t in texts[i]])

        def difference(rows: NDArray[np.intp]) -> sp.csr_matrix:
            return vectorizer.transform([texts[i][0] for i in rows]) - vectorizer.transform([texts[i][1] for i in rows])

        assert data.groups is not None
        folds = cv_folds(data.domains[train], data.y[train], data.groups[train], 5, seed)
        model = LogisticRegressionCV(
            Cs=[0.1, 0.3, 1, 3, 10, 30],
            l1_ratios=(0.0,),
            use_legacy_attributes=False,
            cv=folds,
            fit_intercept=False,
            scoring="neg_log_loss",
            max_iter=2000,
        )
        model.fit(difference(train), data.y[train])
        return model.decision_function(difference(test))

    return CustomModel("tfidf-lr", margins)


def matrix_model(name: str, X: NDArray[np.float64]) -> CustomModel:
    """HMDR, tuned like ``hmdr``, on other concept values (shared concepts)."""

    def margins(data: EvaluationData, train: NDArray[np.intp], test: NDArray[np.intp], seed: int) -> NDArray:
        assert data.groups is not None
        model = grid_search_cv(
            "hmdr", X[train], data.y[train], data.domains[train], groups=data.groups[train], random_state=seed
        ).estimator
        return model.margins(X[test], data.domains[test])

    return CustomModel(name, margins)


def measured_sides(store: ConceptStore, concept_ids: list[str]) -> tuple[NDArray[np.str_], NDArray[np.float64]]:
    """The stored measurements of both responses: sorted pair ids and an array (2, pairs, concepts)."""
    details = list(store.value_details(concept_ids))
    pair_ids = np.unique([pair_id for pair_id, _, _ in details])
    sides = np.zeros((2, pair_ids.size, len(concept_ids)))
    for pair_id, concept_id, detail in details:
        row, column = np.searchsorted(pair_ids, pair_id), concept_ids.index(concept_id)
        sides[:, row, column] = detail["a"], detail["b"]
    return pair_ids, sides


def boosted_model(a: NDArray[np.float64], b: NDArray[np.float64]) -> CustomModel:
    """Gradient-boosted trees on both responses' measurements (signed log1p) and their differences.

    Symmetric like HMDR: trained on both orders of every pair, its margin is half the difference of
    the two orders' scores, so swapping A and B negates it. Its number of rounds is chosen by log loss
    in a CV grouped by query inside the training rows.
    """
    a, b = np.sign(a) * np.log1p(np.abs(a)), np.sign(b) * np.log1p(np.abs(b))

    def features(rows: NDArray[np.intp], swap: bool) -> NDArray[np.float64]:
        first, second = (b, a) if swap else (a, b)
        return np.hstack([first[rows], second[rows], first[rows] - second[rows]])

    def path(data: EvaluationData, train: NDArray[np.intp], test: NDArray[np.intp], seed: int) -> NDArray:
        """Margins of ``test`` after each number of rounds in BOOSTING_ROUNDS, fitted on ``train``."""
        model = HistGradientBoostingClassifier(
            learning_rate=0.05,
            max_iter=BOOSTING_ROUNDS[-1],
            max_leaf_nodes=15,
            min_samples_leaf=20,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        )
        model.fit(np.vstack([features(train, False), features(train, True)]), np.r_[data.y[train], -data.y[train]])
        orders = zip(
            model.staged_decision_function(features(test, False)),
            model.staged_decision_function(features(test, True)),
            strict=True,
        )
        stages = np.array([(ab - ba) / 2 for ab, ba in orders])
        return stages[np.array(BOOSTING_ROUNDS) - 1]

    def margins(data: EvaluationData, train: NDArray[np.intp], test: NDArray[np.intp], seed: int) -> NDArray:
        assert data.groups is not None
        losses = np.zeros(len(BOOSTING_ROUNDS))
        for inner, held in cv_folds(data.domains[train], data.y[train], data.groups[train], 5, seed):
            stages = path(data, train[inner], train[held], seed)
            losses += _log_loss(data.y[train[held]], stages).sum(axis=1)
        return path(data, train, test, seed)[int(np.argmin(losses))]

    return CustomModel("boosted", margins)


def mined_model(texts: list[tuple[str, str]], design: Design) -> CustomModel:
    """Phrases mined on the training rows only, beside the measured concepts."""

    def margins(data: EvaluationData, train: NDArray[np.intp], test: NDArray[np.intp], seed: int) -> NDArray:
        assert data.groups is not None
        found = mine_patterns([texts[i] for i in train], data.y[train], data.groups[train], base=design.X[train])
        extra = np.array(
            [[float(p.phrase in phrases(a)) - float(p.phrase in phrases(b)) for p in found] for a, b in texts]
        ).reshape(len(texts), len(found))
        X = np.hstack([design.X, extra])
        shared = np.concatenate([design.shared_mask, np.ones(len(found), dtype=bool)])
        masks = {d: np.concatenate([m, np.ones(len(found), dtype=bool)]) for d, m in design.domain_masks.items()}
        model = grid_search_cv(
            "hmdr",
            X[train],
            data.y[train],
            data.domains[train],
            shared,
            subset_masks(masks, data.domains[train]),
            groups=data.groups[train],
            random_state=seed,
        ).estimator
        return model.margins(X[test], data.domains[test])

    return CustomModel("hmdr+mined", margins)


def signals(design: Design) -> dict[str, list[float]]:
    """Per concept: share of pairs where the response with more of it was preferred [95% CI], coverage."""
    fitting = design.without_ties()
    out = {}
    for j, concept in enumerate(fitting.concept_ids):
        x = fitting.X[:, j]
        present = x != 0
        if present.sum() < 10:
            continue
        agree = (np.sign(x[present]) == fitting.y[present]).astype(float)
        [ci] = ClusterBootstrap(fitting.domains[present], fitting.groups[present]).interval(agree, n_resamples=1000)
        out[concept] = [100 * ci.estimate, 100 * ci.low, 100 * ci.high, 100 * float(present.mean())]
    return out


def run_set(name: str, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    store, measure_cost = store_for(name)
    old = old_values(name, args.old) if args.old else None
    results: dict[str, Any] = {"measure_seconds_per_1000": measure_cost, "mechanisms": {}}
    ids = [c.id for c in measured_concepts()]
    sides = measured_sides(store, ids) if args.ceiling else None
    for mechanism in sorted({r["mechanism"] for r in store.label_rows()} - SKIP):
        design = load_design(store, mechanism, concept_ids=ids)
        texts = [(a, b) for _, a, b in store.pair_texts(design.pair_ids)]
        fitting, _ = design.for_fitting()
        started = time.perf_counter()
        mine_patterns(
            [(a, b) for _, a, b in store.pair_texts(fitting.pair_ids)],
            fitting.y,
            fitting.groups,
            base=fitting.X,
        )
        mining_cost = 1000 * (time.perf_counter() - started) / max(1, fitting.y.size)
        models: list[Any] = [tfidf_model(texts), "hmdr", mined_model(texts, design)]
        if old is not None:
            X_old = np.array([[old.get((p, c), 0.0) for c in OLD_14] for p in design.pair_ids])
            models.insert(1, matrix_model("hmdr-14", X_old))
        ceiling = []
        if sides is not None:
            stored_ids, measured = sides
            ceiling = [boosted_model(*measured[:, np.searchsorted(stored_ids, design.pair_ids)])]
        entry: dict[str, Any] = {"signals": signals(design), "mining_seconds_per_1000": mining_cost}
        for protocol in ("in-domain", "ood") if args.ood else ("in-domain",):
            try:
                data = design.evaluation_data()
                evaluation = (
                    evaluate_in_domain(models + ceiling, data, repeats=args.repeats)
                    if protocol == "in-domain"
                    else evaluate_out_of_domain(models, data)
                )
                entry[protocol] = evaluation.model_dump()
            except (ValueError, WhyprefError) as error:
                entry[protocol] = {"error": str(error)}
        results["mechanisms"][mechanism] = entry
        console.print(table(f"{name}/{mechanism}", entry))
    store.close()
    return results


def table(title: str, entry: dict[str, Any]) -> Table:
    out = Table(title=f"{title}: non-tie accuracy % [95% CI] and paired difference with longer wins")
    for column in ("protocol", "model", "accuracy", "minus longer", "beats length"):
        out.add_column(column)
    for protocol in ("in-domain", "ood"):
        evaluation = entry.get(protocol)
        if not evaluation:
            continue
        if "error" in evaluation:
            out.add_row(protocol, "-", evaluation["error"][:70], "", "")
            continue
        gaps = {d["model"]: d for d in evaluation["differences"] if d["baseline"] == "longer"}
        for row in evaluation["rows"]:
            gap = gaps.get(row["model"])
            out.add_row(
                protocol,
                row["model"],
                f"{row['non_tie_accuracy']:.1f} [{row['low']:.1f}, {row['high']:.1f}] (n={row['n_pairs']})",
                "" if gap is None else f"{gap['difference']:+.1f} [{gap['low']:+.1f}, {gap['high']:+.1f}]",
                row["explains_more_than_length"] or "",
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", choices=sorted(SETS), default=list(SETS))
    parser.add_argument("--old", metavar="COMMIT", help="Also HMDR on the 14 measured concepts of this commit.")
    parser.add_argument("--no-ood", dest="ood", action="store_false")
    parser.add_argument("--ceiling", action="store_true", help="Also boosted trees on the measurements (in-domain).")
    parser.add_argument("--repeats", type=int, default=1, help="In-domain splits into folds per pair (default 1).")
    args = parser.parse_args()
    console = Console(width=150)
    OUT.mkdir(exist_ok=True)
    started = time.perf_counter()
    results = {name: run_set(name, args, console) for name in args.sets}
    console.print(f"Wall time {time.perf_counter() - started:.0f} s.")
    (OUT / "concepts.json").write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
