"""The HTML report: self-contained, its numbers those of the stored models, escaped, and checked as a
person sees it (headless Chromium: it loads without console errors, its parts are there, its filter
works; a screenshot is kept beside the test's temporary files)."""

import os
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from tools.demo_job import run_demo
from tools.errors import WhyprefError
from tools.report import build_report, render_report, write_report
from tools.store import ConceptStore
from tools.workflows import explain_global, fit_mechanism

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo's main job without an LLM, as `whypref demo --measured-only` runs it: two mechanisms,
    planted rules, a report. (The report's tests read the job's own answer; one run serves both.)"""
    workdir = tmp_path_factory.mktemp("demo")
    answers = []

    def recorded(*args, **kwargs):
        answers.append(run_demo(*args, **kwargs))
        return answers[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("tools.demo_job.run_demo", recorded)
        result = CliRunner().invoke(app, ["demo", "--dir", str(workdir), "--measured-only"])
    assert result.exit_code == 0, result.output
    [answer] = answers
    return answer, result.output, workdir


@pytest.fixture(scope="module")
def demo(demo_run):
    return demo_run[0]


def test_demo_main_job_without_an_llm(demo_run):
    _, out, workdir = demo_run
    assert "Report:" in out and "## judge-verbose" in out
    with ConceptStore(workdir / "demo.db") as store:
        assert store.domains() == ["coding", "cooking", "health"]
        assert {m.kind.value for m in store.mechanisms()} == {"human", "llm_judge"}
        assert {c.kind.value for c in store.concepts()} == {"measured"}
    # The length-loving judge is explained by length, as it was built; the report checks the rules.
    report = (workdir / "report" / "report.md").read_text()
    human, judge = report.split("## judge-verbose", 1)
    drivers = judge.split("Planted rules", 1)[0]
    assert all(line.split(": ", 1)[1].startswith("Length") for line in drivers.splitlines() if line.startswith("- "))
    assert "Planted rules recovered: 6 of 6." in judge
    assert "HMDR on 300 pairs" in human and "code (Code" in human  # the coding rule, found by code blocks
    assert "mining found" in report


def test_the_demo_writes_a_self_contained_report_naming_its_planted_rules(demo):
    html = Path(demo.html).read_text(encoding="utf-8")
    # Nothing is fetched when the page is viewed: no external script, style, image or font.
    assert not re.search(r"""<(?:script|link|img|iframe)[^>]+(?:src|href)=["']?(?:https?:)?//""", html)
    assert '<section id="planted">' in html
    for rule in demo.rules:
        assert rule.part in html
    missed = sum(rule.concept is None for rule in demo.rules)
    assert html.count(">missed<") == missed


def test_report_numbers_are_the_stored_models(demo):
    with ConceptStore(demo.db, create=False) as store:
        report = build_report(store, ["human"], n_bootstrap=0)
        explanation = explain_global(store, "human", n_bootstrap=0, top_k=8)
    section = report.mechanisms[0]
    assert [d.domain for d in section.domains] == [d.domain for d in explanation.domains]
    assert section.domains[0].concepts[0].lift == explanation.domains[0].concepts[0].lift
    assert section.evaluation is not None and section.verdict is not None
    shown = {r.model for r in section.evaluation.rows}
    assert {"hmdr", "longer", "length-lr"} <= shown  # the length baselines always beside the model
    # Every card's examples are pairs where the concept pushed towards the response the mechanism chose.
    cards = [c for c in report.concepts if c.examples]
    assert cards and all(e.lift > 0 for c in cards for e in c.examples)
    assert all(len({e.pair_id for e in c.examples}) == len(c.examples) for c in cards)
    # No LLM ran: the page says so instead of crediting it.
    assert report.llm.concepts == [] and "No LLM concepts" in render_report(report)


