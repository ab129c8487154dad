"""Headless Chromium as the report's browser tests and its benchmark start it.

Debian's chromium through chromedriver, both given by path (Selenium Manager never runs,
nothing is downloaded), with Chromium's network features off. Imported by
``tests/test_report_browser.py`` and ``benchmarks/bench_report.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


def chrome_options(profile: Path) -> Any:
    """Selenium's options for headless Chromium with its profile in ``profile``."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return options
