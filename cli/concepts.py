"""Concept commands: discover (LLM), annotate (LLM + measured), and managing concepts by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.console import add_columns, console
from cli.options import DEFAULT_DB, RUN, DbOption, DomainOption, SourceOption
from cli.progress import print_cost, print_estimate, stage_progress
from tools.concepts import Concept, ConceptKind, ConceptScope, Representation
from tools.errors import WhyprefError
from tools.settings import Settings
from tools.store import ConceptStore

if TYPE_CHECKING:
    from tools.llm import LLM

concepts_app = typer.Typer(help="List, show, edit, delete or add concepts by hand.", no_args_is_help=True)
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the calls and tokens it would spend, then stop.")]


def make_llm(store: ConceptStore) -> LLM:
    """The configured LLM, saying plainly when it is the weak embedded default."""
    from tools.llm import LLM

    settings = Settings()
    if RUN.batch_out is not None:
        settings = settings.model_copy(update={"batch_out": RUN.batch_out})
    if settings.base_url is None:
        console.print(
            "Using the embedded local model (Qwen2.5-Coder 1.5B): demo-grade, a weak annotator. "
            "For real analyses set WHYPREF_BASE_URL / WHYPREF_MODEL / WHYPREF_API_KEY.",
            style="yellow",
        )
    with console.status("Starting the LLM..."):
        return LLM.from_settings(settings, store)


def discover_command(
    db: DbOption = DEFAULT_DB,
    source: SourceOption = None,
    domain: Annotated[list[str], typer.Option(help="Only these domains (repeatable).")] = [],  # noqa: B006
    mechanism: Annotated[str, typer.Option(help="Whose choices tell chosen from rejected.")] = "human",
    batches: Annotated[int, typer.Option(min=1, help="Batches of 5 pairs per domain (the paper: 300).")] = 4,
    seed: int = 0,
    dry_run: DryRun = False,
) -> None:
    """Discover concepts that separate chosen from rejected responses, per domain, with an LLM."""
    from tools.discovery import Discovery, DiscoveryConfig

    config = DiscoveryConfig(mechanism=mechanism, batches_per_domain=batches, seed=seed)
    with ConceptStore(db, create=False) as store:
        llm = make_llm(store)
        with stage_progress(console) as progress:
            discovery = Discovery(store, llm, config, progress)
            if dry_run:
                estimates = discovery.estimate(source, domain or None)
            else:
                result = discovery.run(source, domain or None)
        if dry_run:
            print_estimate(console, estimates, "merge and define are estimated from the batch count")
            return
    console.print(
        f"Discovered {len(result.concepts)} concepts ({result.shared} shared, {result.specific} "
        f"domain-specific) from {result.batches} batches; {result.proposed} names proposed, "
        f"{len(result.merges)} merged.",
        highlight=False,
    )
    print_cost(console, llm.usage, llm.name)


def annotate_command(
    db: DbOption = DEFAULT_DB,
    source: SourceOption = None,
    domain: DomainOption = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many pairs (per run).")] = None,
    representation: Annotated[
        Representation | None,
        typer.Option(
            help="comp (A vs B, both orders), score (1-7 each) or prob (P(yes) from token log-probabilities). "
            "Default: prob for the embedded model, comp for an endpoint."
        ),
    ] = None,
    relevance: Annotated[
        bool | None, typer.Option("--relevance/--no-relevance", help="Ask which concepts matter first (not with prob).")
    ] = None,
    measured_only: Annotated[bool, typer.Option(help="Only the free, code-measured concepts.")] = False,
    dry_run: DryRun = False,
) -> None:
    """Annotate pairs as concept vectors: measured concepts always, LLM concepts unless --measured-only.
    Only values not yet in the store are asked for."""
    from tools.annotation import AnnotationConfig
    from tools.operations import Selection, annotate, estimate_annotation

    with ConceptStore(db, create=False) as store:
        llm = None if measured_only else make_llm(store)
        config = AnnotationConfig.choose(
            embedded=llm is not None and llm.embedded,
            representation=representation,
            relevance=relevance,
            llm_concepts=not measured_only,
        )
        selection = Selection(source, domain, limit)
        if dry_run and llm is not None:
            print_estimate(console, estimate_annotation(store, llm, config, selection))
            return
        with stage_progress(console) as progress:
            result = annotate(store, llm, config, selection, progress=progress)
    console.print(
        f"Annotated {result.pairs} pairs: {result.measured_values} measured values, "
        f"{result.values_written} LLM values ({result.missing_answers} answers missing).",
        highlight=False,
    )
    if result.swap_consistent is not None:
        console.print(
            f"Swap rule: {100 * result.swap_consistent:.1f}% of decided first-order answers survived "
            "the swapped order.",
            highlight=False,
        )
    if llm is not None:
        print_cost(console, llm.usage, llm.name)


@concepts_app.command("list")
def list_command(
    db: DbOption = DEFAULT_DB,
    kind: Annotated[ConceptKind | None, typer.Option(help="Only this kind.")] = None,
) -> None:
    """Every concept: id, name, kind, scope."""
    with ConceptStore(db, create=False) as store:
        concepts = store.concepts(kind=kind)
        counts = store.value_counts()
    table = Table(title=f"{len(concepts)} concepts")
    for column in ("id", "name", "kind", "scope", "values"):
        table.add_column(column, justify="right" if column == "values" else "left")
    for c in concepts:
        scope = c.scope.value if c.scope is ConceptScope.SHARED else f"domain: {', '.join(c.domains)}"
        table.add_row(c.id, c.name, c.kind.value, scope, str(counts.get(c.id, 0)))
    console.print(table)


def _get(store: ConceptStore, cid: str) -> Concept:
    found = next((c for c in store.concepts() if c.id == cid), None)
    if found is None:
        raise WhyprefError(f"no concept {cid!r} (see `whypref concepts list`)")
    return found


@concepts_app.command("show")
def show_command(concept: Annotated[str, typer.Argument(help="Concept id.")], db: DbOption = DEFAULT_DB) -> None:
    """A concept's definition and provenance."""
    with ConceptStore(db, create=False) as store:
        c = _get(store, concept)
    print(c.model_dump_json(indent=1))


