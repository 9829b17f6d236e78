"""One self-contained HTML page that explains a store's mechanisms: what was labelled, how well the
concepts predict each mechanism beside "the longer response wins", what each mechanism rewards per
domain (shared and domain parts, with intervals), a card per concept with real pairs where it
separated the chosen response from the rejected one, where two mechanisms differ, what the LLM
contributed, and warnings where the numbers are thin.

The page needs no network when viewed: styles are inline and the bar charts are drawn in HTML, so
it can be mailed or attached as one file. The template is ``tools/templates/report.html``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field, JsonValue

from tools.comparison import MechanismDifferences, weight_differences
from tools.concepts import Concept, ConceptKind
from tools.errors import WhyprefError
from tools.explain import DomainLift, local_lift
from tools.feedback import swap_failure_rates
from tools.hmdr import HierarchicalMultiDomainRegression
from tools.scores import Evaluation
from tools.stats import store_stats
from tools.store import ConceptStore, FittedModelRecord
from tools.workflows import GlobalExplanation, explain_global, load_model, model_concepts, model_design

SMALL_DOMAIN = 50
"""A domain with fewer non-tie pairs than this gets a warning: its lifts rest on too few pairs."""
SMALL_SET = 200
"""A mechanism with fewer non-tie pairs than this gets a warning: its accuracy interval is wide."""
EXAMPLE_CHARS = 700  # each text of an example pair, at most
LLM_KINDS = (ConceptKind.LLM, ConceptKind.GENERIC)


class Example(BaseModel):
    """A pair where the concept pushed the prediction towards the response the mechanism chose."""

    pair_id: str
    mechanism: str
    domain: str
    lift: float = Field(description="Local lift towards the chosen response (pp).")
    query: str
    chosen: str
    rejected: str


class Where(BaseModel):
    mechanism: str
    domain: str
    lift: float
    low: float | None
    high: float | None


class ConceptCard(BaseModel):
    name: str
    definition: str
    kind: str
    provenance: str
    where: list[Where]
    examples: list[Example]


class MechanismSection(BaseModel):
    mechanism: str
    model_id: str
    n_pairs: int
    evaluation: Evaluation | None
    verdict: str | None
    domains: list[DomainLift]
    scale: float = Field(description="The largest |lift| or interval end drawn (pp): the bars' half width.")
    warnings: list[str]


class LLMContribution(BaseModel):
    concepts: list[str]
    weighted: list[str] = Field(description="LLM concepts with a non-zero lift somewhere.")
    pairs_valued: int
    swap_failure: float | None = Field(description="Share of Comp-rep answers that flipped with the order.")


class PlantedRule(BaseModel):
    """A part a synthetic set's hidden rule rewards, and the driver that shows it (None: missed)."""

    mechanism: str
    domain: str
    part: str
    concept: str | None = Field(description="The driver that shows the part, if the explanation has one.")
    lift: float | None = None


class Report(BaseModel):
    title: str
    created: str
    store: str
    pairs: int
    sources: dict[str, int]
    counts: list[dict[str, JsonValue]] = Field(description="Per domain: labels per mechanism.")
    ties: dict[str, float] = Field(description="Per mechanism: the share of its labels that are ties.")
    mechanisms: list[MechanismSection]
    concepts: list[ConceptCard]
    differences: list[MechanismDifferences]
    llm: LLMContribution
    planted: list[PlantedRule] = Field(default_factory=list)
    warnings: list[str]


def _clip(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS].rstrip() + " [...]"


def _section(
    store: ConceptStore,
    record: FittedModelRecord,
    n_bootstrap: int,
    top_k: int,
    explanation: GlobalExplanation | None,
) -> MechanismSection:
    mechanism = record.mechanism
    if explanation is None or explanation.model_id != record.id:
        explanation = explain_global(store, mechanism, model_id=record.id, top_k=top_k, n_bootstrap=n_bootstrap)
    evaluation = record.metrics.evaluation
    model_name = record.model_type
    n_pairs = record.metrics.pairs
    warnings = explanation_warnings(explanation, n_pairs)
    verdict = None
    if evaluation is None:
        warnings.append("no held-out accuracy stored with this model: refit with `whypref fit` to get one")
    else:
        verdict = evaluation.verdict(model_name)
    ends = [abs(v) for e in explanation.domains for c in e.concepts for v in (c.lift, c.low or 0.0, c.high or 0.0)]
    return MechanismSection(
        mechanism=mechanism,
        model_id=record.id,
        n_pairs=n_pairs,
        evaluation=evaluation,
        verdict=verdict,
        domains=explanation.domains,
        scale=max([5.0, *ends]),
        warnings=warnings,
    )


