"""The graph's nodes: each reads ids and metrics from the state, calls the library, writes the store.

Every node is idempotent: LLM stages are cached by content (a re-run pays nothing twice), store
writes are upserts and deletes done in one transaction after the node's LLM work, and the state update
is a function of the state and the store. A stage that could cross a budget is not started: the node
returns a ``stop_reason`` and the graph goes to ``finish``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

import numpy as np
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import BaseModel

from agent.budget import BudgetExhausted, check_stage
from agent.config import AgentConfig
from agent.events import AgentEvent, emit
from agent.policy import Plan, choose
from agent.state import AgentState, IterationRecord
from tools.annotation import Annotation, AnnotationConfig
from tools.concepts import Concept, ConceptKind, concept_id
from tools.discovery import Candidate, Discovery, DiscoveryConfig
from tools.errors import WhyprefError
from tools.feedback import (
    ConceptSetScore,
    allocate_batches,
    concept_set_design,
    near_duplicates,
    plan_pruning,
    score_concept_set,
    swap_failure_rates,
)
from tools.grouping import pair_groups
from tools.llm import LLM, Estimate
from tools.measured import measured_concepts
from tools.mining import MiningConfig, mine_patterns, pattern_concept
from tools.progress import Progress
from tools.store import ConceptDecision, ConceptStore, content_key

M = TypeVar("M", bound=BaseModel)


@dataclass
class AgentContext:
    """What the nodes work with, given to every invocation (never checkpointed)."""

    store: ConceptStore
    llm: LLM
    config: AgentConfig
    started: float = field(default_factory=time.monotonic)  # wall-time budget: per invocation


# -- helpers ------------------------------------------------------------------------------------
def _event(ctx: AgentContext, state: AgentState, node: str, kind: str = "node", **fields: Any) -> None:
    usage = ctx.store.run_usage(state["run_id"])
    emit(
        AgentEvent(
            kind=kind,  # type: ignore[arg-type]
            run_id=state["run_id"],
            iteration=state.get("iteration", 0),
            node=node,
            calls=usage.calls,
            tokens=usage.tokens,
            **fields,
        )
    )


def _progress(ctx: AgentContext, state: AgentState) -> Progress:
    def report(stage: str, done: int, total: int | None) -> None:
        event = AgentEvent(
            kind="llm", run_id=state["run_id"], iteration=state.get("iteration", 0), node=stage, done=done, total=total
        )
        emit(event)

    return report


def _guard(ctx: AgentContext, state: AgentState) -> Callable[[str, Estimate], None]:
    def guard(stage: str, estimate: Estimate) -> None:
        check_stage(ctx.store, state["run_id"], ctx.config, ctx.llm, stage, estimate)

    return guard


def _discovery(ctx: AgentContext, state: AgentState) -> Discovery:
    config = DiscoveryConfig(
        mechanism=ctx.config.mechanism,
        batch_size=ctx.config.batch_size,
        concepts_per_batch=ctx.config.concepts_per_batch,
        seed=ctx.config.seed + state.get("iteration", 0),  # other batches and framings every round
    )
    return Discovery(ctx.store, ctx.llm, config, _progress(ctx, state), _guard(ctx, state))


def _domains(ctx: AgentContext) -> dict[str, str]:
    """Domain of every pair labelled by the mechanism."""
    rows = ctx.store.label_rows(source=ctx.config.source, mechanism=ctx.config.mechanism)
    return {r["pair_id"]: r["domain"] for r in rows}


def _chance(ctx: AgentContext, state: AgentState) -> ConceptSetScore:
    return ConceptSetScore.chance(_domains(ctx), state["train_ids"], state["test_ids"])


def _score(ctx: AgentContext, state: AgentState, concept_ids: list[str]) -> ConceptSetScore:
    if not concept_ids:
        return _chance(ctx, state)
    pairs = {*state["train_ids"], *state["test_ids"]}
    design = concept_set_design(ctx.store, ctx.config.mechanism, concept_ids, pairs)
    return score_concept_set(
        design,
        set(state["train_ids"]),
        set(state["test_ids"]),
        n_splits=ctx.config.n_splits,
        random_state=ctx.config.seed,
    )


def _from_state(state: AgentState, key: Literal["scored", "plan"], model: type[M]) -> M:
    """What an earlier node left in the state (plain JSON: checkpoints restore it as written)."""
    value = state.get(key)
    if value is None:
        raise WhyprefError(f"agent run {state['run_id']}: no {key} in the state (a node ran out of order)")
    return model.model_validate(value)


def _current(ctx: AgentContext, state: AgentState) -> ConceptSetScore:
    current = state.get("current")
    return ConceptSetScore.model_validate(current) if current else _chance(ctx, state)


def _reference(ctx: AgentContext, state: AgentState, scored: ConceptSetScore) -> ConceptSetScore:
    """What a round's change is measured against: the accepted set's score. The first fit of a starting
    set is its own reference; a first round from no concepts faces chance."""
    return _current(ctx, state) if state.get("current") or state.get("candidates") else scored


def _n_domains(ctx: AgentContext, state: AgentState) -> int:
    """The domain count deciding a new concept's scope (shared if found in half of them): 1 makes all shared."""
    if ctx.config.shared:
        return 1
    domains = _domains(ctx)
    return len({domains[p] for p in state["train_ids"]})


