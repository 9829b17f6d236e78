"""The MCP server through the SDK's in-memory client: every tool, resource and prompt, and each kind of
bad argument, on a copy of a small fitted store (the demo set with its measured concepts)."""

import json
import re
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.client import Client
from mcp.shared.exceptions import MCPError

from helpers import build_demo_store
from mcp_server.server import create_server
from mcp_server.settings import ServerSettings
from tools.demo_data import write_demo_set
from tools.errors import WhyprefError
from tools.measured import MEASURES
from tools.stats import store_stats
from tools.store import ConceptStore
from tools.workflows import explain_pair

pytestmark = pytest.mark.anyio

LONG_A = {
    "query": "How do I make a simple tomato sauce?",
    "response_a": "1. Simmer crushed tomatoes with garlic and olive oil.\n2. Season and taste.\n\n"
    + "Let it cook gently for twenty minutes so the flavours come together. " * 4,
    "response_b": "Simmer tomatoes.",
    "domain": "cooking",
}


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "demo.db"
    build_demo_store(path)
    return path


@pytest.fixture(autouse=True)
def no_llm(monkeypatch):
    monkeypatch.delenv("WHYPREF_BASE_URL", raising=False)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


@pytest.fixture
def settings(demo_template, tmp_path, data_dir) -> ServerSettings:
    db = tmp_path / "store" / "demo.db"
    db.parent.mkdir()
    shutil.copy(demo_template, db)
    return ServerSettings(db=db, allowed_dirs=(data_dir,), max_text_chars=2000)


async def call(settings: ServerSettings, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """Call one tool on a fresh in-memory connection; return its structured output (asserting success)."""
    async with Client(create_server(settings)) as client:
        result = await client.call_tool(tool, arguments or {})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def failure(settings: ServerSettings, tool: str, arguments: dict[str, Any]) -> str:
    """Call one tool expecting a tool error; return its text."""
    async with Client(create_server(settings)) as client:
        result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return result.content[0].text  # type: ignore[union-attr]


async def read(settings: ServerSettings, uri: str) -> Any:
    async with Client(create_server(settings)) as client:
        result = await client.read_resource(uri)
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]


def a_pair_id(settings: ServerSettings) -> str:
    with ConceptStore(settings.db, create=False) as store:
        return next(store.pairs()).id


def digest(settings: ServerSettings) -> str:
    with ConceptStore(settings.db, create=False) as store:
        return store.content_digest()


# -- what the server offers -------------------------------------------------------------------------
async def test_lists_every_tool_resource_and_prompt(settings):
    async with Client(create_server(settings)) as client:
        tools = (await client.list_tools()).tools
        resources = (await client.list_resources()).resources
        templates = (await client.list_resource_templates()).resource_templates
        prompts = (await client.list_prompts()).prompts
    assert {t.name for t in tools} == {
        "explain",
        "fit",
        "evaluate",
        "predict",
        "compare_mechanisms",
        "import_pairs",
        "list_concepts",
        "add_concept",
        "discover",
        "annotate",
        "steer",
        "run_agent",
    }
    assert all(t.output_schema is not None and t.description for t in tools)  # structured, documented
    pair_schema = next(t for t in tools if t.name == "explain").input_schema["$defs"]["InlinePair"]
    assert pair_schema["properties"]["response_a"]["maxLength"] == 2000  # the configured size limit
    assert {str(r.uri) for r in resources} == {
        "whypref://concepts",
        "whypref://mechanisms",
        "whypref://models",
        "whypref://reports/latest",
    }
    assert {t.uri_template for t in templates} == {"concepts://{concept_id}", "models://{model_id}"}
    assert {p.name for p in prompts} == {"explain_disagreement", "judge_rewards"}


# -- model tools ------------------------------------------------------------------------------------
async def test_fit_returns_in_domain_and_out_of_domain_accuracy(settings):
    out = await call(settings, "fit", {"mechanism": "human", "ood_repeats": 1})
    assert out["pairs"] == 24 and out["domains"] == ["coding", "cooking", "health"]
    assert set(out["params"]) == {"lambda_shared", "lambda_domain"}
    scores = {r["model"]: r for r in out["in_domain"]["scores"]}
    assert set(scores) == {"hmdr", "longer", "length-lr"} and 0 <= scores["hmdr"]["accuracy"] <= 100
    assert out["out_of_domain"]["protocol"] == "ood" and out["in_domain"]["verdicts"][0].startswith("hmdr explains")
    assert out["full"] == f"models://{out['model_id']}"
    with ConceptStore(settings.db, create=False) as store:
        assert out["model_id"] in {r.id for r in store.models(mechanism="human")}
    detail = await read(settings, out["full"])  # the whole evaluation is one read away
    assert detail["model"]["metrics"]["evaluation"]["protocol"] == "in-domain"
    again = await call(settings, "fit", {"mechanism": "human", "ood_repeats": 1})
    assert again["model_id"] == out["model_id"] and again["in_domain"] == out["in_domain"]
    assert any(n.startswith("read from the store") for n in again["notes"])