def explanation_warnings(explanation: GlobalExplanation, n_pairs: int) -> list[str]:
    """What a reader should be told before trusting an explanation: small samples, domains noted or
    without drivers, lifts the bootstrap does not pin down."""
    warnings = []
    if n_pairs < SMALL_SET:
        warnings.append(f"only {n_pairs} non-tie pairs: accuracy and lifts are rough")
    for entry in explanation.domains:
        if entry.n_pairs < SMALL_DOMAIN:
            warnings.append(f"{entry.domain}: {entry.n_pairs} pairs, too few for its lifts to mean much")
        warnings += [f"{entry.domain}: {note}" for note in entry.notes]
        unstable = [c.concept for c in entry.concepts if c.unstable]
        if unstable:
            named = ", ".join(unstable)
            warnings.append(f"{entry.domain}: unstable lift (interval crosses 0, or rarely selected): {named}")
        if not entry.concepts:
            warnings.append(f"{entry.domain}: no concept carries weight")
    return warnings


def _examples(
    store: ConceptStore, record: FittedModelRecord, estimator: HierarchicalMultiDomainRegression, per_concept: int
) -> dict[str, list[Example]]:
    """Per concept id, the pairs where its local lift pushed hardest towards the chosen response (at
    most one per query group, so the examples are not one question asked three times)."""
    mechanism = record.mechanism
    concepts = model_concepts(store, record)
    design, _ = model_design(store, mechanism, record)
    lifts = local_lift(estimator, design.X, design.domains) * design.y[:, None]  # towards the chosen response
    found: dict[str, list[Example]] = {}
    for j, concept in enumerate(concepts):
        rows: list[int] = []
        groups: set[int] = set()
        for i in np.argsort(-lifts[:, j], kind="stable"):
            if lifts[i, j] <= 0 or len(rows) == per_concept:
                break
            if design.groups[i] not in groups:
                rows.append(int(i))
                groups.add(design.groups[i])
        texts = store.pair_texts([design.pair_ids[i] for i in rows])
        found[concept.id] = [
            Example(
                pair_id=design.pair_ids[i],
                mechanism=mechanism,
                domain=str(design.domains[i]),
                lift=float(lifts[i, j]),
                query=_clip(query),
                chosen=_clip(a if design.y[i] > 0 else b),
                rejected=_clip(b if design.y[i] > 0 else a),
            )
            for i, (query, a, b) in zip(rows, texts, strict=True)
        ]
    return found


def _provenance(concept: Concept) -> str:
    items = [f"{k}: {v}" for k, v in concept.provenance.items() if not isinstance(v, dict | list)]
    return "; ".join(items)[:300]


def _cards(
    store: ConceptStore,
    sections: Sequence[MechanismSection],
    models: Sequence[tuple[FittedModelRecord, HierarchicalMultiDomainRegression]],
    per_concept: int,
) -> tuple[list[ConceptCard], dict[str, list[Where]]]:
    """A card for every concept that drives some mechanism in some domain, most lift first."""
    by_name = {c.name: c for c in store.concepts()}
    where: dict[str, list[Where]] = {}
    for section in sections:
        for entry in section.domains:
            for c in entry.concepts:
                where.setdefault(c.concept, []).append(
                    Where(mechanism=section.mechanism, domain=entry.domain, lift=c.lift, low=c.low, high=c.high)
                )
    examples: dict[str, list[Example]] = {}
    for record, estimator in models:
        for concept_id, found in _examples(store, record, estimator, per_concept).items():
            examples.setdefault(concept_id, []).extend(found)
    order = sorted(where, key=lambda name: -max(abs(w.lift) for w in where[name]))
    cards = []
    for name in order:
        concept = by_name.get(name)
        if concept is None:
            continue
        shown = sorted(examples.get(concept.id, []), key=lambda e: -e.lift)[:per_concept]
        cards.append(
            ConceptCard(
                name=name,
                definition=concept.definition,
                kind=concept.kind.value,
                provenance=_provenance(concept),
                where=sorted(where[name], key=lambda w: -abs(w.lift)),
                examples=shown,
            )
        )
    return cards, where


