"""The report for a real book: file size and opening time in headless Chromium.

    flock /tmp/test.lock .venv/bin/python benchmarks/bench_report.py --runs 5

Renders ``report.html`` for books of 1,000 and 10,000 accounts (the generated book of
``tests/test_report_browser.py``: drivers worded and sized like the real ones, a change
text for a third of the accounts) with 50 SHAP waterfalls drawn as ``churn score`` draws
them, then opens each page in Debian's headless Chromium (chromedriver by path; nothing is
downloaded), alternating the books run after run. The opening time is read from the page's
Performance API: from navigation start to the mark ``report-table-drawn``, which the page's
script sets once the first page of the table is in the document (the JSON parsed, the book
sorted, 50 rows drawn). DOMContentLoaded and load are given beside it. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.waterfall import waterfall_png
from pipelines.report import write_report

ROOT = Path(__file__).resolve().parents[1]
TIMING = """
const nav = performance.getEntriesByType("navigation")[0];
const drawn = performance.getEntriesByName("report-table-drawn")[0];
return {drawn: drawn ? drawn.startTime : null, dom: nav.domContentLoadedEventEnd,
        load: nav.loadEventEnd};
"""


def pictures(accounts: list[str], seed: int) -> dict[str, bytes]:
    """SHAP-waterfall PNGs for ``accounts``, drawn by ``models.waterfall`` from random
    contributions of 20 features (the picture's size is what matters here)."""
    rng = np.random.default_rng(seed)
    names = [f"feature_{k}" for k in range(20)]
    return {
        a: waterfall_png(
            pd.Series(rng.normal(0, 0.3, 21), index=[*names, "bias"]),
            [],
            pd.Series(rng.normal(size=20), index=names),
            f"{a}: why this score",
        )
        for a in accounts
    }


def chromium(profile: Path) -> Any:
    """Headless Chromium through chromedriver, as the browser tests start it
    (``tests/browser.py``)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from browser import CHROMEDRIVER, chrome_options
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_AVOID_STATS"] = "true"
    return webdriver.Chrome(
        service=Service(executable_path=str(CHROMEDRIVER)), options=chrome_options(profile)
    )


@dataclass
class Page:
    """One book's report and its openings (milliseconds from navigation start)."""

    path: Path
    render_s: float
    size: int
    drawn: list[float] = field(default_factory=list)
    dom: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    #: WebDriver's get(): from the command to the load event, as a reader would wait.
    wall: list[float] = field(default_factory=list)

    def open_once(self, driver: Any) -> None:
        """One fresh navigation to the page; its timings are appended."""
        driver.get("about:blank")
        t0 = time.perf_counter()
        driver.get(self.path.as_uri())  # returns after the load event
        wall = 1000 * (time.perf_counter() - t0)
        for _ in range(100):
            t = driver.execute_script(TIMING)
            if t["drawn"] is not None and t["load"]:
                errors = driver.execute_script(
                    "return document.documentElement.getAttribute('data-errors')"
                )
                if errors:
                    raise RuntimeError(f"{self.path}: the page recorded errors: {errors}")
                self.drawn.append(float(t["drawn"]))
                self.dom.append(float(t["dom"]))
                self.load.append(float(t["load"]))
                self.wall.append(wall)
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.path}: the table was not drawn within 5 s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--books", type=int, nargs="+", default=[1_000, 10_000])
    ap.add_argument("--runs", type=int, default=5, help="openings of each page, alternating")
    ap.add_argument("--waterfalls", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT / "tests"))
    from test_report import render  # the render_report call of the report tests
    from test_report_browser import book, by_priority  # the browser tests' generated book

    out = Path(tempfile.mkdtemp(prefix="bench-report-"))
    pages: dict[int, Page] = {}
    for n in args.books:
        frame = book(n, seed=args.seed)
        top = list(by_priority(frame)["account_id"][: args.waterfalls])
        drawn = pictures(top, args.seed)
        t0 = time.perf_counter()
        html = render(frame, waterfalls=drawn)
        seconds = time.perf_counter() - t0
        path = out / f"report-{n}.html"
        write_report(html, path)
        pages[n] = Page(path, seconds, path.stat().st_size)
        print(f"{n:,} accounts: {pages[n].size / 1e6:.2f} MB, rendered in {seconds:.2f} s")

    driver = chromium(out / "profile")
    try:
        for _ in range(args.runs):
            for n in args.books:  # alternate, so drift in the machine's load hits both
                pages[n].open_once(driver)
    finally:
        driver.quit()

    load = os.getloadavg()[0]
    print(f"\nHeadless Chromium, {args.runs} openings each, alternating; load average {load:.2f}")
    print(
        "\n| accounts | file size | render_report | table drawn (median, min-max) "
        "| DOMContentLoaded | load | get() to load |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, page in pages.items():
        median = statistics.median
        print(
            f"| {n:,} | {page.size / 1e6:.2f} MB | {page.render_s:.2f} s "
            f"| {median(page.drawn):.0f} ms ({min(page.drawn):.0f}-{max(page.drawn):.0f}) "
            f"| {median(page.dom):.0f} ms | {median(page.load):.0f} ms "
            f"| {median(page.wall):.0f} ms |"
        )
    print("(DOMContentLoaded, load and get() to load: medians)")
    print(f"\nPages kept in {out}")


if __name__ == "__main__":
    main()
