"""Tools over fitted models: fit, evaluate, explain, predict, compare_mechanisms.

Each is a thin wrapper over ``tools.workflows`` / ``tools.stats`` on one store connection of its own.
Annotations here are evaluated when the module loads (no ``from __future__ import annotations``):
the SDK reads them to build the schemas, and the inline-pair type is made per server.
"""

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from mcp_server.arguments import AnnotatorName, DomainName, MechanismName, ModelId, PairId, SourceName, TopK
from mcp_server.catalog import check_mechanisms, mechanism_names
from mcp_server.errors import readable_errors
from mcp_server.inline import InlinePair, explain_inline, inline_pair_model
from mcp_server.limits import heavy
from mcp_server.results import (
    Accuracy,
    ComparisonAnswer,
    Drivers,
    EvaluationResult,
    ExplainResult,
    FitAnswer,
    GlobalAnswer,
    PairExplanation,
    Prediction,
    answer,
)
from mcp_server.settings import ServerSettings
from mcp_server.workspace import Workspace, workspace_of
from tools.errors import WhyprefError
from tools.model_names import DEFAULT_BOOTSTRAP
from tools.report import explanation_warnings
from tools.scores import Evaluation
from tools.stats import store_stats
from tools.store import ConceptStore
from tools.workflows import (
    EvaluationProtocol,
    FitReport,
    ModelVariant,
    evaluate_mechanism,
    explain_global,
    explain_pair,
    fit_mechanism,
)

_WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
_READS = ToolAnnotations(read_only_hint=True, open_world_hint=False)


def _one_pair(
    workspace: Workspace,
    store: ConceptStore,
    mechanism: str,
    pair_id: str | None,
    pair: InlinePair | None,
    model_id: str | None,
) -> PairExplanation:
    if (pair_id is None) == (pair is None):
        raise ToolError("give exactly one of pair_id (a stored pair) or pair (a pair given inline)")
    if pair is not None:
        return explain_inline(workspace, store, mechanism, pair, model_id)
    assert pair_id is not None
    return PairExplanation(explanation=explain_pair(store, mechanism, pair_id, model_id=model_id), inline=False)


