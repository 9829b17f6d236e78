"""Data commands: import, stats, export, demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.console import add_columns, console
from cli.options import DEFAULT_DB, DbOption, DomainOption, SourceOption
from tools.errors import InputError
from tools.importers import FORMATS, ColumnMapping, ImportOptions, detect_format, import_file
from tools.importers.icai import icai_document, write_icai
from tools.importers.native import write_native
from tools.pairs import MechanismKind
from tools.stats import StoreStats, store_stats
from tools.store import ConceptStore, ImportSummary


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _parse_labels(specs: list[str]) -> dict[str, str]:
    labels = {}
    for spec in specs:
        mechanism, sep, column = spec.partition("=")
        if not sep or not mechanism or not column:
            raise InputError(f"--label {spec!r}: expected MECHANISM=COLUMN")
        labels[mechanism] = column
    return labels


def import_command(
    path: Annotated[Path, typer.Argument(help="File or dataset folder to import.")],
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}. Default: from the name.")
    ] = None,
    db: DbOption = DEFAULT_DB,
    source: Annotated[str | None, typer.Option(help="Source name (default: file stem or dataset name).")] = None,
    domain: Annotated[str | None, typer.Option(help="A constant domain for every pair.")] = None,
    domain_column: Annotated[str, typer.Option(help="Column holding the domain.")] = "domain",
    query_column: Annotated[str, typer.Option(help="Column holding the query (text or list of turns).")] = "query",
    chosen_column: Annotated[
        str, typer.Option(help="Chosen/rejected layout: the chosen response's column.")
    ] = "chosen",
    rejected_column: Annotated[
        str, typer.Option(help="Chosen/rejected layout: the rejected response's column.")
    ] = "rejected",
    a_column: Annotated[str, typer.Option(help="A/B layout: response A's column.")] = "response_a",
    b_column: Annotated[str, typer.Option(help="A/B layout: response B's column.")] = "response_b",
    winner_column: Annotated[
        str, typer.Option(help="A/B layout: the verdict's column (a/b/tie, 1/2/0, model_a...).")
    ] = "winner",
    label: Annotated[list[str], typer.Option(help="More verdict columns, as MECHANISM=COLUMN (repeatable).")] = [],  # noqa: B006
    mechanism: Annotated[str, typer.Option(help="Who produced the main verdict.")] = "human",
    mechanism_kind: Annotated[MechanismKind, typer.Option(help="Kind of that mechanism.")] = MechanismKind.HUMAN,
    allow_empty_responses: Annotated[bool, typer.Option(help="Accept empty responses instead of failing.")] = False,
    questions: Annotated[
        Path | None, typer.Option(help="LLMBar: MT-Bench / Vicuna question file(s) for categories.")
    ] = None,
) -> None:
    """Import preference pairs and their labels into the store (one transaction: all or nothing)."""
    options = ImportOptions(
        mapping=ColumnMapping(
            query=query_column,
            chosen=chosen_column,
            rejected=rejected_column,
            response_a=a_column,
            response_b=b_column,
            winner=winner_column,
            domain_column=domain_column,
            extra_labels=_parse_labels(label),
        ),
        domain=domain,
        source=source,
        mechanism=mechanism,
        mechanism_kind=mechanism_kind,
        allow_empty_responses=allow_empty_responses,
        questions=questions,
    )
    fmt = fmt or detect_format(path)
    with (
        ConceptStore(db) as store,
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TextColumn("{task.completed} records"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task(f"Reading {path.name} ({fmt})", total=None)
        summary = import_file(store, path, fmt, options, progress=lambda _, n, __: progress.update(task, completed=n))
    _print_summary(summary, path, db)


def _print_summary(summary: ImportSummary, path: Path, db: Path) -> None:
    console.print(
        f"Imported {summary.pairs} pairs ({summary.new_pairs} new), {summary.labels} labels "
        f"from {path} into {db}\n  domains ({len(summary.domains)}): {', '.join(summary.domains)}\n"
        f"  mechanisms: {', '.join(summary.mechanisms)}",
        highlight=False,
    )


def stats_command(
    db: DbOption = DEFAULT_DB,
    source: SourceOption = None,
    domain: DomainOption = None,
    reference: Annotated[str, typer.Option(help="Mechanism others are compared with, per domain.")] = "human",
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """Pairs per domain x mechanism, label balance, ties, and agreement between mechanisms."""
    with ConceptStore(db, create=False) as store:
        stats = store_stats(store, source=source, domain=domain, reference=reference)
    if as_json:
        print(stats.model_dump_json(indent=1))
        return
    _print_stats(stats)


def _print_stats(stats: StoreStats) -> None:
    sources = ", ".join(f"{s} ({n})" for s, n in stats.sources.items())
    console.print(f"{stats.pairs} pairs from {sources or 'nothing yet'}", highlight=False)
    mechanisms = [m.mechanism for m in stats.mechanisms]
    counts = Table(title="Labels per domain x mechanism")
    counts.add_column("domain")
    for name in mechanisms:
        counts.add_column(name, justify="right")
    for dom, row in stats.counts.items():
        counts.add_row(dom, *(str(row.get(name, "")) for name in mechanisms))
    console.print(counts)

    balance = Table(title="Label balance (%)")
    add_columns(
        balance,
        ("mechanism", "kind", "labels", "A", "B", "tie", "both orders", "position-consistent"),
        text=("mechanism", "kind"),
    )
    for m in stats.mechanisms:
        balance.add_row(
            m.mechanism,
            m.kind,
            str(m.labels),
            _percent(m.share_a),
            _percent(m.share_b),
            _percent(m.share_tie),
            str(m.both_orders or ""),
            _percent(m.position_consistent),
        )
    console.print(balance)

    if stats.agreement:
        table = Table(title="Agreement on shared pairs (accuracy: reference ties excluded, other's tie = 0.5)")
        add_columns(
            table,
            ("reference", "mechanism", "shared", "accuracy %", "exact %", "kappa"),
            text=("reference", "mechanism"),
        )
        for a in stats.agreement:
            table.add_row(
                a.reference,
                a.mechanism,
                str(a.shared_pairs),
                _percent(a.accuracy),
                _percent(a.exact),
                "-" if a.kappa is None else f"{a.kappa:.2f}",
            )
        console.print(table)
    if stats.per_domain:
        table = Table(title=f"Agreement with {stats.reference} per domain (accuracy %, ties = 0.5)")
        table.add_column("domain")
        others = sorted({a.mechanism for a in stats.per_domain})
        for name in others:
            table.add_column(name, justify="right")
        cell = {(a.domain, a.mechanism): a for a in stats.per_domain}
        for dom in stats.counts:
            table.add_row(
                dom,
                *(
                    f"{_percent(cell[(dom, n)].accuracy)} (n={cell[(dom, n)].scored_pairs})" if (dom, n) in cell else ""
                    for n in others
                ),
            )
        console.print(table)


def export_command(
    out: Annotated[Path, typer.Argument(help="File to write.")],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="jsonl (whypref's own) or icai (annotated pairs v2.0).")
    ] = "jsonl",
    db: DbOption = DEFAULT_DB,
    source: SourceOption = None,
    domain: DomainOption = None,
    reference: Annotated[str, typer.Option(help="icai: the default annotator.")] = "human",
) -> None:
    """Export pairs with their labels (icai: also concepts as principles, with their values)."""
    if fmt not in ("jsonl", "icai"):
        raise InputError(f"unknown export format {fmt!r} (known: jsonl, icai)")
    with ConceptStore(db, create=False) as store:
        items = list(store.labeled_pairs(source=source, domain=domain))
        if fmt == "jsonl":
            with out.open("w", encoding="utf-8") as handle:
                count = write_native(items, handle)
        else:
            concepts = store.concepts()
            values = {(v.pair_id, v.concept_id): v for v in store.values()}
            write_icai(
                icai_document(
                    items, dataset_name=source or store.path.stem, reference=reference, concepts=concepts, values=values
                ),
                out,
            )
            count = len(items)
            unlabelled = sum(all(label.mechanism != reference for label in item.labels) for item in items)
            if unlabelled:
                console.print(
                    f"note: {unlabelled} pairs have no {reference!r} label; ICAI's and Feedback Forensics' loaders "
                    "need the default annotator on every comparison (export with --domain/--source, or another "
                    "--reference)",
                    style="yellow",
                )
    console.print(f"Exported {count} pairs to {out} ({fmt})", highlight=False)


def demo_command(
    workdir: Annotated[Path, typer.Option("--dir", help="Where the demo set, its store and the report go.")] = Path(
        "whypref-demo"
    ),
    per_domain: Annotated[int, typer.Option(min=8, max=1000, help="Pairs per domain (3 domains).")] = 100,
    llm_pairs: Annotated[
        int, typer.Option(min=1, max=100, help="Pairs per domain the LLM annotates (slow with the embedded model).")
    ] = 2,
    measured_only: Annotated[bool, typer.Option(help="No LLM: only the concepts code measures.")] = False,
) -> None:
    """The main job on a demo set whypref writes itself: import, discover and annotate concepts with the
    LLM (embedded by default), fit HMDR for each mechanism, explain, and write a report."""
    from cli.concepts import make_llm
    from cli.progress import stage_progress
    from tools.demo_job import run_demo

    with stage_progress(console) as progress:
        report = run_demo(workdir, per_domain, None if measured_only else make_llm, progress, llm_per_domain=llm_pairs)
    console.print(report.summary, highlight=False)
    if report.usage is not None:
        console.print(f"Cost: {report.usage} on {report.llm_name}", highlight=False)
    console.print(f"Store: {report.db}; charts, JSON and markdown in {report.report_dir}", highlight=False)
    console.print(f"Report: {report.html}", highlight=False)


def pairs_command(
    db: DbOption = DEFAULT_DB,
    source: SourceOption = None,
    domain: DomainOption = None,
    contains: Annotated[str | None, typer.Option(help="Only pairs whose query contains this text.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many pairs.")] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line (id, domain, source, query).")
    ] = False,
) -> None:
    """List stored pairs with their ids (for `explain --pair ID`), optionally filtered."""
    with ConceptStore(db, create=False) as store:
        store.check_names(domains=[domain] if domain else [], source=source)
        shown = []
        for pair in store.pairs(source=source, domain=domain):
            if contains is None or contains.lower() in pair.query_text.lower():
                shown.append(pair)
                if len(shown) == limit:
                    break
    if as_json:
        for pair in shown:
            print(json.dumps({"id": pair.id, "domain": pair.domain, "source": pair.source, "query": pair.query_text}))
        return
    table = Table(title=f"{len(shown)} pairs" + (f" (first {limit})" if len(shown) == limit else ""))
    for column in ("id", "domain", "source", "query"):
        table.add_column(column, overflow="ellipsis", no_wrap=column != "query")
    for pair in shown:
        table.add_row(pair.id, pair.domain, pair.source, " ".join(pair.query_text.split())[:100])
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("import")(import_command)
    app.command("stats")(stats_command)
    app.command("pairs")(pairs_command)
    app.command("export")(export_command)
    app.command("demo")(demo_command)
