"""The main job on the demo set: write it, import it, discover and annotate concepts, fit HMDR for
each mechanism, and write an explanation report (charts, JSON and a short markdown summary)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from tools.annotation import Annotation, AnnotationConfig
from tools.demo_data import DEMO_MECHANISMS, write_demo_set
from tools.discovery import Discovery, DiscoveryConfig
from tools.importers import import_file
from tools.llm import LLM
from tools.store import ConceptStore
from tools.workflows import FitReport, GlobalExplanation, explain_global, fit_mechanism

# Small on purpose: the embedded model takes seconds per call on two cores.
DEMO_DISCOVERY = DiscoveryConfig(batches_per_domain=1, batch_size=4, concepts_per_batch=5, include_generic=False)


class DemoReport(BaseModel):
    db: str
    report_dir: str
    pairs: int
    concepts: int
    fits: list[FitReport]
    explanations: list[GlobalExplanation]
    summary: str
    usage: str | None  # the LLM's cost line; None without an LLM
    model_id: str | None


def run_demo(
    workdir: Path,
    per_domain: int,
    make_llm: Callable[[ConceptStore], LLM] | None,
    progress: Callable[[str, int, int], None] | None = None,
    max_chars: int = 1500,
) -> DemoReport:
    """``make_llm`` builds the LLM over the demo store (its cache); None: measured concepts only."""
    data_file = workdir / "demo_pairs.jsonl"
    write_demo_set(data_file, per_domain)
    db = workdir / "demo.db"
    report_dir = workdir / "report"
    with ConceptStore(db) as store:
        import_file(store, data_file, "whypref")
        store.upsert_mechanisms(DEMO_MECHANISMS)
        pairs = list(store.pairs())
        llm = make_llm(store) if make_llm is not None else None
        if llm is not None:
            Discovery(store, llm, DEMO_DISCOVERY, max_chars, progress).run()
        config = AnnotationConfig.choose(
            embedded=llm is not None and llm.embedded, relevance=False, llm_concepts=llm is not None
        )
        Annotation(store, llm, config, max_chars, progress).run(pairs)
        fits, explanations = [], []
        for mechanism in (m.name for m in DEMO_MECHANISMS):
            fits.append(fit_mechanism(store, mechanism))
            explanations.append(explain_global(store, mechanism, top_k=5, out_dir=report_dir))
        summary = _summary(fits, explanations, llm)
        (report_dir / "report.md").write_text(summary, encoding="utf-8")
        return DemoReport(
            db=str(db),
            report_dir=str(report_dir),
            pairs=len(pairs),
            concepts=len(store.concepts()),
            fits=fits,
            explanations=explanations,
            summary=summary,
            usage=llm.usage.line() if llm else None,
            model_id=llm.model_id if llm else None,
        )


def _summary(fits: list[FitReport], explanations: list[GlobalExplanation], llm: LLM | None) -> str:
    lines = ["# whypref demo report", ""]
    if llm is None:
        lines.append("Concepts: measured by code only (no LLM).")
    else:
        lines.append(f"LLM: {llm.model_id}. {llm.usage.line()}.")
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
    return "\n".join(lines) + "\n"