def register(server: MCPServer[Any], settings: ServerSettings) -> None:
    InlinePairArgument = inline_pair_model(settings.max_text_chars)
    InlinePairOption = Annotated[
        InlinePairArgument | None,  # type: ignore[valid-type]
        Field(description="A pair not in the store, valued on the fly (measured concepts; LLM ones need an LLM)."),
    ]

    @server.tool(annotations=_WRITES)
    @heavy
    @readable_errors(ToolError)
    def fit(
        ctx: Context,
        mechanism: MechanismName = "human",
        model: Annotated[
            ModelVariant, Field(description="hmdr, or a baseline: shared, specific, dirty, flat.")
        ] = ModelVariant.HMDR,
        annotator: AnnotatorName | None = None,
        source: SourceName | None = None,
        ood_repeats: Annotated[
            int, Field(ge=0, le=5, description="Out-of-domain accuracy: tuning repeats per held-out domain (0: skip).")
        ] = 1,
    ) -> Annotated[CallToolResult, FitAnswer]:
        """Fit (or re-fit) a model of a mechanism's choices from the concept vectors in the store (penalties
        by 5-fold CV grouped by query, refit on all non-tie pairs, stored). Returns its held-out in-domain
        accuracy over non-tie pairs beside "the longer response wins" and, with two or more domains, its
        leave-one-domain-out accuracy, each with 95% intervals and the verdict on length; the whole model
        and its evaluation are the resource models://{model_id}."""
        with workspace_of(ctx).store() as store:
            report = fit_mechanism(store, mechanism, model=model, annotator=annotator, source=source)
            ood, notes = None, list(report.notes)
            if not ood_repeats:
                notes.append("out-of-domain accuracy not computed (ood_repeats=0)")
            else:
                try:
                    ood = evaluate_mechanism(
                        store,
                        mechanism,
                        protocol=EvaluationProtocol.OOD,
                        models=[model],
                        annotator=annotator,
                        source=source,
                        repeats=ood_repeats,
                    )
                # The fit itself stands when OOD cannot be computed: one domain only (WhyprefError), or, on
                # tiny sets, a tuning fold of the training domains with one class (the library's ValueError).
                except (WhyprefError, ValueError) as error:
                    notes.append(f"out-of-domain accuracy not computed: {error}")
        return answer(_fit_answer(report, ood, notes), _fit_line(report, ood))

    @server.tool(annotations=_READS)
    @heavy
    @readable_errors(ToolError)
    def evaluate(
        ctx: Context,
        mechanism: MechanismName = "human",
        protocol: Annotated[
            EvaluationProtocol, Field(description="in-domain: 5-fold CV grouped by query; ood: leave one domain out.")
        ] = EvaluationProtocol.IN_DOMAIN,
        models: Annotated[
            tuple[ModelVariant, ...], Field(min_length=1, max_length=5, description="Models to compare.")
        ] = (ModelVariant.HMDR,),
        annotator: AnnotatorName | None = None,
        source: SourceName | None = None,
        repeats: Annotated[
            int, Field(ge=1, le=10, description="Repetitions of the split (in-domain) or of tuning (ood).")
        ] = 1,
        random_splits: Annotated[
            bool, Field(description="Split pairs at random instead of by query group (leaks when queries repeat).")
        ] = False,
    ) -> Annotated[CallToolResult, EvaluationResult]:
        """Held-out accuracy of models of a mechanism over non-tie pairs, with 95% intervals over the held-out
        pairs, beside "the longer response wins" and a length-only regression on the same splits, with the
        paired differences and whether the model explains more than length. Refits many times."""
        with workspace_of(ctx).store() as store:
            evaluation = evaluate_mechanism(
                store,
                mechanism,
                protocol=protocol,
                models=list(models),
                annotator=annotator,
                source=source,
                repeats=repeats,
                grouped=not random_splits,
            )
        result = EvaluationResult(mechanism=mechanism, accuracy=Accuracy.of(evaluation, per_domain=True))
        return answer(result, f"{mechanism} ({protocol}): " + "; ".join(result.accuracy.verdicts))

    @server.tool(annotations=_WRITES)
    @heavy
    @readable_errors(ToolError)
    def explain(
        ctx: Context,
        mechanism: MechanismName = "human",
        pair_id: PairId | None = None,
        pair: InlinePairOption = None,
        domain: Annotated[DomainName | None, Field(description="Global only: just this domain.")] = None,
        top_k: TopK = 10,
        bootstrap: Annotated[
            int | None,
            Field(
                ge=0,
                le=500,
                description=f"Global only: bootstrap refits for 95% intervals and selection (default "
                f"{DEFAULT_BOOTSTRAP}; 0: none).",
            ),
        ] = None,
        model_id: ModelId | None = None,
    ) -> Annotated[CallToolResult, ExplainResult]:
        """Why a mechanism prefers what it prefers. Without a pair: the global lift of each driver per domain,
        in probability points (the average change in the probability that a response is preferred when it
        shows one unit more of the concept than the other), split into the part all domains share and the
        domain's own part, with bootstrap intervals and warnings where they are thin; the chart and a JSON
        with every figure are written to the report folder (resource whypref://reports/latest). With
        pair_id or an inline pair: what each concept's difference did to the probability that A is
        preferred (pp; swapping A and B negates it), and that probability."""
        workspace = workspace_of(ctx)
        with workspace.store() as store:
            if pair_id is None and pair is None:
                explanation = explain_global(
                    store,
                    mechanism,
                    model_id=model_id,
                    domain=domain,
                    top_k=top_k,
                    n_bootstrap=DEFAULT_BOOTSTRAP if bootstrap is None else bootstrap,
                    out_dir=workspace.settings.report_dir,
                )
                drivers = Drivers.of(explanation)
                n_pairs = sum(d.n_pairs for d in explanation.domains)
                result = GlobalAnswer(
                    **dict(drivers),
                    n_bootstrap=explanation.n_bootstrap,
                    warnings=explanation_warnings(explanation, n_pairs),
                    chart=explanation.png,
                    full=explanation.json_path,
                )
                return answer(ExplainResult(scope="global", global_explanation=result), _drivers_line(drivers))
            if domain is not None or bootstrap is not None:
                raise ToolError("domain and bootstrap apply to global explanations only (a pair has its own domain)")
            explained = _one_pair(workspace, store, mechanism, pair_id, pair, model_id)
        local = explained.explanation
        top = explained.model_copy(
            update={"explanation": local.model_copy(update={"concepts": local.concepts[:top_k]})}
        )
        line = f"{mechanism} on pair {local.pair_id}: P(A preferred) = {local.p_a:.2f}" + "".join(
            f"; {c.concept} {c.lift:+.1f} pp" for c in local.concepts[:3]
        )
        return answer(ExplainResult(scope="pair", pair=top), line)

    @server.tool(annotations=_READS)
    @heavy
    @readable_errors(ToolError)
    def predict(
        ctx: Context,
        mechanism: MechanismName = "human",
        pair_id: PairId | None = None,
        pair: InlinePairOption = None,
        model_id: ModelId | None = None,
    ) -> Prediction:
        """Which response a mechanism would prefer, by its fitted model: for a stored pair (pair_id) or a
        pair given inline."""
        workspace = workspace_of(ctx)
        with workspace.store() as store:
            explained = _one_pair(workspace, store, mechanism, pair_id, pair, model_id)
        local = explained.explanation
        preferred: Literal["A", "B", "tie"] = "A" if local.p_a > 0.5 else "B" if local.p_a < 0.5 else "tie"
        return Prediction(
            pair_id=local.pair_id,
            domain=local.domain,
            mechanism=mechanism,
            p_a=local.p_a,
            preferred=preferred,
            label=local.label,
            unvalued_concepts=explained.unvalued_concepts,
        )

    @server.tool(annotations=_READS)
    @heavy
    @readable_errors(ToolError)
    def compare_mechanisms(
        ctx: Context,
        reference: Annotated[MechanismName, Field(description="The mechanism others are compared with.")] = "human",
        mechanisms: Annotated[
            tuple[MechanismName, ...], Field(max_length=20, description="Mechanisms to compare (default: all others).")
        ] = (),
        source: SourceName | None = None,
        domain: Annotated[DomainName | None, Field(description="Only this domain.")] = None,
        top_k: TopK = 5,
    ) -> Annotated[CallToolResult, ComparisonAnswer]:
        """How mechanisms (e.g. an LLM judge and humans) agree, overall and per domain, and what each
        rewards: the top concepts of its fitted model per domain. Agreement follows the method: over
        pairs the reference did not tie, 1 for the same verdict, 0.5 when the other ties."""
        with workspace_of(ctx).store() as store:
            check_mechanisms(store, reference, *mechanisms)
            others = list(mechanisms) or sorted(mechanism_names(store) - {reference})
            stats = store_stats(store, source=source, domain=domain, reference=reference)
            fitted = {record.mechanism for record in store.models()}
            compared = [reference, *others]
            explanations = [
                explain_global(store, m, domain=domain, top_k=top_k, n_bootstrap=0) for m in compared if m in fitted
            ]
        overall = [a for a in stats.agreement if a.reference == reference and a.mechanism in others]
        per_domain: dict[str, dict[str, float | None]] = {}
        for a in stats.per_domain:
            if a.mechanism in others and a.domain is not None:
                per_domain.setdefault(a.mechanism, {})[a.domain] = a.accuracy
        result = ComparisonAnswer(
            reference=reference,
            agreement={a.mechanism: a.accuracy for a in overall},
            kappa={a.mechanism: a.kappa for a in overall},
            per_domain=per_domain,
            explanations=[Drivers.of(e) for e in explanations],
            without_model=[m for m in compared if m not in fitted],
        )
        line = "; ".join(
            f"{m} agrees with {reference} on {100 * a:.1f}% of its non-tie pairs"
            for m, a in result.agreement.items()
            if a is not None
        )
        return answer(result, line or f"nothing to compare with {reference}")