async def test_fit_stands_when_out_of_domain_accuracy_cannot_be_computed(settings):
    skipped = await call(settings, "fit", {"mechanism": "human", "ood_repeats": 0})
    assert skipped["out_of_domain"] is None and any("ood_repeats=0" in n for n in skipped["notes"])
    specific = await call(settings, "fit", {"mechanism": "human", "model": "specific"})
    assert specific["out_of_domain"] is None and any("unseen domain" in n for n in specific["notes"])
    # The judge ties 8 of 24 pairs (its verdict flips with the order): too few left to tune per held-out domain.
    judge = await call(settings, "fit", {"mechanism": "judge-verbose"})
    assert judge["pairs"] == 16 and judge["ties_left_out"] == 8
    assert judge["out_of_domain"] is None and any("needs both labels" in n for n in judge["notes"])


async def test_answers_are_compact_rounded_and_sent_once(settings):
    """The structured result once, with a one-line text beside it (not the JSON a second time), floats
    rounded to three significant digits."""
    async with Client(create_server(settings)) as client:
        result = await client.call_tool("explain", {"mechanism": "human"})
    [text] = result.content
    assert text.text.startswith("what human rewards (pp)") and "\n" not in text.text  # type: ignore[union-attr]
    floats = re.findall(r"\d+\.\d+", json.dumps(result.structured_content))
    assert floats and all(len(f.replace(".", "").lstrip("0")) <= 3 for f in floats)
    assert len(result.model_dump_json()) < 6000


async def test_evaluate_both_protocols(settings):
    out = await call(settings, "evaluate", {"mechanism": "human", "models": ["hmdr", "dirty"], "repeats": 2})
    accuracy = out["accuracy"]
    assert accuracy["protocol"] == "in-domain"
    assert [r["model"] for r in accuracy["scores"]] == ["hmdr", "dirty", "longer", "length-lr"]
    for row in accuracy["scores"]:
        assert 0 <= row["low"] <= row["accuracy"] <= row["high"] <= 100 and row["pairs"] == 24
    assert {(d["model"], d["baseline"]) for d in accuracy["differences"]} == {
        (m, b) for m in ("hmdr", "dirty") for b in ("longer", "length-lr")
    }
    assert len(accuracy["verdicts"]) == 2
    ood = await call(settings, "evaluate", {"mechanism": "human", "protocol": "ood"})
    assert set(ood["accuracy"]["scores"][0]["per_domain"]) == {"coding", "cooking", "health"}


async def test_explain_global_writes_the_latest_report(settings):
    out = await call(settings, "explain", {"mechanism": "judge-verbose", "top_k": 3})
    explanation = out["global_explanation"]
    assert out["scope"] == "global" and out["pair"] is None
    for domain in explanation["domains"]:
        assert len(domain["drivers"]) <= 3
        assert domain["drivers"][0]["concept"] == "Length"  # the judge loves length, in every domain
    json_path = Path(explanation["full"])
    assert json_path.parent == settings.report_dir and Path(explanation["chart"]).is_file()
    latest = await read(settings, "whypref://reports/latest")
    assert latest == json.loads(json_path.read_text()) and latest["mechanism"] == "judge-verbose"
    assert any("rough" in w for w in explanation["warnings"])  # 24 pairs: the answer says so


async def test_explain_global_with_intervals_for_one_domain(settings):
    out = await call(settings, "explain", {"mechanism": "human", "domain": "coding", "bootstrap": 5, "top_k": 2})
    lift = out["global_explanation"]
    assert lift["n_bootstrap"] == 5 and [d["domain"] for d in lift["domains"]] == ["coding"]
    assert all(c["low"] <= c["high"] for c in lift["domains"][0]["drivers"])