@concepts_app.command("add")
def add_command(
    name: Annotated[str, typer.Argument()],
    definition: Annotated[str, typer.Option(help="'A high score indicates ...; a low score indicates ...'")],
    db: DbOption = DEFAULT_DB,
    domain: Annotated[list[str], typer.Option(help="Domain-specific to these domains (default: shared).")] = [],  # noqa: B006
) -> None:
    """Add a concept by hand (annotate afterwards to give it values)."""
    with ConceptStore(db, create=False) as store:
        store.check_names(domains=domain)
        scope = ConceptScope.DOMAIN if domain else ConceptScope.SHARED
        added = store.add_concept(
            Concept(
                name=name,
                definition=definition,
                kind=ConceptKind.MANUAL,
                scope=scope,
                domains=tuple(domain),
                provenance={"added_by": "hand"},
            )
        )
    console.print(f"Added concept {name.strip()!r} (id {added}).")


@concepts_app.command("edit")
def edit_command(
    concept: Annotated[str, typer.Argument(help="Concept id.")],
    db: DbOption = DEFAULT_DB,
    definition: Annotated[str | None, typer.Option()] = None,
    shared: Annotated[bool | None, typer.Option("--shared/--domain-specific", help="Change the scope.")] = None,
    domain: Annotated[list[str], typer.Option(help="Domains of a domain-specific concept.")] = [],  # noqa: B006
) -> None:
    """Change a concept's definition or scope (its values stay; re-annotate if the meaning changed)."""
    with ConceptStore(db, create=False) as store:
        c = _get(store, concept)
        store.check_names(domains=domain)
        update: dict = {}
        if definition is not None:
            update["definition"] = definition
        if shared is True:
            update |= {"scope": ConceptScope.SHARED, "domains": ()}
        elif shared is False or domain:
            update |= {"scope": ConceptScope.DOMAIN, "domains": tuple(domain or c.domains)}
        edited = Concept.model_validate(c.model_dump() | update | {"provenance": c.provenance | {"edited": True}})
        store.upsert_concepts([edited])
    console.print(f"Updated concept {concept!r}.")


@concepts_app.command("delete")
def delete_command(concept: Annotated[str, typer.Argument(help="Concept id.")], db: DbOption = DEFAULT_DB) -> None:
    """Delete a concept and all its values."""
    with ConceptStore(db, create=False) as store:
        _get(store, concept)
        store.delete_concept(concept)
    console.print(f"Deleted concept {concept!r} and its values.")


def mine_command(
    mechanism: Annotated[str, typer.Option("--mechanism", "-m", help="Whose choices to mine.")] = "human",
    db: DbOption = DEFAULT_DB,
    source: SourceOption = None,
    max_patterns: Annotated[int, typer.Option("--max", min=1, help="At most this many candidates.")] = 10,
    llm_names: Annotated[
        bool, typer.Option("--llm-names", help="Have the configured LLM name and define each phrase.")
    ] = False,
) -> None:
    """Mine phrases whose presence in one response predicts the preferred one, beyond the concepts in the
    store (forward selection, each step with family-wise error 5%, clustered by query); add them as
    candidate concepts (kind mined)."""
    from tools.mining import MiningConfig, mine_store

    with ConceptStore(db, create=False) as store:
        llm = make_llm(store) if llm_names else None
        with console.status("Mining phrases..."):
            result = mine_store(
                store, mechanism, config=MiningConfig(max_patterns=max_patterns), llm=llm, source=source
            )
    table = Table(title=f"{len(result.patterns)} significant phrases in {result.pairs} non-tie pairs of {mechanism}")
    add_columns(
        table, ("phrase", "preferred when in one only", "pairs", "z", "family-wise p", "weight"), text=("phrase",)
    )
    for p in result.patterns:
        table.add_row(
            p.phrase,
            f"{100 * p.agreement:.0f}%",
            str(p.pairs),
            f"{p.z:+.1f}",
            f"{p.p_value:.3f}",
            f"{p.weight:+.2f}",
        )
    console.print(table)
    console.print(
        f"Added {len(result.concepts)} candidate concepts (named by {result.named_by}). They were chosen on "
        "these pairs: a model evaluated on them is optimistic. `whypref agent run` mines on its training split "
        "and keeps only what helps held-out accuracy.",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("discover")(discover_command)
    app.command("mine")(mine_command)
    app.command("annotate")(annotate_command)
    app.add_typer(concepts_app, name="concepts")
