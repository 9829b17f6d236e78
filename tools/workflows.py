"""Store-level analyses: fit, evaluate and explain one mechanism from the concept vectors in a store.

The CLI and the MCP server call these; each returns a pydantic model, so both print or serve the
same numbers.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from tools.baselines import MODELS
from tools.concepts import Concept
from tools.design import Design, load_design
from tools.errors import StoreError, WhyprefError
from tools.explain import GlobalLift, bootstrap_global_lift, global_lift, local_lift, plot_global_lift
from tools.hmdr import HierarchicalMultiDomainRegression
from tools.model_names import ModelName, Protocol
from tools.model_selection import CVRow, ProtocolResult, evaluate_in_domain, evaluate_out_of_domain, grid_search_cv
from tools.store import ConceptStore, FittedModelRecord, content_key


class FitReport(BaseModel):
    model_id: str
    mechanism: str
    model: str
    pairs: int
    ties_left_out: int
    concepts: int
    domains: list[str]
    best_params: dict[str, float]
    cv_accuracy: float
    cv_table: list[CVRow]


class LocalConcept(BaseModel):
    concept: str
    value: float
    lift: float  # 100 * (p(x + e_j) - p(x)) / p(x), in percent


class LocalExplanation(BaseModel):
    pair_id: str
    domain: str
    mechanism: str
    label: str | None
    p_a: float  # the model's probability that A is preferred
    concepts: list[LocalConcept]  # by |lift|, largest first, concepts present in the pair first


class GlobalExplanation(BaseModel):
    model_id: str
    mechanism: str
    lift: GlobalLift
    png: str | None = None
    json_path: str | None = None


def _design(store: ConceptStore, mechanism: str, annotator: str | None, source: str | None) -> Design:
    design = load_design(store, mechanism, annotator=annotator, source=source)
    if not np.any(design.X):
        raise WhyprefError(f"mechanism {mechanism!r}: every concept value of its pairs is 0 or missing; annotate first")
    return design


def fit_mechanism(
    store: ConceptStore,
    mechanism: str,
    *,
    model: ModelName = "hmdr",
    annotator: str | None = None,
    source: str | None = None,
    n_splits: int = 5,
) -> FitReport:
    """Choose the configuration by 5-fold CV on the paper's grid, refit on all pairs, store the model."""
    full = _design(store, mechanism, annotator, source)
    design = full.without_ties()
    smallest = min(np.sum(design.y == 1), np.sum(design.y == -1))
    if smallest < 2:
        raise WhyprefError(
            f"mechanism {mechanism!r}: too few labels on one side to fit ({len(design.y)} non-tied pairs)"
        )
    # Folds are stratified by domain x label: tiny sets (demos) get fewer folds rather than failing.
    strata = np.unique(np.char.add(design.domains.astype(str), design.y.astype(str)), return_counts=True)[1]
    n_splits = max(2, min(n_splits, int(strata.max())))
    with warnings.catch_warnings():
        # Tiny sets have strata smaller than the folds (capped above); scikit-learn's notice is expected.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        result = grid_search_cv(
            model, design.X, design.y, design.domains, design.shared_mask, design.domain_masks, n_splits=n_splits
        )
    estimator = result.estimator
    best = next(row for row in result.table if row.params == result.best_params)
    model_id = content_key(
        [mechanism, model, annotator, source, design.concept_ids, design.pair_ids, design.y.tolist(), design.X.tolist()]
    )[:16]
    store.save_model(
        FittedModelRecord(
            id=model_id,
            mechanism=mechanism,
            model_type=model,
            params={**{k: v for k, v in estimator.get_params().items() if isinstance(v, int | float | bool)}},
            payload={
                "concept_ids": design.concept_ids,
                "domains": [str(d) for d in estimator.domains_],
                "classes": estimator.classes_.tolist(),
                "coef_shared": estimator.coef_shared_.tolist(),
                "coef_domain": estimator.coef_domain_.tolist(),
                "annotator": annotator,
                "source": source,
            },
            metrics={"cv_accuracy": best.mean_accuracy, "pairs": len(design.y), "n_iter": int(estimator.n_iter_)},
        )
    )
    return FitReport(
        model_id=model_id,
        mechanism=mechanism,
        model=model,
        pairs=len(design.y),
        ties_left_out=len(full.y) - len(design.y),
        concepts=len(design.concepts),
        domains=[str(d) for d in estimator.domains_],
        best_params=result.best_params,
        cv_accuracy=best.mean_accuracy,
        cv_table=result.table,
    )


def load_model(
    store: ConceptStore, mechanism: str, model_id: str | None = None
) -> tuple[FittedModelRecord, HierarchicalMultiDomainRegression]:
    """A stored model (by id, or the mechanism's latest) as a fitted estimator."""
    records = store.models(mechanism=mechanism)
    if model_id is not None:
        records = [r for r in records if r.id == model_id]
    if not records:
        raise StoreError(
            f"{store.path}: no fitted model for {mechanism!r}"
            + (f" with id {model_id}" if model_id else "")
            + " (run `whypref fit` first)"
        )
    record = records[-1]
    payload = record.payload
    estimator = MODELS[record.model_type](
        **{k: v for k, v in record.params.items() if k in MODELS[record.model_type]().get_params()}
    )
    estimator.classes_ = np.array(payload["classes"])
    estimator.domains_ = np.array(payload["domains"])
    estimator.coef_shared_ = np.array(payload["coef_shared"], dtype=float)
    estimator.coef_domain_ = np.array(payload["coef_domain"], dtype=float).reshape(len(payload["domains"]), -1)
    estimator.n_features_in_ = len(payload["concept_ids"])
    estimator.n_iter_ = record.metrics.get("n_iter", 0)
    return record, estimator