async def test_explain_a_stored_pair_as_the_library_does(settings):
    pair_id = a_pair_id(settings)
    out = await call(settings, "explain", {"mechanism": "human", "pair_id": pair_id, "top_k": 4})
    pair = out["pair"]
    with ConceptStore(settings.db, create=False) as store:
        expected = explain_pair(store, "human", pair_id)
    assert out["scope"] == "pair" and pair["inline"] is False and pair["unvalued_concepts"] == []
    assert pair["explanation"]["p_a"] == pytest.approx(expected.p_a, abs=5e-3)  # answers are rounded
    assert pair["explanation"]["label"] == expected.label
    shown = pair["explanation"]["concepts"]
    assert [c["concept"] for c in shown] == [c.concept for c in expected.concepts[:4]]
    assert [c["lift"] for c in shown] == pytest.approx([c.lift for c in expected.concepts[:4]], rel=5e-3)


async def test_explain_an_inline_pair_writes_nothing(settings):
    before = digest(settings)
    out = await call(settings, "explain", {"mechanism": "judge-verbose", "pair": LONG_A})
    pair = out["pair"]
    values = pair["explanation"]["values"]
    assert pair["inline"] is True and pair["unvalued_concepts"] == []  # only measured concepts in this model
    assert values["Length"] > 0.5 and values["List Formatting"] == 1.0  # A is longer and has the list
    assert pair["explanation"]["p_a"] > 0.5 and pair["explanation"]["label"] is None
    assert digest(settings) == before


async def test_predict_stored_and_inline_pairs(settings):
    pair_id = a_pair_id(settings)
    stored = await call(settings, "predict", {"mechanism": "human", "pair_id": pair_id})
    explained = await call(settings, "explain", {"mechanism": "human", "pair_id": pair_id})
    assert stored["p_a"] == pytest.approx(explained["pair"]["explanation"]["p_a"], abs=5e-3)
    assert stored["preferred"] == ("A" if stored["p_a"] > 0.5 else "B") and stored["label"] in ("A", "B", "tie")
    inline = await call(settings, "predict", {"mechanism": "judge-verbose", "pair": LONG_A})
    assert inline["preferred"] == "A" and inline["label"] is None and inline["domain"] == "cooking"


async def test_compare_mechanisms(settings):
    out = await call(settings, "compare_mechanisms", {"reference": "human", "top_k": 2})
    with ConceptStore(settings.db, create=False) as store:
        expected = store_stats(store, reference="human")
    assert list(out["agreement"]) == ["judge-verbose"]
    assert out["agreement"]["judge-verbose"] == pytest.approx(expected.agreement[0].accuracy, abs=5e-3)
    assert set(out["per_domain"]["judge-verbose"]) == {"coding", "cooking", "health"}
    assert [e["mechanism"] for e in out["explanations"]] == ["human", "judge-verbose"]
    assert out["without_model"] == []
    one_domain = await call(settings, "compare_mechanisms", {"mechanisms": ["judge-verbose"], "domain": "health"})
    assert [d["domain"] for e in one_domain["explanations"] for d in e["domains"]] == ["health", "health"]


async def test_compare_mechanisms_without_models(tmp_path, data_dir):
    build_demo_store(tmp_path / "unfitted.db", fitted=False)
    settings = ServerSettings(db=tmp_path / "unfitted.db", allowed_dirs=(data_dir,))
    out = await call(settings, "compare_mechanisms", {})
    assert out["explanations"] == [] and out["without_model"] == ["human", "judge-verbose"]


# -- concept and data tools -------------------------------------------------------------------------
async def test_list_and_add_concepts(settings):
    listed = await call(settings, "list_concepts", {"kind": "measured"})
    assert len(listed["concepts"]) == len(MEASURES) and all(c["values"] == 24 for c in listed["concepts"])
    added = await call(settings, "add_concept", {"name": "Warmth", "definition": "A high score indicates warmth."})
    assert added["id"] == "warmth" and added["concept"]["scope"] == "shared" and added["values"] == 0
    specific = await call(
        settings, "add_concept", {"name": "See a Doctor", "definition": "A high score ...", "domains": ["health"]}
    )
    assert specific["concept"]["scope"] == "domain" and specific["concept"]["domains"] == ["health"]
    manual = await call(settings, "list_concepts", {"kind": "manual"})
    assert [c["id"] for c in manual["concepts"]] == ["see-a-doctor", "warmth"]
    detail = await read(settings, "concepts://warmth")
    assert detail["concept"]["provenance"] == {"added_by": "mcp"}


