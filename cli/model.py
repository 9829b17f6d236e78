"""Model commands: fit, evaluate, explain; plus ways to put concept vectors in a store before any LLM
annotation exists (planted synthetic data, a file of precomputed vectors)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.console import add_columns, console
from cli.options import DEFAULT_DB, DbOption, SourceOption
from tools.importers.values import import_values
from tools.model_names import DEFAULT_BOOTSTRAP, EvaluationProtocol, ModelVariant
from tools.planted import make_planted
from tools.store import ConceptStore

if TYPE_CHECKING:
    from tools.explain import ConceptLift
    from tools.scores import Evaluation
    from tools.workflows import GlobalExplanation


MechanismOption = Annotated[str, typer.Option("--mechanism", "-m", help="Whose preferences to explain.")]
AnnotatorOption = Annotated[
    str | None, typer.Option(help="Whose concept values to use (default: the only annotator of each concept).")
]


JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]


def _points(value: float) -> str:
    return f"{value:+.1f}"


def evaluation_tables(evaluation: Evaluation, title: str) -> list[Table]:
    """Accuracy of each model beside the length baselines, and their paired differences."""
    summary = Table(title=title)
    add_columns(
        summary, ("model", "non-tie accuracy %", "95% CI", "pairs", "with ties %", "beats length"), text=("model",)
    )
    for row in evaluation.rows:
        summary.add_row(
            row.model,
            f"{row.non_tie_accuracy:.1f}",
            f"{row.low:.1f} - {row.high:.1f}",
            str(row.n_pairs),
            f"{row.accuracy_with_ties:.1f}",
            row.explains_more_than_length or "(baseline)",
        )
    tables = [summary]
    if evaluation.differences:
        gaps = Table(title="Paired differences on the same held-out pairs (points, 95% CI)")
        add_columns(gaps, ("model", "minus", "difference", "95% CI"), text=("model", "minus"))
        for d in evaluation.differences:
            gaps.add_row(d.model, d.baseline, _points(d.difference), f"{_points(d.low)} .. {_points(d.high)}")
        tables.append(gaps)
    return tables


def print_evaluation(evaluation: Evaluation, title: str) -> None:
    for table in evaluation_tables(evaluation, title):
        console.print(table)
    console.print(
        f"Splits: {evaluation.splits}; {evaluation.n_splits} folds x {evaluation.repeats} repeat(s). "
        "Non-tie accuracy: pairs whose reference label is a tie are left out (a predicted tie counts 0.5); "
        "'with ties' is the paper's figure (reference ties count 0.5).",
        highlight=False,
    )
    for row in evaluation.rows:
        if row.explains_more_than_length is not None:
            console.print(evaluation.verdict(row.model), style="bold")
    for note in evaluation.notes:
        console.print(f"note: {note}", highlight=False)


def fit_command(
    mechanism: MechanismOption = "human",
    model: Annotated[
        ModelVariant, typer.Option(help="hmdr, or a baseline: shared, specific, dirty, flat.")
    ] = ModelVariant.HMDR,
    db: DbOption = DEFAULT_DB,
    annotator: AnnotatorOption = None,
    source: SourceOption = None,
    random_splits: Annotated[
        bool, typer.Option("--random-splits", help="Tune and evaluate on random pair splits, not query groups (leaks).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Fit a model of a mechanism's choices (penalties by grouped 5-fold CV), store it, and report its
    held-out accuracy (the in-domain protocol of `evaluate`) beside "the longer response wins"."""
    from tools.workflows import fit_mechanism

    with ConceptStore(db, create=False) as store, console.status(f"Fitting {model} on {mechanism}..."):
        report = fit_mechanism(
            store, mechanism, model=model, annotator=annotator, source=source, grouped=not random_splits
        )
    if as_json:
        typer.echo(report.model_dump_json(indent=1))
        return
    penalties = ", ".join(f"{k} {v:.3g}" for k, v in report.params.items())
    splits = "random" if random_splits else "grouped"
    console.print(
        f"{model} on {mechanism}: {report.pairs} non-tie pairs ({report.ties_left_out} ties left out), "
        f"{report.concepts} concepts, {len(report.domains)} domains; penalties {penalties} ({splits} 5-fold CV, "
        f"log loss {report.cv.log_loss:.3f}).",
        highlight=False,
    )
    if report.evaluation is not None:
        print_evaluation(report.evaluation, f"{mechanism}: held-out accuracy, in-domain (nested CV)")
    else:
        console.print(f"note: {report.evaluation_note or ''}", highlight=False)
    shown = report.evaluation.notes if report.evaluation is not None else []
    for note in report.notes:
        if note not in shown:
            console.print(f"note: {note}", highlight=False)
    stored = "read from the store (fitted before on the same inputs)" if report.from_store else "stored"
    console.print(
        f"Model {report.model_id} {stored}. Next: whypref explain -m {mechanism} --db {str(db)}",
        highlight=False,
    )


