"""report.html in a real browser: search, filters, pages, details and the view in the address.

Drives Debian's Chromium through chromedriver with selenium, on reports of generated books
whose bands, segments, CSMs and renewal months are known, and checks every view against
the same selection made with pandas. Nothing is downloaded: chromedriver is given by path
(Selenium Manager never runs) and Chromium starts with its network features off.
A machine without chromium, chromium-driver or selenium fails these tests (never skips):
``make test`` installs all three.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from browser import CHROMEDRIVER, CHROMIUM, chrome_options
from test_report import AS_OF, render, scores_frame, waterfall_png

from models.waterfall import waterfall_png as shap_waterfall_png
from pipelines.report import write_report

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

INSTALL = (
    "Install them with `make chromium` (it runs `apt-get install chromium chromium-driver`) "
    "and selenium with `make install-dev` (pip install -c constraints.txt -e '.[dev]')."
)
HOSTILE = "</script><img src=x onerror=alert(1)>"
SEGMENTS = ("SMB", "Mid-Market", "Enterprise")
CSMS = ("Dana Ortiz", "Eli Park", "Mia Chen", "Noa Okafor", "Sam Lee")
PLAYS = (
    "Seat-activation campaign: invite and onboard the unused seats",
    "Involve finance: invoices are overdue",
    "Multi-thread the relationship: the account depends on one user",
    "Key-feature training: run a workshop on the workflows they do not use yet",
    "No action: keep the regular cadence",
)
FIRST = ("Quantum", "Polar", "Cedar", "Harbor", "Summit", "Nimbus", "Granite", "Willow")
SECOND = ("Grove", "Canyon", "Ridge", "Field", "Forge", "Bay", "Works", "Signal", "Peak")
SUFFIX = ("Systems", "Group", "GmbH", "Labs")
#: Accounts (by position) given names with "acme" in them, for the search.
ACME = {17: "Acme Rockets", 123: "ACME Labs", 250: "Old Acme Mills"}


def sentences(rng: np.random.Generator, segment: str) -> list[str]:
    """Three risk drivers and a protective factor, worded and sized like the real ones."""
    used, seats = int(rng.integers(5, 400)), int(rng.integers(400, 900))
    risks = [
        f"Licence utilisation (30 d): {used / seats:.0%} ({used} of {seats} seats); "
        f"healthy {segment} accounts: 52%",
        f"Days overdue: {int(rng.integers(10, 1200)):,} days; healthy {segment} accounts: 0 days",
        f"Urgent tickets open: {int(rng.integers(1, 6))} tickets; healthy {segment} accounts: "
        "0 tickets",
        f"Mean NPS (365 d): {rng.uniform(2, 6):.1f} (scale 0-10); healthy {segment} accounts: "
        "7.8 (scale 0-10)",
        f"Key-feature share (90 d): {int(rng.integers(1, 20))}%; healthy {segment} accounts: 26%",
    ]
    chosen = [risks[i] for i in rng.choice(len(risks), size=3, replace=False)]
    protective = f"Protective: 'workflow_created' events (30 d): {int(rng.integers(5, 90))} events"
    return [*chosen, protective]


def book(n: int, seed: int) -> pd.DataFrame:
    """A book of ``n`` accounts whose bands, segments, CSMs and renewal months are known.

    Renewals fall 1-120 days after AS_OF (June to September 2025); the last two accounts
    are overdue (renewal date in May 2025, no outcome) and every 17th has no CSM.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        segment = SEGMENTS[i % 3]
        p = float(rng.beta(0.9, 3.5))
        rows.append(
            {
                "account_id": f"ACC-{i + 1:05d}",
                "name": ACME.get(i)
                or f"{FIRST[i % 8]} {SECOND[(i // 8) % 9]} {SUFFIX[(i // 72) % 4]}",
                "segment": segment,
                "csm": CSMS[i % 5] if i % 17 else None,
                "band": "red" if p >= 0.4 else "yellow" if p >= 0.15 else "green",
                "churn_probability": p,
                "arr": float(rng.integers(8, 400) * 1000),
                "renewal_date": str(
                    pd.Timestamp(AS_OF) + pd.Timedelta(days=int(rng.integers(1, 121)))
                ),
                "driver_list": sentences(rng, segment),
                "play": PLAYS[i % len(PLAYS)],
                "change": f"Probability +{int(rng.integers(2, 20))} pts since 2025-05-01: "
                "licence utilisation fell"
                if i % 3 == 0
                else "",
            }
        )
    for row in rows[-2:]:
        row["renewal_date"] = str(pd.Timestamp(AS_OF) - pd.Timedelta(days=12))
    frame = scores_frame(rows)
    return frame.assign(overdue=frame.index >= n - 2)