async def test_import_pairs_from_an_allowed_directory(tmp_path, data_dir):
    settings = ServerSettings(db=tmp_path / "fresh.db", allowed_dirs=(data_dir,))
    write_demo_set(data_dir / "votes.jsonl", per_domain=2)
    first = await call(settings, "import_pairs", {"path": str(data_dir / "votes.jsonl"), "format": "whypref"})
    assert first["pairs"] == 6 and first["new_pairs"] == 6 and first["mechanisms"] == ["human", "judge-verbose"]
    again = await call(settings, "import_pairs", {"path": "votes.jsonl", "format": "whypref"})  # relative path
    assert again["pairs"] == 6 and again["new_pairs"] == 0
    (data_dir / "arena.csv").write_text("query,response_a,response_b,winner\nq1,a1,b1,a\nq2,a2,b2,tie\n")
    generic = await call(settings, "import_pairs", {"path": "arena.csv", "domain": "chat", "mechanism": "crowd"})
    assert generic["pairs"] == 2 and generic["domains"] == ["chat"] and generic["mechanisms"] == ["crowd"]


async def test_malformed_files_over_mcp_get_the_message_not_a_bare_error(tmp_path, data_dir):
    settings = ServerSettings(db=tmp_path / "fresh.db", allowed_dirs=(data_dir,))
    (data_dir / "bad.json").write_text(
        json.dumps({"metadata": {"version": "2.0"}, "annotators": [], "comparisons": []})
    )
    message = await failure(settings, "import_pairs", {"path": "bad.json", "format": "icai"})
    assert "bad.json" in message and "annotators" in message and "annotator objects" in message
    (data_dir / "deep.jsonl").write_text("[" * 50_000 + "]" * 50_000 + "\n")
    assert "nested too deeply" in await failure(settings, "import_pairs", {"path": "deep.jsonl", "format": "jsonl"})


async def test_annotate_measured_only_needs_no_llm(tmp_path, data_dir):
    settings = ServerSettings(db=tmp_path / "fresh.db", allowed_dirs=(data_dir,))
    write_demo_set(data_dir / "votes.jsonl", per_domain=2)
    await call(settings, "import_pairs", {"path": "votes.jsonl", "format": "whypref"})
    dry = await call(settings, "annotate", {"measured_only": True, "dry_run": True})
    assert dry == {"result": None, "estimate": {}, "llm": None}
    out = await call(settings, "annotate", {"measured_only": True, "domain": "health"})
    assert out["result"]["pairs"] == 2 and out["result"]["measured_values"] == 2 * len(MEASURES) and out["llm"] is None


# -- resources and prompts --------------------------------------------------------------------------
async def test_resources(settings):
    concepts = await read(settings, "whypref://concepts")
    assert len(concepts["concepts"]) == len(MEASURES)
    length = await read(settings, "concepts://length")
    assert length["concept"]["kind"] == "measured" and length["concept"]["provenance"] and length["values"] == 24
    mechanisms = {m["name"]: m for m in await read(settings, "whypref://mechanisms")}
    assert mechanisms["judge-verbose"]["kind"] == "llm_judge" and mechanisms["human"]["summary"]["labels"] == 24
    models = await read(settings, "whypref://models")
    assert {m["mechanism"] for m in models} == {"human", "judge-verbose"} and all(
        m["concepts"] == len(MEASURES) for m in models
    )
    judge = next(m for m in models if m["mechanism"] == "judge-verbose")
    assert mechanisms["judge-verbose"]["models"] == [judge["id"]]
    detail = await read(settings, f"models://{judge['id']}")
    assert detail["model"] == judge
    assert detail["explanation"]["domains"][0]["concepts"][0]["concept"] == "Length"


async def test_prompts_name_the_tools_to_call(settings):
    async with Client(create_server(settings)) as client:
        disagreement = await client.get_prompt("explain_disagreement", {"judge": "judge-verbose"})
        rewards = await client.get_prompt("judge_rewards", {"judge": "judge-verbose", "domain": "coding"})
    text = disagreement.messages[0].content.text  # type: ignore[union-attr]
    assert "`judge-verbose`" in text and "`human`" in text and "compare_mechanisms" in text and "explain" in text
    text = rewards.messages[0].content.text  # type: ignore[union-attr]
    assert 'domain="coding"' in text and "bootstrap=100" in text and "whypref://models" in text


