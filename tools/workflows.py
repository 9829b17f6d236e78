"""Store-level analyses: fit, evaluate and explain one mechanism from the concept vectors in a store.

The CLI and the MCP server call these; each returns a pydantic model, so both print or serve the
same numbers. ``fit`` reports the held-out accuracy of the in-domain protocol (the same function and
defaults as ``evaluate``), so the two never show two different numbers for one model.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from tools.concepts import Concept
from tools.design import Design, FittingNotes, load_design
from tools.errors import StoreError, WhyprefError
from tools.explain import GlobalLift, bootstrap_global_lift, first_preferred, global_lift, local_lift, plot_global_lift
from tools.fitted import ModelMetrics, ModelPayload
from tools.hmdr import HierarchicalMultiDomainRegression
from tools.model_names import DEFAULT_BOOTSTRAP, EvaluationProtocol, ModelVariant
from tools.model_selection import (
    evaluate_in_domain,
    evaluate_out_of_domain,
    grid_search_cv,
)
from tools.result_cache import code_version, stored_result
from tools.scores import CVRow, Evaluation
from tools.store import ConceptStore, FittedModelRecord, content_key


class FitReport(BaseModel):
    model_id: str
    mechanism: str
    model: str
    pairs: int = Field(description="Non-tie pairs the model was fitted on.")
    ties_left_out: int
    concepts: int
    domains: list[str]
    params: dict[str, float] = Field(description="The penalties chosen by grouped 5-fold CV (lowest log loss).")
    cv: CVRow = Field(description="The chosen configuration's CV scores (used to choose it: optimistic).")
    evaluation: Evaluation | None = Field(
        description="Held-out accuracy by the in-domain protocol (nested, grouped by query), beside length."
    )
    evaluation_note: str | None = Field(default=None, description="Why the evaluation is missing.")
    notes: list[str] = Field(default_factory=list, description="Domains skipped or restricted, models that coincide.")
    from_store: bool = Field(
        default=False,
        description="Fitted earlier on the same inputs (pairs, values, concepts, choices, code): read back.",
    )


class LocalConcept(BaseModel):
    concept: str
    value: float = Field(description="The concept's value on the pair, A minus B.")
    lift: float = Field(description="What this difference did to P(A preferred), in probability points.")


class LocalExplanation(BaseModel):
    pair_id: str
    domain: str
    mechanism: str
    label: str | None
    p_a: float = Field(description="The model's probability that A is preferred.")
    p_b: float = Field(description="The model's probability that B is preferred.")
    concepts: list[LocalConcept] = Field(description="Concepts that moved the prediction, largest |lift| first.")
    values: dict[str, float] = Field(description="The pair's value of every concept of the model (A minus B).")


class GlobalExplanation(GlobalLift):
    """What a mechanism rewards: the drivers of each domain (lifts in probability points)."""

    model_id: str
    mechanism: str
    accuracy: str | None = Field(default=None, description="Held-out non-tie accuracy beside length, if known.")
    png: str | None = None
    json_path: str | None = None


def _design(store: ConceptStore, mechanism: str, annotator: str | None, source: str | None) -> Design:
    design = load_design(store, mechanism, annotator=annotator, source=source)
    if not np.any(design.X):
        raise WhyprefError(f"mechanism {mechanism!r}: every concept value of its pairs is 0 or missing; annotate first")
    return design


def _coincide(design: Design, models: list[ModelVariant]) -> tuple[list[ModelVariant], list[str]]:
    """Flat and shared are one model when every concept is shared: keep one, and say so."""
    if "flat" in models and "shared" in models and design.shared_mask.all():
        note = "flat and shared coincide here (every concept is shared): reported once, as shared"
        return [m for m in models if m != "flat"], [note]
    return models, []


def fit_mechanism(
    store: ConceptStore,
    mechanism: str,
    *,
    model: ModelVariant = ModelVariant.HMDR,
    annotator: str | None = None,
    source: str | None = None,
    evaluate: bool = True,
    grouped: bool = True,
) -> FitReport:
    """Choose the penalties by grouped 5-fold CV, refit on all non-tie pairs, store the model, and
    report its held-out accuracy by the in-domain protocol beside the length baselines. A model the
    store holds for the same inputs is reported from the store, not fitted again."""
    full = _design(store, mechanism, annotator, source)
    design, fitting_notes = full.for_fitting()
    notes = fitting_notes.lines()
    if min(np.sum(design.y == 1), np.sum(design.y == -1)) < 2:
        raise WhyprefError(
            f"mechanism {mechanism!r}: too few labels on one side to fit ({len(design.y)} non-tied pairs)"
        )
    if model in ("flat", "shared") and design.shared_mask.all():
        notes.append("flat and shared coincide here (every concept is shared)")
    # The id names every input (the whole design, ties and lengths included, as the evaluation reads them;
    # the choices; the code), so the store answers a repeated fit.
    model_id = content_key([mechanism, model, annotator, source, grouped, code_version(), full.digest()])[:16]
    record = store.model(model_id)
    if record is not None and record.metrics.cv is None:  # stored by an older whypref: fitted again
        record = None
    from_store = record is not None
    if record is None:
        record = _fit_record(model_id, mechanism, model, design, annotator, source, grouped, notes)
    if evaluate and record.metrics.evaluation is None and record.metrics.evaluation_note is None:
        metrics = record.metrics.model_copy()
        try:
            metrics.evaluation = _evaluate(full, EvaluationProtocol.IN_DOMAIN, [model], grouped=grouped)
        except (WhyprefError, ValueError) as error:
            metrics.evaluation_note = f"held-out accuracy not computed: {error}"
        record = record.model_copy(update={"metrics": metrics})
    record = store.save_model(record)
    assert record.metrics.cv is not None  # set by _fit_record, or the record was refitted
    return FitReport(
        model_id=model_id,
        mechanism=mechanism,
        model=model,
        pairs=len(design.y),
        ties_left_out=len(full.y) - len(design.y),
        concepts=len(design.concepts),
        domains=record.payload.domains,
        params=record.metrics.cv.params,
        cv=record.metrics.cv,
        evaluation=record.metrics.evaluation,
        evaluation_note=record.metrics.evaluation_note,
        notes=record.payload.notes,
        from_store=from_store,
    )


def _fit_record(
    model_id: str,
    mechanism: str,
    model: ModelVariant,
    design: Design,
    annotator: str | None,
    source: str | None,
    grouped: bool,
    notes: list[str],
) -> FittedModelRecord:
    """Choose the penalties by grouped 5-fold CV and refit on all of ``design``'s pairs."""
    try:
        result = grid_search_cv(
            model,
            design.X,
            design.y,
            design.domains,
            design.shared_mask,
            design.domain_masks,
            groups=design.groups if grouped else None,
        )
    except ValueError as error:  # a fold of a tiny set holds one label only
        raise WhyprefError(f"fitting {mechanism!r} failed ({error}): too few pairs per domain and label") from error
    estimator = result.estimator
    chosen = next(row for row in result.table if row.params == result.best_params)
    return FittedModelRecord(
        id=model_id,
        mechanism=mechanism,
        model_type=model,
        params={k: v for k, v in estimator.get_params().items() if isinstance(v, int | float | bool)},
        payload=ModelPayload.of(estimator, design.concept_ids, annotator=annotator, source=source, notes=notes),
        metrics=ModelMetrics(cv_log_loss=chosen.log_loss, pairs=len(design.y), cv=chosen),
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
    return record, record.estimator()


def _evaluate(
    design: Design, protocol: EvaluationProtocol, models: list[ModelVariant], *, repeats: int = 1, grouped: bool = True
) -> Evaluation:
    fitting, fitting_notes = design.for_fitting()
    notes = fitting_notes.lines()
    models, coincide = _coincide(design, models)
    data = replace(design.evaluation_data(grouped=grouped), domain_masks=fitting.domain_masks)
    if protocol == "in-domain":
        evaluation = evaluate_in_domain(models, data, repeats=repeats)
    else:
        evaluation = evaluate_out_of_domain(models, data, repeats=repeats)
    return evaluation.model_copy(update={"notes": [*evaluation.notes, *notes, *coincide]})


def evaluate_mechanism(
    store: ConceptStore,
    mechanism: str,
    *,
    protocol: EvaluationProtocol,
    models: list[ModelVariant],
    annotator: str | None = None,
    source: str | None = None,
    repeats: int = 1,
    grouped: bool = True,
) -> Evaluation:
    """The in-domain (nested grouped cross-validation) or out-of-domain (leave one domain out) protocol:
    non-tie accuracy with intervals over held-out pairs, beside the length baselines."""
    d = _design(store, mechanism, annotator, source)
    if protocol == "ood" and len(set(d.domains)) < 2:
        raise WhyprefError("the out-of-domain protocol needs at least two domains")
    if protocol == "ood" and "specific" in models:
        raise WhyprefError("the specific-only model cannot predict an unseen domain (no OOD protocol)")
    try:
        return _evaluate(d, protocol, models, repeats=repeats, grouped=grouped)
    except ValueError as error:  # a split or tuning fold of a tiny set can hold one label only
        raise WhyprefError(f"evaluating {mechanism!r} failed ({error}): too few pairs per domain and label") from error


def model_design(store: ConceptStore, mechanism: str, record: FittedModelRecord) -> tuple[Design, FittingNotes]:
    payload = record.payload
    design = load_design(
        store, mechanism, annotator=payload.annotator, source=payload.source, concept_ids=payload.concept_ids
    )
    return design.for_fitting()


def accuracy_line(record: FittedModelRecord) -> str | None:
    """ "held-out 72.1% [69.4, 74.8] (non-tie); explains more than length: not shown", if evaluated."""
    row = record.held_out
    if row is None:
        return None
    return (
        f"held-out {row.non_tie_accuracy:.1f}% [{row.low:.1f}, {row.high:.1f}] (non-tie); "
        f"explains more than length: {row.explains_more_than_length or 'not shown'}"
    )


def explain_global(
    store: ConceptStore,
    mechanism: str,
    *,
    model_id: str | None = None,
    domain: str | None = None,
    top_k: int = 10,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    out_dir: Path | None = None,
) -> GlobalExplanation:
    """Global lift per domain (pp; shared and specific parts), with bootstrap intervals and selection
    frequencies unless ``n_bootstrap`` is 0, as PNG + JSON when ``out_dir`` is given."""
    record, estimator = load_model(store, mechanism, model_id)
    names = [c.name for c in model_concepts(store, record)]
    design, notes = model_design(store, mechanism, record)
    by_domain = {d: notes.of_domain(d) for d in set(design.domains.tolist())}
    if domain is not None and domain not in by_domain:  # before any work: a refused call changes nothing
        raise WhyprefError(f"model {record.id} has no domain {domain!r} (has: {', '.join(sorted(by_domain))})")

    def bootstrap() -> GlobalLift:
        try:
            return bootstrap_global_lift(
                estimator,
                design.X,
                design.y,
                design.domains,
                names,
                design.shared_mask,
                design.domain_masks,
                groups=design.groups,
                notes=by_domain,
                n_bootstrap=n_bootstrap,
            )
        except ValueError as error:  # a resample of a tiny set can hold one label only
            raise WhyprefError(
                f"bootstrap on {mechanism!r} failed ({error}): too few pairs for resampling; try --bootstrap 0"
            ) from error

    if n_bootstrap:  # the model's id names its weights; the design, the rows it is explained on now
        inputs = [record.id, design.digest(), names, n_bootstrap]
        lift = stored_result(store, "global lift", inputs, GlobalLift, bootstrap)
    else:
        lift = global_lift(estimator, design.X, design.domains, names, notes=by_domain)
    if domain is not None:
        lift = lift.model_copy(update={"domains": [e for e in lift.domains if e.domain == domain]})
    lift = lift.top(top_k)
    explanation = GlobalExplanation(
        **lift.model_dump(), model_id=record.id, mechanism=mechanism, accuracy=accuracy_line(record)
    )
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{safe_name(mechanism)}-{record.id}" + (f"-{safe_name(domain)}" if domain else "")
        title = f"What {mechanism} rewards: {len(design.y)} pairs" + (
            f"; {explanation.accuracy}" if explanation.accuracy else ""
        )
        explanation.png = str(plot_global_lift(lift, out_dir / f"{stem}.png", top_k=top_k, title=title))
        explanation.json_path = str(out_dir / f"{stem}.json")
        Path(explanation.json_path).write_text(explanation.model_dump_json(indent=1), encoding="utf-8")
    return explanation


def explain_pair(store: ConceptStore, mechanism: str, pair_id: str, *, model_id: str | None = None) -> LocalExplanation:
    """Local lift of every concept that moved the prediction for one stored pair."""
    record, estimator = load_model(store, mechanism, model_id)
    pair = store.pair(pair_id)
    concepts = model_concepts(store, record)
    x = load_pair_vector(store, pair_id, [c.id for c in concepts], record.payload.annotator)
    domains = np.array([pair.domain])
    lifts = local_lift(estimator, x[None, :], domains)[0]
    margin = estimator.decision_function(x[None, :], domains)
    p_a = float(first_preferred(margin)[0])
    p_b = float(first_preferred(-margin)[0])
    stored = store.label(pair_id, mechanism)
    order = [j for j in np.argsort(-np.abs(lifts), kind="stable") if lifts[j] != 0]
    return LocalExplanation(
        pair_id=pair_id,
        domain=pair.domain,
        mechanism=mechanism,
        label=stored.verdict.value if stored else None,
        p_a=p_a,
        p_b=p_b,
        concepts=[LocalConcept(concept=concepts[j].name, value=float(x[j]), lift=float(lifts[j])) for j in order],
        values={c.name: float(v) for c, v in zip(concepts, x, strict=True)},
    )


def load_pair_vector(store: ConceptStore, pair_id: str, concept_ids: list[str], annotator: str | None) -> np.ndarray:
    values = store.pair_values(pair_id, annotator)
    return np.array([values.get(c, 0.0) for c in concept_ids])


def model_concepts(store: ConceptStore, record: FittedModelRecord) -> list[Concept]:
    """The concepts of a stored model, in its column order."""
    by_id = {c.id: c for c in store.concepts()}
    ids = record.payload.concept_ids
    missing = [c for c in ids if c not in by_id]
    if missing:
        raise StoreError(f"model {record.id} uses concepts no longer in the store: {', '.join(missing[:5])}; refit it")
    return [by_id[c] for c in ids]


def safe_name(name: str) -> str:
    """A file-name-safe, bounded rendering of a name (mechanism, domain)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
    if len(safe.encode()) > 60:  # file names have a limit in bytes; keep them unique with a hash
        while len(safe.encode()) > 48:
            safe = safe[:-1]
        safe += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return safe