def by_priority(frame: pd.DataFrame) -> pd.DataFrame:
    """The book in the report's order: priority, highest first, unknown last."""
    return frame.sort_values("priority", ascending=False, na_position="last", kind="stable")


def selected(
    frame: pd.DataFrame,
    q: str = "",
    bands: tuple[str, ...] = (),
    segment: str | None = None,
    csm: str | None = None,
    month: str | None = None,
) -> list[str]:
    """The account ids a view selects, in priority order, computed with pandas."""
    f = by_priority(frame)
    keep = pd.Series(True, index=f.index)
    if q:
        hay = f["account_id"].str.lower() + "\n" + f["name"].fillna("").str.lower()
        keep &= hay.str.contains(q.lower(), regex=False)
    if bands:
        keep &= f["band"].isin(bands)
    if segment is not None:
        keep &= f["segment"] == segment
    if csm is not None:
        keep &= f["csm"] == csm
    if month is not None:
        keep &= f["renewal_date"].dt.strftime("%Y-%m") == month
    return f.loc[keep, "account_id"].tolist()


# --------------------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Chromium through chromedriver, with the network features off."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: the report's browser tests need Debian's "
            f"chromium and chromium-driver. {INSTALL}",
            pytrace=False,
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        pytest.fail(f"selenium cannot be imported ({e}). {INSTALL}", pytrace=False)
    options = chrome_options(tmp_path_factory.mktemp("chromium-profile"))
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_AVOID_STATS", "true")  # Selenium sends no usage statistics
        driver = webdriver.Chrome(
            service=Service(executable_path=str(CHROMEDRIVER)), options=options
        )
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A 300-account book's report, with waterfalls for its three accounts of highest priority."""
    frame = book(300, seed=11)
    top = by_priority(frame)["account_id"][:3]
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(render(frame, waterfalls={a: waterfall_png(i) for i, a in enumerate(top)}), path)
    return path, frame


def open_page(browser: WebDriver, url: str) -> None:
    """Load ``url`` afresh (not a jump within the page) and wait for the table to be drawn."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get("about:blank")
    browser.get_log("browser")  # start each page with an empty console
    browser.get(url)
    WebDriverWait(browser, 10).until(
        lambda d: d.execute_script("return document.documentElement.hasAttribute('data-ready')")
    )


def shown(browser: WebDriver) -> list[str]:
    """The account ids of the table's rows, top to bottom."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#accounts-table tr.account'),"
        " r => r.getAttribute('data-account-id'));"
    )


def text_of(browser: WebDriver, element_id: str) -> str:
    return browser.find_element("id", element_id).text


def click(browser: WebDriver, css: str) -> None:
    browser.find_element("css selector", css).click()


def choose(browser: WebDriver, name: str, value: str | None) -> None:
    """Pick a value of the segment, CSM or renewal-month filter (None: all)."""
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", f"filter-{name}")).select_by_value(
        "" if value is None else "=" + value
    )


def assert_no_errors(browser: WebDriver) -> None:
    """Nothing went wrong on the page: no console error (CSP violations included) and no
    error recorded by the page's own handler."""
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    recorded = browser.execute_script("return document.documentElement.getAttribute('data-errors')")
    assert recorded is None, recorded


def status(count: int, start: int = 1, shown: int | None = None, of: int | None = None) -> str:
    """The line above the table, as the page should word it."""
    last = start - 1 + (count if shown is None else shown)
    tail = "." if of is None else f" matching the search and filters (of {of:,})."
    return f"Showing {start:,}–{last:,} of {count:,} accounts{tail}"


# --------------------------------------------------------------------------- the tests