# -- bad arguments ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("explain", {"mechanism": "nobody"}, "no fitted model for 'nobody'"),
        ("fit", {"mechanism": "nobody"}, "no labels of mechanism 'nobody' (known: human, judge-verbose)"),
        ("predict", {"mechanism": "nobody", "pair": LONG_A}, "no fitted model for 'nobody'"),
        ("compare_mechanisms", {"mechanisms": ["nobody"]}, "unknown mechanism(s) nobody"),
        ("evaluate", {"mechanism": "human", "models": ["hmdr", "boosted"]}, "models.1"),
        ("explain", {"mechanism": "human", "domain": "law"}, "has no domain 'law'"),
        ("explain", {"mechanism": "judge-verbose", "bootstrap": 501}, "less than or equal to 500"),
        ("explain", {"pair_id": "not-a-pair-id"}, "String should match pattern"),
        ("explain", {"pair_id": "0" * 20}, "no pair with id '00000000000000000000'"),
        ("explain", {"pair_id": "0" * 20, "pair": LONG_A}, "exactly one of pair_id"),
        ("predict", {}, "exactly one of pair_id"),
        ("explain", {"pair": LONG_A, "domain": "cooking"}, "global explanations only"),
        ("explain", {"top_k": 0}, "top_k"),
        ("explain", {"model_id": "../../etc"}, "String should match pattern"),
        ("explain", {"pair": {**LONG_A, "response_b": "x" * 2001}}, "at most 2000 characters"),
        ("explain", {"pair": {**LONG_A, "response_a": ""}}, "at least 1 character"),
        ("fit", {"mechanism": "   "}, "at least 1 character"),
        ("add_concept", {"name": "Length", "definition": "A high score ..."}, "concept 'length' exists"),
        ("add_concept", {"name": "!!!", "definition": "A high score ..."}, "String should match pattern"),
        ("add_concept", {"name": "Tact", "definition": "short"}, "at least 10 characters"),
        (
            "add_concept",
            {"name": "Tact", "definition": "A high score ...", "domains": ["law"]},
            "unknown domain(s) law",
        ),
        ("discover", {}, "no LLM endpoint configured"),
        ("annotate", {}, "no LLM endpoint configured"),
        ("annotate", {"measured_only": True, "domain": "law"}, "no pairs to annotate"),
        ("import_pairs", {"path": "votes.jsonl", "format": "parquet"}, "format"),
        ("steer", {}, "mechanism"),  # both required arguments are missing
        ("no_such_tool", {}, "Unknown tool"),
    ],
)
async def test_bad_arguments_are_tool_errors(settings, tool, arguments, expected):
    before = digest(settings)
    message = await failure(settings, tool, arguments)
    assert expected in message
    assert digest(settings) == before  # a refused call changes nothing


@pytest.fixture
def outside(tmp_path) -> Path:
    """A readable preference file outside the allowed directory."""
    (tmp_path / "secret").mkdir()
    write_demo_set(tmp_path / "secret" / "votes.jsonl", per_domain=1)
    return tmp_path / "secret" / "votes.jsonl"


async def test_paths_outside_the_allowed_directories_are_refused(settings, data_dir, outside):
    (data_dir / "escape.jsonl").symlink_to(outside)  # a symlink escaping the allowed directory
    (data_dir / "autoj").mkdir()
    (data_dir / "autoj" / "data.jsonl").symlink_to(outside)  # a folder with a link out of it
    (data_dir / "inside.jsonl").symlink_to(data_dir / "autoj")  # a link staying inside is fine to follow
    before = digest(settings)
    cases = {
        str(outside): "outside the allowed directories",
        "../secret/votes.jsonl": "outside the allowed directories",
        str(data_dir / ".." / "secret" / "votes.jsonl"): "outside the allowed directories",
        "escape.jsonl": "outside the allowed directories",
        "autoj": "data.jsonl links outside the allowed directories",
        "missing.jsonl": "no such file or directory",
        "votes\x00.jsonl": "NUL byte",
        "~/../../etc/passwd": "outside the allowed directories",
    }
    for path, expected in cases.items():
        assert expected in await failure(settings, "import_pairs", {"path": path, "format": "whypref"}), path
    assert digest(settings) == before