def _stamped(concepts: list[Concept], state: AgentState) -> list[Concept]:
    """Concepts with the run and round that proposed them in their provenance."""
    stamp = {"agent_run": state["run_id"], "iteration": state.get("iteration", 0)}
    return [c.model_copy(update={"provenance": {**c.provenance, **stamp}}) for c in concepts]


def _stop(ctx: AgentContext, state: AgentState, node: str, error: BudgetExhausted) -> dict[str, Any]:
    _event(ctx, state, node, "stop", message=str(error))
    return {"stop_reason": str(error)}


def _decision(state: AgentState, concept: Concept | None, cid: str, action: str, reason: str, **metrics: Any):
    return ConceptDecision(
        run_id=state["run_id"],
        iteration=state.get("iteration", 0),
        concept_id=cid,
        action=action,  # type: ignore[arg-type]
        reason=reason,
        concept=concept.model_dump(mode="json") if concept else {},
        metrics={k: v for k, v in metrics.items() if v is not None},
    )


# -- nodes --------------------------------------------------------------------------------------
def sample(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Pairs to work on, split per domain into training and held-out pairs; the starting concept set."""
    ctx, config = runtime.context, runtime.context.config
    by_domain: dict[str, list[str]] = {}
    for pair_id, domain in _domains(ctx).items():
        if not config.domains or domain in config.domains:
            by_domain.setdefault(domain, []).append(pair_id)
    missing = sorted(set(config.domains) - set(by_domain))
    if not by_domain or missing:
        raise WhyprefError(
            f"no pairs labelled by {config.mechanism!r}" + (f" in domain(s) {', '.join(missing)}" if missing else "")
        )
    chosen = {
        domain: sorted(ids, key=lambda p: content_key([config.seed, p]))[: config.pairs_per_domain]
        for domain, ids in by_domain.items()
    }
    everything = [p for domain in sorted(chosen) for p in chosen[domain]]
    group_of = dict(zip(everything, pair_groups(ctx.store.pair_texts(everything)).tolist(), strict=True))
    # Whole query groups are held out (pairs sharing a query or a response never straddle the split).
    held_out: set[int] = set()
    for domain in sorted(chosen):
        ids = chosen[domain]
        members = Counter(group_of[p] for p in ids)
        n_test = max(1, round(config.test_fraction * len(ids)))
        count = sum(n for g, n in members.items() if g in held_out)  # held out with an earlier domain
        for pair_id in ids:
            if count >= n_test:
                break
            if group_of[pair_id] not in held_out:
                held_out.add(group_of[pair_id])
                count += members[group_of[pair_id]]
    test = [p for p in everything if group_of[p] in held_out]
    train = [p for p in everything if group_of[p] not in held_out]
    concepts = [c.id for c in ctx.store.concepts() if c.kind is not ConceptKind.MEASURED]
    if config.measured:
        concepts += [c.id for c in measured_concepts()]
    update: dict[str, Any] = {
        "train_ids": train,
        "test_ids": test,
        "concepts": concepts,
        "candidates": [],
        "iteration": 0,
        "stale": 0,
    }
    _event(
        ctx,
        cast(AgentState, {**state, **update}),
        "sample",
        message=f"{len(train)} training, {len(test)} held-out pairs",
    )
    return update


def propose(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """New concepts from the pairs the accepted set gets wrong, more batches where it does worst."""
    ctx = runtime.context
    current = _current(ctx, state)
    bank = {p for ids in current.errors.values() for p in ids}
    discovery = _discovery(ctx, state)
    stored = ctx.store.concepts()
    # Concepts this run already turned away are named as known too, so they are not paid for again.
    gone = {
        d.concept_id: str(d.concept.get("name", d.concept_id))
        for d in ctx.store.decisions(state["run_id"])
        if d.action in ("rejected", "dropped", "merged")
    }
    known = [c.name for c in stored] + [name for cid, name in gone.items() if cid not in {c.id for c in stored}]
    try:
        proposed = discovery.propose_from_pairs(
            bank, allocate_batches(current, ctx.config.batches_per_iteration), known
        )
    except BudgetExhausted as error:
        return _stop(ctx, state, "propose", error)
    taken = {c.id for c in stored} | set(gone)
    new = {k: c for k, c in proposed.items() if k not in taken}
    concepts = _stamped(
        discovery.to_concepts(new, {k: c.descriptions[0] for k, c in new.items()}, _n_domains(ctx, state)), state
    )
    mined = _stamped(_mined(ctx, state, taken | {c.id for c in concepts}), state) if ctx.config.mine else []
    ctx.store.upsert_concepts([*concepts, *mined])
    _event(
        ctx,
        state,
        "propose",
        message=f"{len(concepts)} new concepts from {len(bank)} error pairs, {len(mined)} mined phrases",
    )
    return {"candidates": [c.id for c in [*concepts, *mined]]}


def _mined(ctx: AgentContext, state: AgentState, taken: set[str]) -> list[Concept]:
    """Phrases mined from the training pairs for what the accepted concepts leave unexplained (no LLM
    call); none before there is an accepted concept to mine beside."""
    if not state["concepts"]:
        return []
    design = concept_set_design(ctx.store, ctx.config.mechanism, state["concepts"], set(state["train_ids"]))
    fitting, _ = design.for_fitting()
    if min(np.sum(fitting.y == 1), np.sum(fitting.y == -1)) < 5:
        return []
    texts = [(a, b) for _, a, b in ctx.store.pair_texts(fitting.pair_ids)]
    config = MiningConfig(max_patterns=ctx.config.mined_per_round)
    patterns = mine_patterns(texts, fitting.y, fitting.groups, fitting.X, config, fitting.pair_ids)
    return [c for c in (pattern_concept(p, ctx.config.mechanism) for p in patterns) if c.id not in taken]


def merge(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Merge new concepts that name the same thing (as each other or as a kept one); define the rest."""
    ctx = runtime.context
    stored = {c.id: c for c in ctx.store.concepts()}
    # Mined phrases are defined by their phrase: nothing for the LLM to merge or define.
    mined = [c for c in state.get("candidates", []) if c in stored and stored[c].kind is ConceptKind.MINED]
    candidates = {c: Candidate.of(stored[c]) for c in state.get("candidates", []) if c in stored and c not in mined}
    if not candidates:
        return {"candidates": mined}
    fixed = {c: Candidate.of(stored[c]) for c in state["concepts"] if c in stored}
    discovery = _discovery(ctx, state)
    try:
        merged, _ = discovery.merge({**fixed, **candidates}, fixed=fixed.keys())
        survivors = {k: c for k, c in merged.items() if k in candidates}
        definitions = discovery.define(survivors)
    except BudgetExhausted as error:
        return _stop(ctx, state, "merge", error)
    into = {concept_id(name): key for key, c in merged.items() for name in c.merged}
    absorbed = [c for c in candidates if c not in survivors]
    decisions = [
        _decision(state, stored[c], c, "merged", f"the same concept as {merged[into[c]].name!r} (LLM-confirmed)")
        for c in absorbed
    ]
    concepts = _stamped(discovery.to_concepts(survivors, definitions, _n_domains(ctx, state)), state)
    with ctx.store.atomic():
        for c in absorbed:
            ctx.store.delete_concept(c)
        ctx.store.upsert_concepts(concepts)
        ctx.store.record_decisions(decisions)
    _event(ctx, state, "merge", message=f"{len(absorbed)} merged, {len(survivors)} defined")
    return {"candidates": [*survivors, *mined]}


def annotate(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Values of every concept on every sampled pair; only cells not in the store are asked for."""
    ctx = runtime.context
    wanted = {*state["train_ids"], *state["test_ids"]}
    pairs = [p for p in ctx.store.pairs(source=ctx.config.source) if p.id in wanted]
    annotation = Annotation(ctx.store, ctx.llm, AnnotationConfig(relevance=ctx.config.relevance), _progress(ctx, state))
    stages = annotation.estimate(pairs).values()
    worst = Estimate(
        calls=sum(e.calls for e in stages),
        cached=sum(e.cached for e in stages),
        prompt_tokens=sum(e.prompt_tokens for e in stages),
        completion_tokens=sum(e.completion_tokens for e in stages),
    )
    try:
        check_stage(ctx.store, state["run_id"], ctx.config, ctx.llm, "annotate", worst)
    except BudgetExhausted as error:
        return _stop(ctx, state, "annotate", error)
    result = annotation.run(pairs)
    _event(ctx, state, "annotate", message=f"{result.values_written} values on {len(pairs)} pairs")
    return {}


def fit(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """HMDR (configuration by CV) on the training pairs, scored on the held-out ones."""
    ctx = runtime.context
    scored = _score(ctx, state, [*state["concepts"], *state.get("candidates", [])])
    _event(ctx, state, "fit", in_domain=scored.in_domain, ood=scored.ood, concepts=len(scored.concept_ids))
    return {"scored": scored.model_dump()}


def validate(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Flag concepts the feedback condemns; keep the change only if held-out accuracy does not fall."""
    ctx = runtime.context
    scored = _from_state(state, "scored", ConceptSetScore)
    candidates = state.get("candidates", [])
    reference = _reference(ctx, state, scored)
    flagged = []
    if scored.concept_ids:
        train = set(state["train_ids"])
        design = concept_set_design(ctx.store, ctx.config.mechanism, scored.concept_ids, train)
        duplicates = near_duplicates(design.X, scored.concept_ids, ctx.config.pruning.max_correlation)
        swaps = swap_failure_rates(ctx.store, scored.concept_ids, train)
        flagged = plan_pruning(scored, swaps, duplicates, ctx.config.pruning)
    plan = choose(
        state["concepts"],
        candidates,
        scored,
        reference,
        flagged,
        lambda ids: _score(ctx, state, ids),
        ctx.config.tolerance,
    )
    _event(ctx, state, "validate", message=f"{len(flagged)} concepts flagged", in_domain=plan.score.in_domain)
    return {"plan": plan.model_dump()}


def approve(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """With ``approve`` on, a human confirms drops and merges of kept concepts (else the fallback)."""
    plan = _from_state(state, "plan", Plan)
    if not runtime.context.config.approve or not plan.changes:
        return {}
    approved = interrupt(
        {
            "run_id": state["run_id"],
            "iteration": state.get("iteration", 0),
            "changes": [c.model_dump() for c in plan.changes],
            "in_domain": plan.score.in_domain,
            "ood": plan.score.ood,
        }
    )
    assert plan.fallback is not None  # a plan with drops always carries one
    return {} if approved else {"plan": plan.fallback.model_dump()}


def decide(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Apply the plan, record why each concept was added, kept, merged, dropped or rejected; stop or loop."""
    ctx, config = runtime.context, runtime.context.config
    plan = _from_state(state, "plan", Plan)
    scored = _from_state(state, "scored", ConceptSetScore)
    first = not state.get("current")
    reference = _reference(ctx, state, scored)
    stored = {c.id: c for c in ctx.store.concepts()}
    # A kill after the store write below but before LangGraph's checkpoint runs this node again, with
    # the turned-away concepts already deleted: their recorded snapshots are then the only copy.
    recorded = {
        d.concept_id: Concept.model_validate(d.concept)
        for d in ctx.store.decisions(state["run_id"])
        if d.iteration == state.get("iteration", 0) and d.concept
    }
    known = recorded | stored

    def decision(cid: str, action: str, reason: str):
        return _decision(
            state,
            known.get(cid),
            cid,
            action,
            reason,
            in_domain=plan.score.in_domain,
            ood=plan.score.ood,
            support=scored.support.get(cid),
        )

    change = f"held-out in-domain {100 * plan.score.in_domain:.1f}%" + (
        f", out-of-domain {100 * plan.score.ood:.1f}%" if plan.score.ood is not None else ""
    )
    decisions = [decision(c, "added", f"proposed from the model's errors; {change}") for c in plan.added]
    decisions += [decision(c, "rejected", reason) for c, reason in plan.rejected.items()]
    decisions += [decision(c.concept_id, c.action, c.reason) for c in plan.changes]
    decisions += [decision(c, "kept", reason) for c, reason in plan.kept.items()]
    if first and not state.get("candidates"):
        decided = {d.concept_id for d in decisions}
        decisions += [decision(c, "kept", "starting set") for c in state["concepts"] if c not in decided]
    removed = [c for c in [*plan.rejected, *(c.concept_id for c in plan.changes)] if c in stored]
    with ctx.store.atomic():
        ctx.store.record_decisions(decisions)
        for c in removed:
            if stored[c].kind is not ConceptKind.MEASURED:  # measured values are free: they stay in the store
                ctx.store.delete_concept(c)
    iteration = state.get("iteration", 0)
    gained = plan.score.gain_over(reference) > config.min_gain
    stale = 0 if first or gained else state.get("stale", 0) + 1
    usage = ctx.store.run_usage(state["run_id"])
    record = IterationRecord(
        iteration=iteration,
        concepts=len(plan.keep),
        added=plan.added,
        dropped=[c.concept_id for c in plan.changes if c.action == "dropped"],
        merged=[c.concept_id for c in plan.changes if c.action == "merged"],
        rejected=list(plan.rejected),
        in_domain=plan.score.in_domain,
        ood=plan.score.ood,
        cv_accuracy=plan.score.cv_accuracy,
        calls=usage.calls,
        tokens=usage.tokens,
    )
    stop = None
    if iteration + 1 >= config.max_iterations:
        stop = f"iterations: {config.max_iterations} done"
    elif stale >= config.patience:
        stop = f"converged: no held-out gain above {config.min_gain} for {stale} rounds"
    elif usage.calls >= config.max_calls:
        stop = f"call budget: all {config.max_calls} calls spent"
    elif config.max_seconds is not None and time.monotonic() - ctx.started > config.max_seconds:
        stop = f"wall time: over {config.max_seconds:.0f} s"
    _event(
        ctx,
        state,
        "decide",
        added=plan.added,
        dropped=[c.concept_id for c in plan.changes],
        rejected=list(plan.rejected),
        in_domain=plan.score.in_domain,
        ood=plan.score.ood,
        concepts=len(plan.keep),
        message=stop or "",
    )
    return {
        "concepts": plan.keep,
        "candidates": [],
        "current": plan.score.model_dump(),
        "scored": None,
        "plan": None,
        "iteration": iteration + 1,
        "stale": stale,
        "history": [record.model_dump()],
        "stop_reason": stop,
    }


def finish(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Leave the store holding the accepted set (measured concepts aside) and close the run record."""
    ctx = runtime.context
    accepted = set(state.get("concepts", []))
    pending = [c for c in state.get("candidates", []) if c not in accepted]
    stored = {c.id: c for c in ctx.store.concepts()}
    reason = f"the run stopped before validating it ({state.get('stop_reason')})"
    decisions = [_decision(state, stored[c], c, "rejected", reason) for c in pending if c in stored]
    with ctx.store.atomic():
        ctx.store.record_decisions(decisions)
        for c, concept in stored.items():
            if c not in accepted and concept.kind is not ConceptKind.MEASURED:
                ctx.store.delete_concept(c)
    current = state.get("current") or {}
    usage = ctx.store.run_usage(state["run_id"])
    ctx.store.finish_run(
        state["run_id"],
        "finished",
        {
            "stop_reason": state.get("stop_reason"),
            "iterations": state.get("iteration", 0),
            "concepts": sorted(accepted),
            "in_domain": current.get("in_domain"),
            "ood": current.get("ood"),
            "calls": usage.calls,
            "tokens": usage.tokens,
        },
    )
    _event(ctx, state, "finish", "stop", message=state.get("stop_reason") or "", concepts=len(accepted))
    return {}