def _fit_answer(report: FitReport, ood: Evaluation | None, notes: list[str]) -> FitAnswer:
    if report.evaluation_note:
        notes.append(report.evaluation_note)
    if report.from_store:
        notes.append("read from the store: fitted before on the same inputs (pairs, values, concepts, choices, code)")
    return FitAnswer(
        model_id=report.model_id,
        mechanism=report.mechanism,
        model=report.model,
        pairs=report.pairs,
        ties_left_out=report.ties_left_out,
        concepts=report.concepts,
        domains=report.domains,
        params=report.params,
        in_domain=Accuracy.of(report.evaluation) if report.evaluation else None,
        out_of_domain=Accuracy.of(ood) if ood else None,
        notes=notes,
        full=f"models://{report.model_id}",
    )


def _fit_line(report: FitReport, ood: Evaluation | None) -> str:
    parts = [f"model {report.model_id} of {report.mechanism} on {report.pairs} non-tie pairs"]
    for name, evaluation in (("in-domain", report.evaluation), ("out-of-domain", ood)):
        if evaluation is not None:
            row = evaluation.row(report.model)
            parts.append(
                f"{name} {row.non_tie_accuracy:.1f}% [{row.low:.1f}, {row.high:.1f}] vs longer wins "
                f"{evaluation.row('longer').non_tie_accuracy:.1f}%"
            )
    return "; ".join(parts)


def _drivers_line(drivers: Drivers) -> str:
    tops = (f"{d.domain}: " + ", ".join(f"{c.concept} {c.lift:+.1f}" for c in d.drivers[:3]) for d in drivers.domains)
    return f"what {drivers.mechanism} rewards (pp) - " + " | ".join(tops)