def _llm(store: ConceptStore, where: dict[str, list[Where]]) -> LLMContribution:
    concepts = [c for c in store.concepts() if c.kind in LLM_KINDS]
    ids = [c.id for c in concepts]
    valued = store.valued_pairs(ids)
    rates = [r for r in swap_failure_rates(store, ids, valued).values() if r is not None] if ids else []
    return LLMContribution(
        concepts=[c.name for c in concepts],
        weighted=[c.name for c in concepts if c.name in where],
        pairs_valued=len(valued),
        swap_failure=float(np.mean(rates)) if rates else None,
    )


def build_report(
    store: ConceptStore,
    mechanisms: Sequence[str],
    *,
    n_bootstrap: int = 100,
    top_k: int = 8,
    examples: int = 3,
    planted: Sequence[PlantedRule] = (),
    title: str | None = None,
    explanations: Sequence[GlobalExplanation] = (),
) -> Report:
    """Everything the page shows, from the latest stored model of each mechanism (``explanations``
    already computed for those models are used as they are)."""
    if not mechanisms:
        raise WhyprefError("name at least one mechanism to report on")
    known = {m.name for m in store.mechanisms()}
    unknown = [m for m in mechanisms if m not in known]
    if unknown:
        named, listed = ", ".join(map(repr, unknown)), ", ".join(sorted(known))
        raise WhyprefError(f"no mechanism {named} in {store.path} (known: {listed})")
    stats = store_stats(store)
    done = {e.mechanism: e for e in explanations}
    models = [load_model(store, m) for m in mechanisms]  # each mechanism's latest model, loaded once
    sections = [_section(store, record, n_bootstrap, top_k, done.get(record.mechanism)) for record, _ in models]
    cards, where = _cards(store, sections, models, examples)
    differences = []
    warnings = []
    for other in mechanisms[1:]:
        try:
            differences.append(weight_differences(store, mechanisms[0], other, n_bootstrap=n_bootstrap))
        except WhyprefError as error:
            warnings.append(f"{mechanisms[0]} vs {other} not compared: {error}")
    ties = {m.mechanism: m.share_tie for m in stats.mechanisms}
    counts: list[dict[str, JsonValue]] = []
    for domain, labels in sorted(stats.counts.items()):
        row: dict[str, JsonValue] = {"domain": domain}
        row |= {m: labels.get(m, 0) for m in mechanisms}
        counts.append(row)
    llm = _llm(store, where)
    if llm.concepts and not llm.weighted:
        warnings.append(
            f"none of the {len(llm.concepts)} LLM concepts carries weight: the explanation comes from measured "
            "and mined concepts only"
        )
    for m in mechanisms:
        if ties.get(m, 0) > 0.3:
            warnings.append(f"{m}: {100 * ties[m]:.0f}% of its labels are ties (left out of fitting and accuracy)")
    return Report(
        title=title or f"Why {', '.join(mechanisms)} prefer what they prefer",
        created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        store=str(store.path),
        pairs=stats.pairs,
        sources=stats.sources,
        counts=counts,
        ties={m: ties.get(m, 0.0) for m in mechanisms},
        mechanisms=sections,
        concepts=cards,
        differences=differences,
        llm=llm,
        planted=list(planted),
        warnings=warnings,
    )


def render_report(report: Report) -> str:
    """The page's HTML: one file, no external resource."""
    environment = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("report.html").render(report=report)


def write_report(report: Report, path: Path) -> Path:
    page = render_report(report)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as error:
        raise WhyprefError(f"{path}: cannot write the report ({error.strerror or error})") from error
    return path