def test_the_first_page_is_the_book_by_priority(
    browser: WebDriver, report: tuple[Path, pd.DataFrame]
) -> None:
    path, frame = report
    open_page(browser, path.as_uri())
    assert shown(browser) == selected(frame)[:50]
    assert text_of(browser, "view-status") == status(300, shown=50)
    assert text_of(browser, "page-info") == "Page 1 of 6"
    # The first row says what the book says about that account.
    first = by_priority(frame).iloc[0]
    cells = browser.find_elements("css selector", "#accounts-table tr.account:first-child td")
    assert [c.text for c in cells[:4]] == [
        first["account_id"], first["name"], first["segment"], first["csm"] or ""
    ]  # fmt: skip
    assert cells[7].text == f"{first['arr']:,.0f}" and cells[6].text == (
        f"{first['churn_probability']:.0%}"
    )
    assert_no_errors(browser)


def test_search_finds_accounts_by_name_and_by_id(
    browser: WebDriver, report: tuple[Path, pd.DataFrame]
) -> None:
    path, frame = report
    open_page(browser, path.as_uri())
    search = browser.find_element("id", "filter-search")
    search.send_keys("acme")
    acme = selected(frame, q="acme")
    assert sorted(acme) == sorted(f"ACC-{i + 1:05d}" for i in ACME), "case-insensitive"
    assert shown(browser) == acme
    assert text_of(browser, "view-status") == status(3, of=300)
    search.clear()
    search.send_keys("ACC-0004")  # ids ACC-00040 ... ACC-00049
    assert shown(browser) == selected(frame, q="ACC-0004") and len(shown(browser)) == 10
    search.send_keys("2")
    assert shown(browser) == ["ACC-00042"]
    search.send_keys("x")
    assert shown(browser) == []
    assert text_of(browser, "view-status") == (
        "No account matches the search and filters (of 300)."
    )
    assert_no_errors(browser)


def test_band_segment_csm_and_month_filters(
    browser: WebDriver, report: tuple[Path, pd.DataFrame]
) -> None:
    path, frame = report
    open_page(browser, path.as_uri())
    click(browser, 'button[data-band="red"]')
    red = selected(frame, bands=("red",))
    assert shown(browser) == red[:50] and text_of(browser, "view-status") == status(
        len(red), shown=min(len(red), 50), of=300
    )
    click(browser, 'button[data-band="yellow"]')
    warm = selected(frame, bands=("red", "yellow"))
    assert len(warm) > 50, "the planted book has more than a page of red and yellow"
    assert shown(browser) == warm[:50]
    assert text_of(browser, "view-status") == status(len(warm), shown=50, of=300)

    choose(browser, "segment", "Enterprise")
    view = selected(frame, bands=("red", "yellow"), segment="Enterprise")
    assert shown(browser) == view[:50] and len(view) > 0
    choose(browser, "csm", "Noa Okafor")
    mine = selected(frame, bands=("red", "yellow"), segment="Enterprise", csm="Noa Okafor")
    assert shown(browser) == mine and 0 < len(mine) < len(view)
    assert text_of(browser, "view-status") == status(len(mine), of=300)

    click(browser, "#filter-clear")
    assert shown(browser) == selected(frame)[:50]
    choose(browser, "renewal", "2025-07")
    july = selected(frame, month="2025-07")
    assert shown(browser) == july[:50] and text_of(browser, "view-status") == status(
        len(july), shown=min(len(july), 50), of=300
    )
    click(browser, "#filter-overdue")  # overdue and renewing in July: none
    assert shown(browser) == []
    choose(browser, "renewal", None)
    overdue = selected(frame, month="2025-05")
    assert shown(browser) == overdue and sorted(overdue) == ["ACC-00299", "ACC-00300"]
    badges = browser.find_elements("css selector", "#accounts-table .badge-overdue")
    assert len(badges) == 2 and {b.text for b in badges} == {"Overdue"}, "one on each row"
    assert browser.find_element("css selector", "tr.account td.nowrap").text == (
        "2025-05-20\nOverdue 12 d ago"
    )
    click(browser, "tr.account td:nth-child(2)")
    head = browser.find_element("css selector", "tr.detail .detail-head")
    assert head.find_element("css selector", ".badge-overdue").text == "Overdue"
    assert "renewal overdue since 2025-05-20" in head.text, "and on the account's details"
    assert_no_errors(browser)


