"""The discovery agent on planted data with a scripted LLM (tests/helpers.py: PlantedOracle): it learns from
the regression's errors, resumes a killed run without paying twice, keeps its budgets and asks before
dropping when told to."""

import pytest
from langgraph.checkpoint.memory import InMemorySaver

import agent.nodes
from agent.config import AgentConfig
from agent.graph import history, resume_run, sqlite_checkpointer, start_run
from helpers import TRUE, oracle, planted_store
from tools.concepts import ConceptKind
from tools.errors import WhyprefError
from tools.llm import LLM
from tools.store import ConceptStore
from tools.testing import ScriptedChat


def llm_concepts(store) -> set[str]:
    """What the store holds besides the free measured concepts (which annotation always adds)."""
    return {c.id for c in store.concepts() if c.kind is not ConceptKind.MEASURED}


def config(**changes) -> AgentConfig:
    base = {
        "mechanism": "planted",
        "measured": False,
        "relevance": False,
        "max_iterations": 3,
        "patience": 3,
        "batches_per_iteration": 3,
        "max_calls": 100_000,
        "n_splits": 3,  # the agent's CV folds: fewer than a user's 5 prove the same, faster
    }
    return AgentConfig(**(base | changes))


def make_llm(store) -> tuple[ScriptedChat, LLM]:
    chat = ScriptedChat(responder=oracle())
    return chat, LLM(chat, "oracle", store=store, validation_retries=0)


def test_agent_proposes_from_errors_and_raises_held_out_accuracy(tmp_path):
    store = planted_store(tmp_path / "s.db")
    chat, llm = make_llm(store)
    events = []
    result = start_run(store, llm, config(), InMemorySaver(), run_id="r", on_event=events.append)
    first, last = result.history[0], result.history[-1]
    assert first.iteration == 0 and first.added == [] and first.in_domain < 0.65  # noise explains nothing
    assert last.in_domain > first.in_domain + 0.1 and result.in_domain == last.in_domain
    assert set(TRUE) & {c.replace("-", "") for c in result.concepts}  # true concepts were found and kept
    # Proposal prompts showed only training pairs the model got wrong, and named the known concepts.
    proposals = [call[-1]["content"] for call in chat.calls if call[0]["content"].startswith("You study")]
    assert proposals and all("already known" in p and "Starting Noise A" in p for p in proposals)
    # The store holds the accepted set; every turned-away concept has a recorded reason.
    assert llm_concepts(store) == set(result.concepts)
    decisions = store.decisions("r")
    actions = {d.concept_id: d.action for d in decisions}
    assert {actions[c] for c in result.concepts if c not in ("starting-noise-a", "starting-noise-b")} == {"added"}
    assert actions.get("position") == "rejected"  # flips with the order: the swap rule zeroes it
    assert all(d.reason for d in decisions)
    rejected = [d for d in decisions if d.action == "rejected"]
    assert rejected and all(d.concept["name"] for d in rejected)  # kept as they were, to restore
    assert result.calls == len(chat.calls) and result.stop_reason.startswith("iterations")
    assert store.run("r")["status"] == "finished" and store.run("r")["stats"]["concepts"] == sorted(result.concepts)
    kinds = {(e.kind, e.node) for e in events}
    assert {("node", "propose"), ("node", "decide"), ("llm", "compare"), ("stop", "finish")} <= kinds


def test_a_killed_run_resumes_to_the_same_end_without_paying_twice(tmp_path, monkeypatch):
    whole = planted_store(tmp_path / "whole.db")
    chat, llm = make_llm(whole)
    with sqlite_checkpointer(whole.path) as saver:
        expected = start_run(whole, llm, config(), saver, run_id="run")

    store = planted_store(tmp_path / "killed.db")
    fits = 0
    real = agent.nodes.score_concept_set

    def dies_in_round_one(*args, **kwargs):
        nonlocal fits
        fits += 1
        if fits == 2:  # the fit of round 1, after its proposals and annotations were paid for
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(agent.nodes, "score_concept_set", dies_in_round_one)
    first_chat, first_llm = make_llm(store)
    with sqlite_checkpointer(store.path) as saver, pytest.raises(KeyboardInterrupt):
        start_run(store, first_llm, config(), saver, run_id="run")
    assert 0 < len(first_chat.calls) < len(chat.calls) and store.run("run")["status"] == "running"

    monkeypatch.setattr(agent.nodes, "score_concept_set", real)
    second_chat, second_llm = make_llm(store)
    with sqlite_checkpointer(store.path) as saver:  # a new process would open the file again
        resumed = resume_run(store, second_llm, "run", saver)
        with pytest.raises(WhyprefError, match="has finished"):
            resume_run(store, second_llm, "run", saver)
    assert resumed == expected
    assert len(first_chat.calls) + len(second_chat.calls) == len(chat.calls)
    assert store.run_usage("run").calls == len(chat.calls)
    strip = [(d.iteration, d.concept_id, d.action, d.reason) for d in store.decisions("run")]
    assert strip == [(d.iteration, d.concept_id, d.action, d.reason) for d in whole.decisions("run")]
    assert sorted(c.id for c in store.concepts()) == sorted(c.id for c in whole.concepts())