def evaluate_command(
    mechanism: MechanismOption = "human",
    protocol: Annotated[
        EvaluationProtocol, typer.Option(help="in-domain: nested cross-validation; ood: leave one domain out.")
    ] = EvaluationProtocol.IN_DOMAIN,
    model: Annotated[list[ModelVariant], typer.Option(help="Model(s) to compare (repeatable).")] = [ModelVariant.HMDR],  # noqa: B006
    db: DbOption = DEFAULT_DB,
    annotator: AnnotatorOption = None,
    source: SourceOption = None,
    repeats: Annotated[int, typer.Option(min=1, help="Repetitions of the split (in-domain) or of tuning (ood).")] = 1,
    random_splits: Annotated[
        bool, typer.Option("--random-splits", help="Split pairs at random instead of by query group (leaks).")
    ] = False,
    per_domain: Annotated[bool, typer.Option("--per-domain", help="Also print accuracy per domain.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Held-out accuracy over non-tie pairs, with 95% intervals over the held-out pairs, beside "the
    longer response wins" and a length-only regression on the same splits."""
    from tools.workflows import evaluate_mechanism

    with ConceptStore(db, create=False) as store, console.status(f"Evaluating ({protocol})..."):
        evaluation = evaluate_mechanism(
            store,
            mechanism,
            protocol=protocol,
            models=model,
            annotator=annotator,
            source=source,
            repeats=repeats,
            grouped=not random_splits,
        )
    if as_json:
        typer.echo(evaluation.model_dump_json(indent=1))
        return
    print_evaluation(evaluation, f"{mechanism}: held-out accuracy, {protocol}")
    if per_domain:
        table = Table(title="Non-tie accuracy % per domain" + (" (held out)" if protocol == "ood" else ""))
        table.add_column("domain")
        for row in evaluation.rows:
            table.add_column(row.model, justify="right")
        for d in sorted({d for row in evaluation.rows for d in row.per_domain}):
            table.add_row(d, *(f"{row.per_domain[d]:.1f}" if d in row.per_domain else "" for row in evaluation.rows))
        console.print(table)


def _lift_cell(concept: ConceptLift) -> str:
    cell = f"{concept.lift:+.1f}" + ("*" if concept.unstable else "")
    if concept.domain_effect:
        cell += f" ({concept.specific:+.1f} own)"
    return cell


def explain_command(
    mechanism: MechanismOption = "human",
    db: DbOption = DEFAULT_DB,
    domain: Annotated[str | None, typer.Option(help="Only this domain.")] = None,
    pair: Annotated[str | None, typer.Option(help="Explain one pair (local lift; ids: `whypref pairs`).")] = None,
    top: Annotated[int, typer.Option(min=1, help="Concepts per domain.")] = 10,
    bootstrap: Annotated[
        int, typer.Option(min=0, help="Bootstrap refits for intervals and selection frequency (0: none).")
    ] = DEFAULT_BOOTSTRAP,
    detail: Annotated[
        bool, typer.Option("--detail", help="One table per domain: parts, intervals, selection.")
    ] = False,
    model_id: Annotated[str | None, typer.Option(help="A stored model (default: the mechanism's latest).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the chart (PNG) and its data (JSON).")] = Path("reports"),
    as_json: JsonOption = False,
) -> None:
    """Why this mechanism prefers what it prefers: global lift per domain (probability points), or the
    local lift of each concept on one pair."""
    from tools.workflows import explain_global, explain_pair

    with ConceptStore(db, create=False) as store:
        if pair is not None:
            local = explain_pair(store, mechanism, pair, model_id=model_id)
            if as_json:
                typer.echo(local.model_dump_json(indent=1))
                return
            table = Table(
                title=f"Pair {pair} ({local.domain}): P(A preferred) = {local.p_a:.2f}, "
                f"P(B preferred) = {local.p_b:.2f}; label {local.label}"
            )
            add_columns(table, ("concept", "value (A - B)", "lift on P(A), pp"), text=("concept",))
            for c in local.concepts[:top]:
                table.add_row(c.concept, f"{c.value:+.2f}", f"{c.lift:+.1f}")
            console.print(table)
            if not local.concepts:
                console.print("No concept moved the prediction on this pair (no difference, or no weight).")
            return
        with console.status("Explaining (bootstrap refits)..." if bootstrap else "Explaining..."):
            explanation = explain_global(
                store, mechanism, model_id=model_id, domain=domain, top_k=top, n_bootstrap=bootstrap, out_dir=out
            )
    if as_json:
        typer.echo(explanation.model_dump_json(indent=1, exclude={"png", "json_path"}))
        return
    _print_explanation(explanation, detail or len(explanation.domains) == 1)
    console.print(f"Chart: {str(explanation.png)}\nData: {str(explanation.json_path)}", highlight=False)


def _print_explanation(explanation: GlobalExplanation, detail: bool) -> None:
    title = f"What {explanation.mechanism} rewards: lift in probability points"
    if explanation.accuracy:
        console.print(f"{explanation.mechanism}: {explanation.accuracy}", highlight=False)
    if detail:
        for entry in explanation.domains:
            table = Table(title=f"{title}, {entry.domain} ({entry.n_pairs} pairs)")
            columns = ["concept", "lift", "all domains", "this domain"]
            if explanation.n_bootstrap:
                columns += ["95% CI", "selected", "own effect"]
            add_columns(table, columns, text=("concept",))
            for c in entry.concepts:
                cells = [c.concept, _points(c.lift), _points(c.shared), _points(c.specific)]
                if explanation.n_bootstrap and c.low is not None and c.high is not None:
                    own = "yes" if c.domain_effect else "not shown"
                    cells += [f"{_points(c.low)} .. {_points(c.high)}", f"{100 * (c.selected or 0):.0f}%", own]
                table.add_row(*cells)
            console.print(table)
            for note in entry.notes:
                console.print(f"note: {entry.domain}: {note}", highlight=False)
    else:
        table = Table(title=title + " (rows: concepts; columns: domains)")
        table.add_column("concept")
        for entry in explanation.domains:
            table.add_column(f"{entry.domain}\n({entry.n_pairs})", justify="right")
        names = list(dict.fromkeys(c.concept for entry in explanation.domains for c in entry.concepts))
        by_cell = {(entry.domain, c.concept): c for entry in explanation.domains for c in entry.concepts}
        for name in names:
            table.add_row(
                name,
                *(
                    _lift_cell(by_cell[(e.domain, name)]) if (e.domain, name) in by_cell else ""
                    for e in explanation.domains
                ),
            )
        console.print(table)
        notes = [f"{e.domain}: {n}" for e in explanation.domains for n in e.notes]
        for note in notes:
            console.print(f"note: {note}", highlight=False)
    if explanation.n_bootstrap:
        console.print(
            f"Intervals from {explanation.n_bootstrap} bootstrap refits (query groups resampled within domains)"
            + (
                ""
                if detail
                else "; * marks an unstable driver (weighted in under 70% of refits, or an interval"
                " reaching the other sign); --detail shows the parts, intervals and selection."
            ),
            highlight=False,
        )
    console.print(
        "Lift: the average change in the probability that a response is preferred when it shows one unit more "
        "of the concept than the other (both orders; 'all domains' is the shared part).",
        highlight=False,
    )


def planted_command(
    db: DbOption = DEFAULT_DB,
    domains: Annotated[int, typer.Option(min=1)] = 8,
    concepts: Annotated[int, typer.Option(min=1)] = 60,
    shared: Annotated[int, typer.Option(min=0, help="How many of the concepts are shared.")] = 10,
    pairs_per_domain: Annotated[int, typer.Option(min=2)] = 400,
    label_noise: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of labels flipped at random.")] = 0.1,
    seed: int = 0,
    mechanism: Annotated[str, typer.Option(help="Name of the planted labels' mechanism.")] = "planted",
) -> None:
    """Write synthetic concept vectors with known (planted) weights into a store, to try the models."""
    from tools.design import store_planted

    data = make_planted(domains, concepts, shared, pairs_per_domain, label_noise=label_noise, random_state=seed)
    with ConceptStore(db) as store:
        count = store_planted(store, data, mechanism=mechanism, source=f"planted-{seed}")
    console.print(
        f"Stored {count} planted pairs ({domains} domains, {concepts} concepts) as mechanism {mechanism!r} in {db}",
        highlight=False,
    )


def values_command(
    path: Annotated[Path, typer.Argument(help="CSV or JSONL: a pair_id column and one column per concept.")],
    db: DbOption = DEFAULT_DB,
    annotator: Annotated[str, typer.Option(help="Who produced these values.")] = "file",
) -> None:
    """Import precomputed concept vectors for stored pairs (one transaction: all or nothing)."""
    with ConceptStore(db, create=False) as store:
        count = import_values(store, path, annotator)
    console.print(f"Imported {count} concept values from {path} (annotator {annotator!r})", highlight=False)


def report_command(
    mechanisms: Annotated[
        list[str], typer.Option("--mechanism", "-m", help="Whose preferences to report on (repeat for several).")
    ],
    db: DbOption = DEFAULT_DB,
    out: Annotated[Path, typer.Option(help="The HTML file to write.")] = Path("whypref-report.html"),
    top: Annotated[int, typer.Option(min=1, help="Concepts per domain.")] = 8,
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap refits for the intervals (0: none).")] = 100,
    examples: Annotated[int, typer.Option(min=0, max=10, help="Example pairs per concept.")] = 3,
) -> None:
    """One self-contained HTML page (no network needed to view it): data, accuracy beside length, lifts per
    domain with intervals, a card per concept with example pairs, differences between mechanisms, what the
    LLM contributed, and warnings. Each mechanism needs a fitted model (`whypref fit`)."""
    from tools.report import build_report, write_report

    with ConceptStore(db, create=False) as store, console.status("Building the report (bootstrap refits)..."):
        report = build_report(store, mechanisms, n_bootstrap=bootstrap, top_k=top, examples=examples)
    path = write_report(report, out)
    console.print(f"Report: {path} ({path.stat().st_size / 1024:.0f} KB)", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("fit")(fit_command)
    app.command("evaluate")(evaluate_command)
    app.command("explain")(explain_command)
    app.command("report")(report_command)
    app.command("planted")(planted_command)
    app.command("import-values")(values_command)
