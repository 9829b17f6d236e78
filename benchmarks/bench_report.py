"""The HTML report as a reader gets it (issue #15): its size, the time to build it, and the time headless
Chromium takes to load and lay it out, on the demo set (300 pairs, two mechanisms, no LLM).

Usage::

    python benchmarks/bench_report.py [--repeats 5]

Needs Debian's Chromium (``apt-get install chromium``) and the ``dev`` extra (Playwright drives it).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from tools.demo_data import DEMO_MECHANISMS
from tools.demo_job import run_demo
from tools.report import build_report, write_report
from tools.store import ConceptStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("Chromium is not installed (apt-get install chromium)")
    folder = Path(tempfile.mkdtemp())
    demo = run_demo(folder, 100, None)
    with ConceptStore(demo.db, create=False) as store:
        started = time.perf_counter()
        report = build_report(store, [m.name for m in DEMO_MECHANISMS])
        built = time.perf_counter() - started
    page_file = write_report(report, folder / "report.html")
    loads = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for _ in range(args.repeats):
            page.goto(page_file.resolve().as_uri())
            page.wait_for_load_state("load")
            timing = page.evaluate("JSON.parse(JSON.stringify(performance.getEntriesByType('navigation')[0]))")
            loads.append(timing["loadEventEnd"] - timing["startTime"])
        browser.close()
    print(f"report of {demo.pairs} pairs, 2 mechanisms, {len(report.concepts)} concept cards")
    print(f"  size {page_file.stat().st_size / 1024:.0f} KB; built in {built:.1f} s (100 bootstrap refits each)")
    print(
        f"  load in Chromium: median {statistics.median(loads):.0f} ms over {len(loads)} loads (max {max(loads):.0f})"
    )


if __name__ == "__main__":
    main()