def test_pages_and_page_size(browser: WebDriver, report: tuple[Path, pd.DataFrame]) -> None:
    path, frame = report
    everyone = selected(frame)
    open_page(browser, path.as_uri())
    click(browser, 'button[data-page="next"]')
    assert shown(browser) == everyone[50:100]
    assert text_of(browser, "view-status") == status(300, start=51, shown=50)
    assert text_of(browser, "page-info") == "Page 2 of 6"
    click(browser, 'button[data-page="last"]')
    assert shown(browser) == everyone[250:]
    assert browser.find_element("css selector", 'button[data-page="next"]').get_attribute(
        "disabled"
    )
    click(browser, 'button[data-page="previous"]')
    assert shown(browser) == everyone[200:250]
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", "page-size")).select_by_value("100")
    assert shown(browser) == everyone[200:300], "the first account shown stays in view"
    assert text_of(browser, "page-info") == "Page 3 of 3"
    click(browser, 'button[data-page="first"]')
    assert shown(browser) == everyone[:100]
    assert_no_errors(browser)


def test_sorting_by_a_column(browser: WebDriver, report: tuple[Path, pd.DataFrame]) -> None:
    path, frame = report
    open_page(browser, path.as_uri())
    click(browser, 'th[data-key="arr"] button')
    # Ties keep the book's order (priority), as a stable sort of the book does.
    by_arr = by_priority(frame).sort_values("arr", kind="stable")["account_id"].tolist()
    assert shown(browser) == by_arr[:50]
    click(browser, 'th[data-key="arr"] button')
    by_arr = (
        by_priority(frame).sort_values("arr", ascending=False, kind="stable")["account_id"].tolist()
    )
    assert shown(browser) == by_arr[:50]
    assert_no_errors(browser)


def test_an_account_opens_its_details_on_click(
    browser: WebDriver, report: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    path, frame = report
    open_page(browser, path.as_uri())
    assert not browser.find_elements("css selector", "tr.detail"), "no details up front"
    for position in (0, 7):  # the first account has a waterfall, the eighth has none
        account = by_priority(frame).iloc[position]
        click(browser, f'tr.account[data-account-id="{account["account_id"]}"] td:nth-child(2)')
        details = browser.find_elements("css selector", "tr.detail")
        assert len(details) == 1, "one account's details at a time"
        detail = details[0]
        assert detail.get_attribute("data-detail-of") == account["account_id"]
        following = browser.execute_script(
            "return arguments[0].previousElementSibling.getAttribute('data-account-id')", detail
        )
        assert following == account["account_id"], "the details open under their row"
        drivers = [li.text for li in detail.find_elements("css selector", "ol.drivers li")]
        assert drivers == account["driver_list"][:3], "the risk drivers, in order"
        protective = account["driver_list"][3].removeprefix("Protective: ")
        assert detail.find_element("css selector", "p.protective").text == protective
        assert detail.find_element("css selector", "p.play").text == account["play"]
        assert detail.find_element("css selector", "p.change").text == (
            account["change"] or "Nothing recorded: a first run, or no driver moved."
        )
        images = detail.find_elements("css selector", "figure img")
        if position == 0:
            assert len(images) == 1
            assert (images[0].get_attribute("src") or "").startswith("data:image/png;base64,")
            assert browser.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth", images[0]
            ) == 400, "the embedded waterfall (5 x 80 px wide) was decoded"  # fmt: skip
            shot = tmp_path / "report.png"
            assert browser.save_screenshot(str(shot))
            png = shot.read_bytes()
            assert png.startswith(b"\x89PNG\r\n\x1a\n")
            width, height = struct.unpack(">II", png[16:24])
            assert width >= 1000 and height >= 600, (width, height)
            assert len(png) > 20_000, f"a screenshot of {len(png):,} bytes looks blank"
        else:
            assert not images
            assert "churn explain " + account["account_id"] in detail.text
    click(browser, "tr.detail button[data-close]")
    assert not browser.find_elements("css selector", "tr.detail")
    assert_no_errors(browser)