async def test_a_server_without_allowed_directories_reads_no_files(settings, outside):
    closed = settings.model_copy(update={"allowed_dirs": ()})
    message = await failure(closed, "import_pairs", {"path": str(outside)})
    assert "reads no files: start it with --allow-dir" in message


async def test_a_bad_record_is_reported_with_its_line(settings, data_dir):
    (data_dir / "bad.jsonl").write_text(
        '{"query": "q", "chosen": "a", "rejected": "b", "domain": "chat"}\n{"query": "q2", "chosen": "a"}\n'
    )
    before = digest(settings)
    message = await failure(settings, "import_pairs", {"path": "bad.jsonl"})
    assert "bad.jsonl, line 2" in message and "rejected" in message
    assert digest(settings) == before  # one transaction: nothing of the file landed


async def test_unknown_resources_and_prompt_arguments_are_errors(settings):
    async with Client(create_server(settings)) as client:
        for uri, expected in [
            ("concepts://kindness", "no concept 'kindness'"),
            ("models://0000000000000000", "no fitted model '0000000000000000'"),
            ("concepts://..%2F..%2Fetc", "Unknown resource"),
        ]:
            with pytest.raises(MCPError, match=expected):
                await client.read_resource(uri)
        for arguments, expected in [
            ({"judge": "gpt-5"}, r"unknown mechanism\(s\) gpt-5"),
            ({"judge": "human", "reference": "nobody"}, r"unknown mechanism\(s\) nobody"),
        ]:
            with pytest.raises(MCPError, match=expected):
                await client.get_prompt("explain_disagreement", arguments)
        with pytest.raises(MCPError, match="unknown domain 'law'"):
            await client.get_prompt("judge_rewards", {"judge": "human", "domain": "law"})


async def test_no_report_before_any_explanation(settings):
    async with Client(create_server(settings)) as client:
        with pytest.raises(MCPError, match="no report yet"):
            await client.read_resource("whypref://reports/latest")


async def test_a_bug_is_a_tool_error_with_its_details_kept_on_the_server(settings, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("internal detail")

    monkeypatch.setattr("mcp_server.model_tools.explain_global", broken)
    async with Client(create_server(settings)) as client:
        crashed = await client.call_tool("explain", {"mechanism": "human"})
        assert crashed.is_error and crashed.content[0].text == "Error executing tool explain"  # type: ignore[union-attr]
        still_serving = await client.call_tool("list_concepts", {})
        assert not still_serving.is_error and len(still_serving.structured_content["concepts"]) == len(MEASURES)


async def test_reads_answer_while_a_burst_of_long_calls_waits(settings, monkeypatch):
    """45 fits block (more than anyio's 40 shared worker threads); listing concepts and reading a
    resource still answer at once, and the fits finish once released."""
    import threading

    import mcp_server.model_tools

    release = threading.Event()

    def slow_fit(*args, **kwargs):
        assert release.wait(60)
        raise WhyprefError("released")  # (a real fit here would only make the test slow)

    monkeypatch.setattr(mcp_server.model_tools, "fit_mechanism", slow_fit)
    async with Client(create_server(settings)) as client, anyio.create_task_group() as tasks:
        results: list[Any] = []

        async def fit() -> None:
            results.append(await client.call_tool("fit", {"mechanism": "human", "ood_repeats": 0}))

        for _ in range(45):
            tasks.start_soon(fit)
        await anyio.sleep(0.5)
        with anyio.fail_after(10):
            listed = await client.call_tool("list_concepts", {})
            resource = await client.read_resource("whypref://mechanisms")
        assert not listed.is_error and resource.contents and not results
        release.set()
    assert len(results) == 45 and all("released" in r.content[0].text for r in results)


async def test_a_cancelled_evaluate_stops_computing(settings, monkeypatch):
    import tools.model_selection

    fits = []
    real = tools.model_selection.checkpoint

    def counted():
        fits.append(1)
        real()

    monkeypatch.setattr(tools.model_selection, "checkpoint", counted)
    async with Client(create_server(settings)) as client:
        with anyio.move_on_after(0.5):
            await client.call_tool(
                "evaluate", {"mechanism": "human", "repeats": 10, "models": ["hmdr", "flat", "dirty"]}
            )
        await anyio.sleep(1.5)
        stopped_at = len(fits)
        await anyio.sleep(1.5)
    assert stopped_at > 0 and len(fits) == stopped_at  # no fold was fitted after the cancel
