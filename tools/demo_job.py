"""The main job on the demo set: write it, import it, discover and annotate concepts, fit HMDR for
each mechanism, and write an explanation report (charts, JSON and a short markdown summary)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from tools.annotation import Annotation, AnnotationConfig
from tools.demo_data import DEMO_MECHANISMS, planted_parts, shows_part, write_demo_set
from tools.discovery import Discovery, DiscoveryConfig
from tools.importers import import_file
from tools.llm import LLM
from tools.measured import MEASURES
from tools.mining import mine_store
from tools.pairs import Pair
from tools.progress import Progress
from tools.report import LLM_KINDS, PlantedRule, build_report, write_report
from tools.store import ConceptStore
from tools.workflows import FitReport, GlobalExplanation, explain_global, fit_mechanism

# Small on purpose: the embedded model takes seconds per call on two cores.
# No query tagging: it would ask the LLM about every one of the 300 pairs to stratify 3 batches.
DEMO_DISCOVERY = DiscoveryConfig(
    batches_per_domain=1, batch_size=4, concepts_per_batch=3, include_generic=False, min_pairs_to_tag=100_000
)
TOP_K = 8  # drivers shown per domain


class DemoReport(BaseModel):
    db: str
    report_dir: str
    html: str = Field(description="The self-contained HTML report.")
    pairs: int
    llm_pairs: int = Field(description="Pairs the LLM annotated (the others have measured and mined concepts).")
    concepts: int
    fits: list[FitReport]
    explanations: list[GlobalExplanation]
    rules: list[PlantedRule]
    summary: str
    usage: str | None  # the LLM's cost line; None without an LLM
    llm_name: str | None  # the LLM that discovered and annotated; None without one


def run_demo(
    workdir: Path,
    per_domain: int,
    make_llm: Callable[[ConceptStore], LLM] | None,
    progress: Progress | None = None,
    llm_per_domain: int = 2,
) -> DemoReport:
    """``make_llm`` builds the LLM over the demo store (its cache); None: measured concepts only. Code
    measures every pair and mines phrases for free; the LLM discovers and annotates only
    ``llm_per_domain`` pairs per domain (the embedded model takes seconds per call)."""
    data_file = workdir / "demo_pairs.jsonl"
    write_demo_set(data_file, per_domain)
    db = workdir / "demo.db"
    report_dir = workdir / "report"
    with ConceptStore(db) as store:
        import_file(store, data_file, "whypref")
        store.upsert_mechanisms(DEMO_MECHANISMS)
        pairs = list(store.pairs())
        llm = make_llm(store) if make_llm is not None else None
        by_domain: dict[str, list[Pair]] = {}
        for pair in pairs:
            by_domain.setdefault(pair.domain, []).append(pair)
        subset = [p for domain in sorted(by_domain) for p in by_domain[domain][:llm_per_domain]]
        if llm is not None:
            Discovery(store, llm, DEMO_DISCOVERY, progress).run()
            config = AnnotationConfig.choose(embedded=llm.embedded, relevance=False)
            Annotation(store, llm, config, progress).run(subset)
        Annotation(store, None, AnnotationConfig(llm_concepts=False)).run(pairs)
        mined = mine_store(store, "human")  # phrases beyond the measured concepts (the safety note has no measure)
        fits, explanations, rules = [], [], []
        for mechanism in (m.name for m in DEMO_MECHANISMS):
            fits.append(fit_mechanism(store, mechanism))
            explanation = explain_global(store, mechanism, top_k=TOP_K, out_dir=report_dir)
            explanations.append(explanation)
            rules += check_rules(mechanism, explanation)
        llm_concepts = [c.name for c in store.concepts() if c.kind in LLM_KINDS]
        summary = _summary(fits, explanations, rules, llm, llm_concepts, len(subset), len(pairs), mined.concepts)
        (report_dir / "report.md").write_text(summary, encoding="utf-8")
        mechanisms = [m.name for m in DEMO_MECHANISMS]
        html = report_dir / "report.html"
        title = "whypref demo: " + " and ".join(mechanisms)
        write_report(build_report(store, mechanisms, planted=rules, title=title, explanations=explanations), html)
        return DemoReport(
            db=str(db),
            report_dir=str(report_dir),
            html=str(html),
            pairs=len(pairs),
            llm_pairs=len(subset) if llm is not None else 0,
            concepts=len(store.concepts()),
            fits=fits,
            explanations=explanations,
            rules=rules,
            summary=summary,
            usage=llm.usage.line() if llm else None,
            llm_name=llm.name if llm else None,
        )


def check_rules(mechanism: str, explanation: GlobalExplanation) -> list[PlantedRule]:
    """Each planted part of the mechanism's rule, per domain: found when a driver showing it has a
    positive lift whose bootstrap interval (when there is one) excludes 0."""
    checks = []
    for entry in explanation.domains:
        for part in planted_parts(mechanism, entry.domain):
            found = next(
                (
                    c
                    for c in entry.concepts
                    if shows_part(c.concept, part) and c.lift > 0 and (c.low is None or c.low > 0)
                ),
                None,
            )
            checks.append(
                PlantedRule(
                    mechanism=mechanism,
                    domain=entry.domain,
                    part=part,
                    concept=found.concept if found else None,
                    lift=found.lift if found else None,
                )
            )
    return checks


def _summary(
    fits: list[FitReport],
    explanations: list[GlobalExplanation],
    rules: list[PlantedRule],
    llm: LLM | None,
    llm_concepts: list[str],
    llm_pairs: int,
    pairs: int,
    mined: list[str],
) -> str:
    lines = ["# whypref demo report", ""]
    if llm is None:
        lines.append(f"Concepts: measured by code and mined phrases only (no LLM), on {pairs} pairs.")
    else:
        weighted = {c.concept for e in explanations for d in e.domains for c in d.concepts} & set(llm_concepts)
        lines.append(
            f"LLM: {llm.name}. {llm.usage.line()}. It proposed {len(llm_concepts)} concepts and annotated "
            f"{llm_pairs} of {pairs} pairs; {len(weighted)} of its concepts carry weight in an explanation"
            + (" (the embedded model is demo-grade: expect little from it)." if llm.embedded else ".")
        )
    lines.append(
        f"Code measured {len(MEASURES)} concepts on every pair; mining found {len(mined)} phrases beyond them"
        + (f" ({', '.join(mined)})." if mined else ".")
    )
    for fit, explanation in zip(fits, explanations, strict=True):
        lines += [
            "",
            f"## {fit.mechanism}",
            "",
            f"HMDR on {fit.pairs} pairs, {fit.concepts} concepts: {explanation.accuracy or fit.evaluation_note} "
            f"(chart: {Path(explanation.png or '').name}).",
            "",
        ]
        for domain in explanation.domains:
            top = domain.concepts[:3]
            described = ", ".join(f"{c.concept} ({c.lift:+.0f} pp)" for c in top) or "no concept carries weight"
            lines.append(f"- {domain.domain}: {described}")
        mine = [r for r in rules if r.mechanism == fit.mechanism]
        found = [r for r in mine if r.concept]
        lines += ["", f"Planted rules recovered: {len(found)} of {len(mine)}."]
        for name in sorted({r.domain for r in mine}):
            cells = [
                f"{r.part} ({r.concept}, {r.lift:+.0f} pp)" if r.concept else f"{r.part}: missed"
                for r in mine
                if r.domain == name
            ]
            lines.append(f"- {name}: " + "; ".join(cells))
    return "\n".join(lines) + "\n"