def test_the_view_comes_back_from_the_address(
    browser: WebDriver, report: tuple[Path, pd.DataFrame]
) -> None:
    path, frame = report
    open_page(browser, path.as_uri())
    browser.find_element("id", "filter-search").send_keys("a")
    click(browser, 'button[data-band="green"]')
    choose(browser, "csm", "Eli Park")
    click(browser, 'th[data-key="name"] button')
    view = selected(frame, q="a", bands=("green",), csm="Eli Park")
    assert len(view) > 25, "more than a page of 25"
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", "page-size")).select_by_value("25")
    click(browser, 'button[data-page="next"]')
    rows = shown(browser)
    click(browser, f'tr.account[data-account-id="{rows[3]}"] td:nth-child(2)')
    url = browser.current_url
    assert url.startswith(path.as_uri() + "#") and "csm=Eli+Park" in url and "page=2" in url

    def view_now() -> dict[str, Any]:
        return {
            "rows": shown(browser),
            "status": text_of(browser, "view-status"),
            "page": text_of(browser, "page-info"),
            "search": browser.find_element("id", "filter-search").get_attribute("value"),
            "bands": [
                b.get_attribute("data-band")
                for b in browser.find_elements("css selector", 'button[aria-pressed="true"]')
            ],
            "csm": browser.find_element("id", "filter-csm").get_attribute("value"),
            "sorted": browser.find_element("css selector", "th[aria-sort]").get_attribute(
                "data-key"
            ),
            "open": [
                d.get_attribute("data-detail-of")
                for d in browser.find_elements("css selector", "tr.detail")
            ],
        }

    before = view_now()
    assert before["rows"] == rows and before["open"] == [rows[3]]
    assert (
        before["search"] == "a"
        and before["bands"] == ["green"]
        and before["page"] == (f"Page 2 of {-(-len(view) // 25)}")
    )
    open_page(browser, url)  # a bookmark opened later
    assert view_now() == before
    browser.refresh()
    assert view_now() == before
    # A view written by hand, as a CSM would bookmark their own accounts.
    open_page(browser, path.as_uri() + "#csm=Dana+Ortiz&band=red")
    assert shown(browser) == selected(frame, csm="Dana Ortiz", bands=("red",))
    assert browser.find_element("id", "filter-csm").get_attribute("value") == "=Dana Ortiz"
    assert_no_errors(browser)


def test_a_10000_account_book_stays_small_and_a_hostile_name_stays_text(
    browser: WebDriver, tmp_path: Path
) -> None:
    frame = book(10_000, seed=5)
    frame.loc[4321, "name"] = HOSTILE
    hostile_id = frame.loc[4321, "account_id"]
    # Fifty waterfalls, as churn score embeds by default, drawn as churn score draws them.
    rng = np.random.default_rng(5)
    names = [f"feature_{k}" for k in range(20)]
    drawn = [
        shap_waterfall_png(
            pd.Series(rng.normal(0, 0.3, 21), index=[*names, "bias"]),
            [],
            pd.Series(rng.normal(size=20), index=names),
            f"picture {k}: why this score",
        )
        for k in range(5)
    ]
    top = by_priority(frame)["account_id"][:50]
    path = tmp_path / "report.html"
    write_report(render(frame, waterfalls={a: drawn[k % 5] for k, a in enumerate(top)}), path)
    size = path.stat().st_size
    assert size < 5_000_000, f"{size:,} bytes for 10,000 accounts; the budget is 5 MB"

    open_page(browser, path.as_uri())
    assert text_of(browser, "view-status") == status(10_000, shown=50)
    browser.find_element("id", "filter-search").send_keys("onerror")
    assert shown(browser) == [hostile_id]
    name = browser.find_element("css selector", "tr.account td:nth-child(2)")
    assert name.text == HOSTILE, "shown as the text it is"
    click(browser, "tr.account td:nth-child(2)")
    assert browser.find_element("css selector", "tr.detail strong").text == HOSTILE
    assert browser.execute_script("return document.querySelectorAll('img[src=x]').length") == 0
    assert browser.execute_script("return document.scripts.length") == 3, "no script was added"
    # The rest of the page is whole: the sections after the data are there and drawn.
    assert browser.find_element("id", "drift").is_displayed()
    assert "Generated by churn-health" in browser.find_element("css selector", "footer").text
    assert_no_errors(browser)
