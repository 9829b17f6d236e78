"""Application commands: an LLM as a judge (judge), comparing mechanisms (compare), steering a generator
by a judge's explanation (steer) and breaking a judge's ties with concepts (tiebreak)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.concepts import DryRun, make_llm
from cli.console import console
from cli.options import DEFAULT_DB, DbOption, DomainOption, SourceOption
from cli.progress import print_cost, print_estimate, stage_progress
from cli.tables import agreement_table, differences_table, tiebreak_table, win_rate_table
from tools.errors import WhyprefError
from tools.store import ConceptStore

if TYPE_CHECKING:
    pass

JudgeOption = Annotated[str, typer.Option("--mechanism", "-m", help="The judge (a mechanism in the store).")]
CoTOption = Annotated[bool, typer.Option("--cot", help="Ask for a short reasoning before the verdict.")]
TopKOption = Annotated[int, typer.Option("--k", "-k", min=1, help="Concepts to consider.")]


def judge_command(
    db: DbOption = DEFAULT_DB,
    source: SourceOption = None,
    domain: DomainOption = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many pairs.")] = None,
    name: Annotated[str | None, typer.Option(help="Mechanism name (default: judge:<model>).")] = None,
    cot: CoTOption = False,
    dry_run: DryRun = False,
) -> None:
    """Label pairs with the configured LLM as a judge, both orders (a flip is a tie): a new mechanism."""
    from tools.judge import judge_requests, label_pairs

    with ConceptStore(db, create=False) as store:
        pairs = list(store.pairs(source=source, domain=domain))[:limit]
        if not pairs:
            raise WhyprefError("no pairs to judge (check --source / --domain)")
        llm = make_llm(store)
        if dry_run:
            requests = judge_requests(pairs, chain_of_thought=cot, max_chars=llm.max_response_chars)
            print_estimate(console, {"judge": llm.estimate(requests)})
            return
        with stage_progress(console) as progress:
            result = label_pairs(
                store,
                llm,
                pairs,
                mechanism=name,
                chain_of_thought=cot,
                progress=progress,
            )
    console.print(
        f"Judged {result.labelled} of {result.pairs} pairs as mechanism {result.mechanism} "
        f"({result.missing} without a valid answer in both orders).",
        highlight=False,
    )
    if result.ties is not None and result.first_shown is not None:
        console.print(
            f"Ties (verdict flipped with the order): {100 * result.ties:.1f}%; answers picking the response shown "
            f"first: {100 * result.first_shown:.1f}% (50% is no position bias).",
            highlight=False,
        )
    print_cost(console, llm.usage, llm.name)
    console.print(f"Next: whypref fit -m {result.mechanism} --db {db}; whypref compare --db {db}", highlight=False)


def compare_command(
    db: DbOption = DEFAULT_DB,
    source: SourceOption = None,
    domain: DomainOption = None,
    mechanism: Annotated[
        list[str], typer.Option("--mechanism", "-m", help="Mechanisms to compare (repeatable; default: all).")
    ] = [],  # noqa: B006
    first: Annotated[str, typer.Option(help="Weight differences: this mechanism's model...")] = "human",
    second: Annotated[str | None, typer.Option(help="...minus this one's (both fitted; default: no table).")] = None,
    top: Annotated[int, typer.Option(min=1, help="Concepts per domain in the differences.")] = 5,
) -> None:
    """Agreement between all mechanisms; with --second, the concepts whose lift differs most, per domain."""
    from tools.comparison import agreement_matrix, weight_differences

    with ConceptStore(db, create=False) as store:
        matrix = agreement_matrix(store, mechanisms=mechanism or None, source=source, domain=domain)
        chosen = [domain] if domain else None
        differences = (
            weight_differences(store, first, second, source=source, domains=chosen, top_k=top) if second else None
        )
    console.print(agreement_table(matrix))
    if differences is not None:
        console.print(differences_table(differences))


def steer_command(
    mechanism: JudgeOption,
    db: DbOption = DEFAULT_DB,
    domain: Annotated[list[str], typer.Option(help="Domains of the held-out queries (repeatable).")] = [],  # noqa: B006
    per_domain: Annotated[int, typer.Option(min=1, help="Held-out queries per domain.")] = 10,
    source: SourceOption = None,
    k: TopKOption = 4,
    seed: int = 0,
    query: Annotated[str | None, typer.Option(help="Just one query: print its concepts and steered response.")] = None,
    scorer_url: Annotated[
        str | None, typer.Option(help="Evaluate with a reward model: POST {query, response} -> {score}.")
    ] = None,
    cot: CoTOption = False,
    max_tokens: Annotated[int, typer.Option(min=16, help="Generation budget per response.")] = 300,
    out: Annotated[Path | None, typer.Option(help="Write the full report (responses, verdicts) as JSON.")] = None,
) -> None:
    """Judge hack: responses steered by the judge's top-k concepts (or k random ones) against plain ones."""
    from tools.steering import HTTPScorer, JudgeEvaluator, ScorerEvaluator, advise, held_out_queries, steer

    with ConceptStore(db, create=False) as store:
        if query is not None:
            if len(domain) != 1:
                raise WhyprefError("--query needs exactly one --domain")
            llm = make_llm(store)
            with console.status("Generating..."):
                advice = advise(
                    store, mechanism, domain[0], k=k, seed=seed, query=query, generator=llm, max_tokens=max_tokens
                )
            console.print(f"Concepts ({mechanism} in {advice.domain}, model {advice.model_id}):", highlight=False)
            for c in advice.concepts:
                console.print(f"  {c.concept} (lift {c.lift:+.1f}%): {c.definition}", highlight=False)
            console.print(advice.response or "", highlight=False)
            return
        domains = domain or sorted({p.domain for p in store.pairs(source=source)})
        queries = held_out_queries(store, mechanism, domains=domains, per_domain=per_domain, source=source)
        llm = make_llm(store)
        evaluator = (
            ScorerEvaluator(HTTPScorer(scorer_url), name=scorer_url)
            if scorer_url
            else JudgeEvaluator(llm, chain_of_thought=cot)
        )
        with stage_progress(console) as progress:
            report = steer(
                store,
                llm,
                mechanism,
                queries,
                evaluator,
                k=k,
                seed=seed,
                max_tokens=max_tokens,
                progress=progress,
            )
    console.print(win_rate_table(report))
    if out is not None:
        out.write_text(report.model_dump_json(indent=1), encoding="utf-8")
        console.print(f"Report: {out}", highlight=False)
    print_cost(console, llm.usage, llm.name)


def tiebreak_command(
    mechanism: JudgeOption,
    db: DbOption = DEFAULT_DB,
    reference: Annotated[str, typer.Option(help="Whose verdicts count as right (and whose explanation).")] = "human",
    source: SourceOption = None,
    k: TopKOption = 4,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many ties.")] = None,
    seed: int = 0,
    cot: CoTOption = False,
) -> None:
    """Re-ask a judge on its ties with k concepts (human, own, difference, random): accuracy gain."""
    from tools.tiebreak import tie_break

    with ConceptStore(db, create=False) as store:
        llm = make_llm(store)
        with stage_progress(console) as progress:
            report = tie_break(
                store,
                llm,
                mechanism,
                reference=reference,
                k=k,
                source=source,
                limit=limit,
                seed=seed,
                chain_of_thought=cot,
                progress=progress,
            )
    console.print(tiebreak_table(report))
    console.print("Before the re-ask every tie counts 0.5 (50%).")
    print_cost(console, llm.usage, llm.name)


def register(app: typer.Typer) -> None:
    app.command("judge")(judge_command)
    app.command("compare")(compare_command)
    app.command("steer")(steer_command)
    app.command("tiebreak")(tiebreak_command)
