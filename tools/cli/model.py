"""Model commands: fit, evaluate, explain; plus ways to put concept vectors in a store before any LLM
annotation exists (planted synthetic data, a file of precomputed vectors)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tools.cli.options import DEFAULT_DB, DbOption, SourceOption
from tools.design import store_planted
from tools.importers.values import import_values
from tools.model_names import ModelName, Protocol
from tools.planted import make_planted
from tools.store import ConceptStore

console = Console()

MechanismOption = Annotated[str, typer.Option("--mechanism", "-m", help="Whose preferences to explain.")]
AnnotatorOption = Annotated[
    str | None, typer.Option(help="Whose concept values to use (default: the only annotator of each concept).")
]


def fit_command(
    mechanism: MechanismOption = "human",
    model: Annotated[ModelName, typer.Option(help="hmdr, or a baseline: shared, specific, dirty, flat.")] = "hmdr",
    db: DbOption = DEFAULT_DB,
    annotator: AnnotatorOption = None,
    source: SourceOption = None,
) -> None:
    """Fit a model of a mechanism's choices: the paper's 9-configuration grid, 5-fold CV, refit; stored."""
    from tools.workflows import fit_mechanism

    with ConceptStore(db, create=False) as store, console.status(f"Fitting {model} on {mechanism}..."):
        report = fit_mechanism(store, mechanism, model=model, annotator=annotator, source=source)
    table = Table(
        title=f"{model} on {mechanism}: {report.pairs} pairs, {report.concepts} concepts, "
        f"{len(report.domains)} domains (5-fold CV accuracy %)"
    )
    for column in ("alpha", "lambda_shared", "lambda_domain", "accuracy", "+/-"):
        table.add_column(column, justify="right")
    for row in report.cv_table:
        chosen = row.params == report.best_params
        cells = [f"{row.params.get(k, float('nan')):.4g}" for k in ("alpha", "lambda_shared", "lambda_domain")]
        table.add_row(
            *cells,
            f"{100 * row.mean_accuracy:.1f}",
            f"{100 * row.std_accuracy:.1f}",
            style="bold green" if chosen else None,
        )
    console.print(table)
    console.print(
        f"Model [bold]{report.model_id}[/] stored ({report.ties_left_out} ties left out of training). "
        f"Next: whypref explain -m {mechanism} --db {db}",
        highlight=False,
    )


def evaluate_command(
    mechanism: MechanismOption = "human",
    protocol: Annotated[
        Protocol, typer.Option(help="in-domain: repeated random splits; ood: leave one domain out.")
    ] = "in-domain",
    model: Annotated[list[str], typer.Option(help="Model(s) to compare (repeatable).")] = ["hmdr"],  # noqa: B006
    db: DbOption = DEFAULT_DB,
    annotator: AnnotatorOption = None,
    source: SourceOption = None,
    repeats: Annotated[int, typer.Option(min=1, help="in-domain: number of random splits.")] = 25,
    seeds: Annotated[int, typer.Option(min=1, help="ood: seeds per held-out domain.")] = 5,
) -> None:
    """Held-out accuracy of models of a mechanism, with 95% bootstrap intervals (ties count 0.5)."""
    from tools.workflows import evaluate_mechanism

    for name in model:
        if name not in ModelName.__args__:  # type: ignore[attr-defined]
            raise typer.BadParameter(f"unknown model {name!r} (known: {', '.join(ModelName.__args__)})")  # type: ignore[attr-defined]
    with ConceptStore(db, create=False) as store, console.status(f"Evaluating ({protocol})..."):
        results = evaluate_mechanism(
            store,
            mechanism,
            protocol=protocol,
            models=model,  # type: ignore[arg-type]
            annotator=annotator,
            source=source,
            repeats=repeats,
            seeds=seeds,
        )
    summary = Table(title=f"{mechanism}: {protocol} accuracy % (95% bootstrap interval)")
    for column in ("model", "accuracy", "interval", "splits"):
        summary.add_column(column, justify="left" if column == "model" else "right")
    for r in results:
        summary.add_row(
            r.model,
            f"{100 * r.accuracy.estimate:.1f}",
            f"{100 * r.accuracy.low:.1f} - {100 * r.accuracy.high:.1f}",
            str(len(r.splits)),
        )
    console.print(summary)
    per_domain = Table(title="Accuracy % per domain" + (" (held out)" if protocol == "ood" else ""))
    per_domain.add_column("domain")
    for r in results:
        per_domain.add_column(r.model, justify="right")
    for d in sorted({d for r in results for d in r.per_domain}):
        per_domain.add_row(d, *(f"{100 * r.per_domain[d]:.1f}" if d in r.per_domain else "" for r in results))
    console.print(per_domain)


def explain_command(
    mechanism: MechanismOption = "human",
    db: DbOption = DEFAULT_DB,
    domain: Annotated[str | None, typer.Option(help="Only this domain.")] = None,
    pair: Annotated[str | None, typer.Option(help="Explain one pair (local lift) instead.")] = None,
    top: Annotated[int, typer.Option(min=1, help="Concepts per domain.")] = 10,
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap refits for intervals on global lift (0: none).")] = 0,
    model_id: Annotated[str | None, typer.Option(help="A stored model (default: the mechanism's latest).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the chart (PNG) and its data (JSON).")] = Path("reports"),
) -> None:
    """Why this mechanism prefers what it prefers: global lift per domain, or local lift for one pair."""
    from tools.workflows import explain_global, explain_pair

    with ConceptStore(db, create=False) as store:
        if pair is not None:
            local = explain_pair(store, mechanism, pair, model_id=model_id)
            table = Table(title=f"Pair {pair} ({local.domain}): P(A preferred) = {local.p_a:.2f}, label {local.label}")
            for column in ("concept", "value (A-B)", "lift %"):
                table.add_column(column, justify="left" if column == "concept" else "right")
            for c in local.concepts[:top]:
                table.add_row(c.concept, f"{c.value:+.2f}", f"{c.lift:+.1f}")
            console.print(table)
            return
        with console.status("Explaining..."):
            explanation = explain_global(
                store, mechanism, model_id=model_id, domain=domain, top_k=top, n_bootstrap=bootstrap, out_dir=out
            )
    for entry in explanation.lift.domains:
        table = Table(title=f"{mechanism} in {entry.domain}: lift % (shared + domain = total)")
        columns = ("concept", "shared", "domain", "total") + (("95% CI",) if bootstrap else ())
        for column in columns:
            table.add_column(column, justify="left" if column == "concept" else "right")
        for c in entry.concepts:
            interval = (f"{c.low:+.1f} .. {c.high:+.1f}",) if bootstrap and c.low is not None else ()
            table.add_row(c.concept, f"{c.shared:+.1f}", f"{c.domain:+.1f}", f"{c.total:+.1f}", *interval)
        console.print(table)
    console.print(f"Chart: {explanation.png}\nData: {explanation.json_path}", highlight=False)


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


def register(app: typer.Typer) -> None:
    app.command("fit")(fit_command)
    app.command("evaluate")(evaluate_command)
    app.command("explain")(explain_command)
    app.command("planted")(planted_command)
    app.command("import-values")(values_command)