def test_text_from_the_data_is_escaped(demo):
    """Names, definitions and response texts come from users' files: markup in them stays text."""
    with ConceptStore(demo.db, create=False) as store:
        report = build_report(store, ["human"], n_bootstrap=0)
    card = next(c for c in report.concepts if c.examples)
    example = card.examples[0].model_copy(update={"chosen": "<img src=x onerror=alert(2)>"})
    card = card.model_copy(
        update={"name": "Evil <script>alert(1)</script>", "definition": "<b>bold</b>", "examples": [example]}
    )
    html = render_report(report.model_copy(update={"concepts": [card]}))
    assert "<script>alert(1)" not in html and "<img src=x" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x" in html


def test_bad_requests_name_the_problem(tmp_path, demo):
    with ConceptStore(demo.db, create=False) as store:
        with pytest.raises(WhyprefError, match="no mechanism 'nobody'.*known: human, judge-verbose"):
            build_report(store, ["human", "nobody"])
        with pytest.raises(WhyprefError, match="at least one mechanism"):
            build_report(store, [])
    empty = tmp_path / "unfitted.db"
    shutil.copy(demo.db, empty)
    with ConceptStore(empty) as store:
        store.db.execute("delete from models")
        with pytest.raises(WhyprefError, match="no fitted model for 'human'.*whypref fit"):
            build_report(store, ["human"])


def test_a_fit_stores_the_baselines_the_report_shows(demo):
    with ConceptStore(demo.db, create=False) as store:
        record = store.models(mechanism="judge-verbose")[-1]
    assert record.metrics.evaluation is not None
    rows = {r.model for r in record.metrics.evaluation.rows}
    assert rows == {"hmdr", "longer", "length-lr"}


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Chromium is not installed")
def test_the_report_in_a_real_browser(demo, tmp_path):
    """Loads with no console error or page error; data, accuracy, lifts, concept cards and planted rules
    are on the page; the concept filter hides what does not match. Screenshot: report.png in tmp_path."""
    assert CHROMIUM, "CI installs Chromium (.ci/run): the report must be checked in a browser there"
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("request", lambda r: problems.append(f"fetched {r.url}") if not r.url.startswith("file:") else None)
            page.goto(Path(demo.html).resolve().as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            assert page.locator("#data tr").count() == 1 + 3 + 1  # header, the three demo domains, ties
            assert page.locator("#data tr.ties td").nth(1).inner_text().endswith("%")
            assert page.locator("h2", has_text="What human rewards").count() == 1
            assert page.locator("table.accuracy").count() == 2
            assert page.locator(".domain").count() == 6  # three domains, two mechanisms
            assert page.locator(".domain .track").count() > 6
            assert page.locator("#planted tr").count() >= 1 + 9
            cards = page.locator(".concept")
            total = cards.count()
            assert total > 3
            page.fill("#filter", "length")
            visible = [cards.nth(k).is_visible() for k in range(total)]
            assert 0 < sum(visible) < total
            shown = page.locator(".concept:visible")  # the cards the filter left
            shown.locator("details summary").first.click()
            assert shown.locator(".chosen").first.is_visible()
        finally:
            browser.close()
    assert problems == []
    print(f"screenshot: {tmp_path / 'report.png'}")


def test_write_report_creates_its_folder(tmp_path, demo):
    copy = tmp_path / "copy.db"
    shutil.copy(demo.db, copy)
    with ConceptStore(copy) as store:
        # A model without a held-out figure (not the demo's own: the store holds its evaluation).
        fit_mechanism(store, "human", evaluate=False, grouped=False)
        report = build_report(store, ["human"], n_bootstrap=0)
    assert any("no held-out accuracy" in w for w in report.mechanisms[0].warnings)
    path = write_report(report, tmp_path / "nested" / "r.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_an_unwritable_destination_is_named(demo, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with ConceptStore(demo.db, create=False) as store:
        report = build_report(store, ["human"], n_bootstrap=0)
    with pytest.raises(WhyprefError, match=r"a-file/r\.html: cannot write the report"):
        write_report(report, blocker / "r.html")