def evaluate_mechanism(
    store: ConceptStore,
    mechanism: str,
    *,
    protocol: Protocol,
    models: list[ModelName],
    annotator: str | None = None,
    source: str | None = None,
    repeats: int = 25,
    seeds: int = 5,
) -> list[ProtocolResult]:
    """The in-domain (repeated random splits) or out-of-domain (leave one domain out) protocol.

    Ties stay in the test sets and count 0.5, as in the method; they never enter training.
    """
    d = _design(store, mechanism, annotator, source)
    if protocol == "ood" and len(set(d.domains)) < 2:
        raise WhyprefError("the out-of-domain protocol needs at least two domains")
    if protocol == "ood" and "specific" in models:
        raise WhyprefError("the specific-only model cannot predict an unseen domain (no OOD protocol)")
    try:
        return [
            evaluate_in_domain(model, d.X, d.y, d.domains, d.shared_mask, d.domain_masks, n_repeats=repeats)
            if protocol == "in-domain"
            else evaluate_out_of_domain(model, d.X, d.y, d.domains, d.shared_mask, d.domain_masks, n_seeds=seeds)
            for model in models
        ]
    except ValueError as error:  # a split or tuning fold of a tiny set can hold one label only
        raise WhyprefError(f"evaluating {mechanism!r} failed ({error}): too few pairs per domain and label") from error


def explain_global(
    store: ConceptStore,
    mechanism: str,
    *,
    model_id: str | None = None,
    domain: str | None = None,
    top_k: int = 10,
    n_bootstrap: int = 0,
    out_dir: Path | None = None,
) -> GlobalExplanation:
    """Global lift per domain (shared and domain parts), optionally with bootstrap intervals, as PNG + JSON."""
    record, estimator = load_model(store, mechanism, model_id)
    names = [c.name for c in model_concepts(store, record)]
    if n_bootstrap:
        design = load_design(
            store,
            mechanism,
            annotator=record.payload.get("annotator"),
            source=record.payload.get("source"),
            concept_ids=record.payload["concept_ids"],
        ).without_ties()
        try:
            lift = bootstrap_global_lift(
                estimator,
                design.X,
                design.y,
                design.domains,
                names,
                design.shared_mask,
                design.domain_masks,
                n_bootstrap=n_bootstrap,
            )
        except ValueError as error:  # a resample of a tiny set can hold one label only
            raise WhyprefError(
                f"bootstrap on {mechanism!r} failed ({error}): too few pairs for resampling; try --bootstrap 0"
            ) from error
    else:
        lift = global_lift(estimator, names)
    if domain is not None:
        if domain not in {entry.domain for entry in lift.domains}:
            raise WhyprefError(
                f"model {record.id} has no domain {domain!r} (has: {', '.join(e.domain for e in lift.domains)})"
            )
        lift = lift.model_copy(update={"domains": [e for e in lift.domains if e.domain == domain]})
    lift = lift.top(top_k)
    explanation = GlobalExplanation(model_id=record.id, mechanism=mechanism, lift=lift)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{_safe(mechanism)}-{record.id}" + (f"-{_safe(domain)}" if domain else "")
        explanation.png = str(plot_global_lift(lift, out_dir / f"{stem}.png", top_k=top_k))
        explanation.json_path = str(out_dir / f"{stem}.json")
        Path(explanation.json_path).write_text(explanation.model_dump_json(indent=1), encoding="utf-8")
    return explanation


def explain_pair(store: ConceptStore, mechanism: str, pair_id: str, *, model_id: str | None = None) -> LocalExplanation:
    """Local lift of every concept for one stored pair."""
    record, estimator = load_model(store, mechanism, model_id)
    pair = store.pair(pair_id)
    concepts = model_concepts(store, record)
    annotator = record.payload.get("annotator")
    x = load_pair_vector(store, pair_id, [c.id for c in concepts], annotator)
    lifts = local_lift(estimator, x[None, :], np.array([pair.domain]))[0]
    p_a = float(
        estimator.predict_proba(x[None, :], domains=np.array([pair.domain]))[0, list(estimator.classes_).index(1)]
    )
    stored = store.label(pair_id, mechanism)
    label = stored.verdict.value if stored else None
    order = sorted(range(len(concepts)), key=lambda j: (x[j] == 0, -abs(lifts[j])))
    return LocalExplanation(
        pair_id=pair_id,
        domain=pair.domain,
        mechanism=mechanism,
        label=label,
        p_a=p_a,
        concepts=[LocalConcept(concept=concepts[j].name, value=float(x[j]), lift=float(lifts[j])) for j in order],
    )


def load_pair_vector(store: ConceptStore, pair_id: str, concept_ids: list[str], annotator: str | None) -> np.ndarray:
    query = "select concept_id, value from concept_values where pair_id = ?" + (
        " and annotator = ?" if annotator else ""
    )
    values = {
        row["concept_id"]: row["value"] for row in store.db.query(query, [pair_id, *([annotator] if annotator else [])])
    }
    return np.array([values.get(c, 0.0) for c in concept_ids])


def model_concepts(store: ConceptStore, record: FittedModelRecord) -> list[Concept]:
    """The concepts of a stored model, in its column order."""
    by_id = {c.id: c for c in store.concepts()}
    missing = [c for c in record.payload["concept_ids"] if c not in by_id]
    if missing:
        raise StoreError(f"model {record.id} uses concepts no longer in the store: {', '.join(missing[:5])}; refit it")
    return [by_id[c] for c in record.payload["concept_ids"]]


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