def test_budget_stops_are_exact(tmp_path):
    # Two rounds are enough to cross each budget inside a round (four agent runs in all).
    full_store = planted_store(tmp_path / "full.db")
    _, llm = make_llm(full_store)
    full = start_run(full_store, llm, config(max_iterations=2), InMemorySaver(), run_id="r")
    assert len(full.history) == 2 and full.stop_reason == "iterations: 2 done"
    needed = full.calls

    # Exactly the calls the whole run needs: the same run, to the end.
    store = planted_store(tmp_path / "exact.db")
    _, llm = make_llm(store)
    exact = start_run(store, llm, config(max_iterations=2, max_calls=needed), InMemorySaver(), run_id="r")
    assert exact.calls == needed and exact.stop_reason == full.stop_reason and exact.concepts == full.concepts

    # One call less: the last stage that would cross the budget never starts.
    store = planted_store(tmp_path / "short.db")
    chat, llm = make_llm(store)
    short = start_run(store, llm, config(max_iterations=2, max_calls=needed - 1), InMemorySaver(), run_id="r")
    assert short.stop_reason.startswith("call budget") and len(chat.calls) == short.calls < needed
    assert llm_concepts(store) == set(short.concepts)  # unvalidated candidates are not left behind
    assert short.history == full.history[: len(short.history)]

    # Tokens the same way.
    store = planted_store(tmp_path / "tokens.db")
    _, llm = make_llm(store)
    cap = full.tokens // 2
    tokens = start_run(store, llm, config(max_iterations=2, max_tokens=cap), InMemorySaver(), run_id="r")
    assert tokens.stop_reason.startswith("token budget") and tokens.tokens <= cap


def test_re_asks_are_reserved_in_the_call_budget(tmp_path):
    store = planted_store(tmp_path / "s.db")
    chat = ScriptedChat(responder=oracle())
    llm = LLM(chat, "oracle", store=store, validation_retries=2)  # every request may cost three calls
    result = start_run(store, llm, config(max_calls=400), InMemorySaver(), run_id="r")
    assert result.stop_reason.startswith("call budget") and "asked up to 3 times" in result.stop_reason
    assert len(chat.calls) <= 400


@pytest.mark.parametrize("approved", [True, False])
def test_drops_wait_for_a_human_when_asked(tmp_path, approved):
    store = planted_store(tmp_path / "s.db", starting=["shared4", "Position"])
    _, llm = make_llm(store)
    with sqlite_checkpointer(store.path) as saver:
        paused = start_run(store, llm, config(approve=True, max_iterations=1), saver, run_id="r")
        assert paused.status == "awaiting approval"
        assert "position" in [c["concept_id"] for c in paused.pending_approval["changes"]]
        with pytest.raises(WhyprefError, match="waits for approval"):
            resume_run(store, llm, "r", saver)
        done = resume_run(store, llm, "r", saver, approver=lambda payload: approved)
        result, decisions = history(store, "r", saver)
    assert done.status == "finished" and result == done
    assert ("position" in done.concepts) is not approved
    action = next(d.action for d in decisions if d.concept_id == "position")
    assert action == ("dropped" if approved else "kept")


def test_a_run_id_is_used_once(tmp_path):
    store = planted_store(tmp_path / "s.db")
    _, llm = make_llm(store)
    start_run(store, llm, config(max_iterations=1), InMemorySaver(), run_id="r")
    with pytest.raises(WhyprefError, match="exists"):
        start_run(store, llm, config(), InMemorySaver(), run_id="r")


def test_a_kill_between_decide_and_its_checkpoint_loses_no_snapshot(tmp_path, monkeypatch):
    """decide deletes turned-away concepts before LangGraph checkpoints; on resume it runs again and
    must keep the snapshots it recorded (the only copy of the deleted concepts)."""
    whole = planted_store(tmp_path / "whole.db")
    _, llm = make_llm(whole)
    settings = config(max_iterations=2, n_splits=5)  # with 5 folds, round 2 turns concepts away
    expected = start_run(whole, llm, settings, InMemorySaver(), run_id="run")
    snapshots = {(d.iteration, d.concept_id): d.concept for d in whole.decisions("run")}
    deleted = [k for k, d in snapshots.items() if d and d["name"] not in {c.name for c in whole.concepts()}]
    assert deleted  # the run turned some concepts away

    store = planted_store(tmp_path / "killed.db")
    real = agent.nodes._event
    killed = []

    def dies_after_deciding(ctx, state, node, *args, **kwargs):
        if node == "decide" and not killed and kwargs.get("rejected"):
            killed.append(node)
            raise KeyboardInterrupt("killed after the store write, before the checkpoint")
        return real(ctx, state, node, *args, **kwargs)

    monkeypatch.setattr(agent.nodes, "_event", dies_after_deciding)
    _, first_llm = make_llm(store)
    with sqlite_checkpointer(store.path) as saver, pytest.raises(KeyboardInterrupt):
        start_run(store, first_llm, settings, saver, run_id="run")
    assert killed
    _, second_llm = make_llm(store)
    with sqlite_checkpointer(store.path) as saver:
        assert resume_run(store, second_llm, "run", saver) == expected
    assert {(d.iteration, d.concept_id): d.concept for d in store.decisions("run")} == snapshots


def test_a_second_agent_run_on_a_store_is_refused_while_one_works(tmp_path):
    store = planted_store(tmp_path / "s.db")
    _, llm = make_llm(store)
    refusals = []

    def second_run_starts(event):
        if event.node == "sample" and not refusals:  # the first run is working now
            other = ConceptStore(store.path)
            with pytest.raises(WhyprefError, match="one agent run at a time") as caught:
                start_run(other, llm, config(), InMemorySaver(), run_id="second")
            refusals.append(str(caught.value))
            assert next(other.db.query("select 1 from runs where id = 'second'"), None) is None  # nothing stored
            other.close()

    result = start_run(
        store, llm, config(max_iterations=1), InMemorySaver(), run_id="first", on_event=second_run_starts
    )
    assert refusals and "'first'" in refusals[0] and str(store.path) in refusals[0]
    assert result.stop_reason and store.run("first")["status"] == "finished"
    again = start_run(store, llm, config(max_iterations=1), InMemorySaver(), run_id="after")  # the lock was let go
    assert store.run("after")["status"] == "finished" and again.concepts
