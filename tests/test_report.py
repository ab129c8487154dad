"""report.html: escaping, CSV neutralising, the summary figures, the page in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import struct
import subprocess
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from pipelines.report import (
    BACKTEST_FIGURES,
    compact_png,
    neutralise_csv,
    neutralise_csv_cell,
    portfolio_summary,
    render_report,
    script_json,
    write_report,
)

AS_OF = date(2025, 6, 1)
XSS = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("x")'
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def scores_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A scores frame shaped like the one ``churn score`` hands to the report."""
    frame = pd.DataFrame(rows)
    p = frame["churn_probability"].astype(float)
    drivers = frame["driver_list"].map("; ".join)
    return frame.assign(
        as_of=pd.Timestamp(AS_OF),
        health_score=(100 * (1 - p)).round().astype(int),
        renewal_date=pd.to_datetime(frame["renewal_date"]),
        arr=frame["arr"].astype(float),
        drivers=drivers,
        priority=frame["arr"].astype(float) * p,
        model_version="7",
    )


def five_accounts() -> pd.DataFrame:
    """Five accounts whose summary is worked out by hand in the test below."""
    base = {
        "renewal_date": "2025-08-01",
        "play": "Call the champion",
        "change": "",
        "driver_list": ["Active users (30 d) fell"],
        "csm": "Dana",
    }
    return scores_frame(
        [
            {
                **base,
                "account_id": "A1",
                "name": "Acme",
                "segment": "Enterprise",
                "band": "red",
                "churn_probability": 0.8,
                "arr": 100_000.0,
            },
            {
                **base,
                "account_id": "A2",
                "name": "Bolt",
                "segment": "SMB",
                "band": "red",
                "churn_probability": 0.6,
                "arr": np.nan,
            },
            {
                **base,
                "account_id": "A3",
                "name": "Core",
                "segment": "SMB",
                "band": "yellow",
                "churn_probability": 0.3,
                "arr": 50_000.0,
            },
            {
                **base,
                "account_id": "A4",
                "name": "Dyne",
                "segment": "Enterprise",
                "band": "green",
                "churn_probability": 0.1,
                "arr": 20_000.0,
            },
            {
                **base,
                "account_id": "A5",
                "name": "Eon",
                "segment": None,
                "band": "green",
                "churn_probability": 0.05,
                "arr": 10_000.0,
            },
        ]
    )


def waterfall_png(seed: int) -> bytes:
    """A small waterfall-like bar chart, standing in for a SHAP waterfall."""
    rng = np.random.default_rng(seed)
    contrib = rng.normal(0, 0.4, 6)
    fig = Figure(figsize=(5, 2.6), dpi=80)
    ax = fig.add_subplot()
    ax.barh(range(6), contrib, color=["#c53030" if c > 0 else "#2f855a" for c in contrib])
    ax.set_yticks(range(6), [f"feature {i}" for i in range(6)])
    ax.set_xlabel("contribution to churn log-odds")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def portfolio(seed: int) -> pd.DataFrame:
    """Twenty-odd accounts with every awkward value: hostile names, NaN ARR, NaT, no CSM."""
    rng = np.random.default_rng(seed)
    segments = ["SMB", "Mid-Market", "Enterprise"]
    reasons = [
        "Active users (30 d): 3 of 40 seats (8%); healthy Mid-Market accounts: 55%",
        "Urgent tickets open: 2; healthy accounts: 0",
        "Logins fell 60% in 30 days",
        "Champion left 45 days ago",
        "Invoice 38 days overdue",
        "Reports exported (30 d): 0; healthy SMB accounts: 12",
    ]
    plays = [
        "Seat-activation campaign",
        "Escalate to support lead",
        "Multi-thread the relationship",
        "Involve finance",
        "Key-feature training",
    ]
    rows = []
    for i in range(22):
        p = float(rng.beta(0.9, 3.5))
        band = "red" if p >= 0.4 else "yellow" if p >= 0.15 else "green"
        rows.append(
            {
                "account_id": f"ACC-{i + 1:03d}",
                "name": f"Customer {chr(65 + i)} GmbH",
                "segment": segments[i % 3],
                "csm": ["Dana Ortiz", "Eli Park", "Mia Chen", None][i % 4],
                "band": band,
                "churn_probability": p,
                "arr": float(rng.integers(8, 400) * 1000),
                "renewal_date": str(
                    pd.Timestamp(AS_OF) + pd.Timedelta(days=int(rng.integers(10, 120)))
                ),
                "driver_list": list(rng.choice(reasons, size=3, replace=False)),
                "play": plays[i % len(plays)],
                "change": "" if i % 3 else f"Probability +{rng.integers(3, 20)} pts: logins fell",
            }
        )
    rows[0] |= {"name": XSS, "segment": "<b>SMB</b>", "csm": '"><img src=x onerror=alert(2)>'}
    rows[1] |= {"name": FORMULA, "play": "<i>escalate</i>", "change": "=1+1"}
    rows[2] |= {"arr": np.nan, "renewal_date": None}
    rows[3] |= {"account_id": 'ACC"<x>', "driver_list": [XSS, "Logins fell"]}
    return scores_frame(rows)


def _band(
    band: str, threshold: float, share: float, precision: tuple, recall: tuple
) -> dict[str, object]:
    """A row of ``scoring.json``'s band_quality: (value, low, high) of precision and recall."""
    row: dict[str, object] = {"band": band, "threshold": threshold, "share_of_accounts": share}
    for name, (value, low, high) in (("precision", precision), ("recall", recall)):
        row |= {name: value, f"{name}_low": low, f"{name}_high": high}
    return row


def render(scores: pd.DataFrame, drift: pd.DataFrame | None = None, **overrides: object) -> str:
    kwargs: dict[str, object] = {
        "as_of": AS_OF,
        "model_version": "7",
        "thresholds": {"red": 0.4, "yellow": 0.15},
        "band_quality": [
            _band("red", 0.4, 0.08, (0.58, 0.5, 0.66), (0.52, 0.45, 0.6)),
            _band("yellow", 0.15, 0.3, (0.2, 0.17, 0.24), (0.31, 0.26, 0.37)),
            _band("green", 0.0, 0.62, (0.041, 0.03, 0.05), (0.17, 0.12, 0.22)),
        ],
        "backtest": {
            "roc_auc": {"value": 0.812, "low": 0.79, "high": 0.83},
            "hand_weighted_roc_auc": {"value": 0.664, "low": 0.63, "high": 0.69},
            "green_churn_rate": {"value": 0.041, "low": 0.03, "high": 0.05},
            "red_recall": {"value": 0.52, "low": 0.45, "high": 0.6},
            "watermelon_rate": {"value": 0.17, "low": None, "high": None},
        },
        "evaluation": {
            "kind": "out_of_time",
            "kind_text": "out of time (rolling origin: trained before each cut-off, checked "
            "after it)",
            "statement": "This check rests on 2,000 labelled outcomes.",
            "skipped": [{"cutoff": "2024-01-02", "reason": "training part has 1 churned"}],
            "ece_by_fold": [{"fold": "2025-01-02", "rows": 812, "ece": 0.021}],
            "interval_level": 0.95,
            "band_lead_days": 90,
        },
        "drift": drift
        if drift is not None
        else pd.DataFrame(
            {
                "feature": ["events_30d", "urgent_open", "utilisation_30d"],
                "label": ["Events (30 d)", "Urgent tickets open", "Licence utilisation (30 d)"],
                "psi": [0.31, 0.14, 0.02],
                "status": ["drift", "watch", "ok"],
            }
        ),
        "waterfalls": {},
    }
    kwargs.update(overrides)
    return render_report(scores, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- safety


def embedded(page: str, block: str) -> Any:
    """The JSON of the page's ``<script type="application/json" id=block>``, parsed."""
    found = re.search(
        rf'<script type="application/json" id="{block}">(.*?)</script>', page, flags=re.S
    )
    assert found is not None, f"no {block} block in the page"
    return json.loads(found.group(1))


def accounts(page: str) -> list[dict[str, Any]]:
    """The accounts the page carries, as the script reads them: one dict per row, in order.

    The format is the one ``accounts_payload`` documents: ``fields`` names the positions,
    and the ``lookup`` fields hold indices into ``text`` (a list of them for drivers).
    """
    data = embedded(page, "report-data")
    text, lookup = data["text"], set(data["lookup"])

    def value(field: str, v: Any) -> Any:
        if field not in lookup or v is None:
            return v
        return [text[i] for i in v] if isinstance(v, list) else text[v]

    return [
        {f: value(f, v) for f, v in zip(data["fields"], row, strict=True)} for row in data["rows"]
    ]


def test_data_text_is_escaped_in_text_and_attributes(seed: int) -> None:
    page = render(portfolio(seed))
    rows = {a["id"]: a for a in accounts(page)}
    # Markup from the data never reaches the page as markup: in the JSON block it is written
    # with \u003c and \u003e, so it cannot end the block (the browser test shows it as text).
    assert "<script>alert(1)" not in page and page.count("</script") == 3, "no value ends a block"
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in page
    assert rows["ACC-001"]["name"] == XSS, "the JSON gives back the text exactly"
    assert "<img src=x" not in page and rows["ACC-001"]["csm"] == '"><img src=x onerror=alert(2)>'
    assert "<b>SMB</b>" not in page and "<i>escalate</i>" not in page
    assert (
        rows["ACC-001"]["segment"] == "<b>SMB</b>" and rows["ACC-002"]["play"] == "<i>escalate</i>"
    )
    # The one value rendered as HTML as well (the segment table, the filter choices) is escaped.
    assert "<td>&lt;b&gt;SMB&lt;/b&gt;</td>" in page
    assert '<option value="=&#34;&gt;&lt;img src=x onerror=alert(2)&gt;">' in page
    assert 'ACC"<x>' in rows and rows['ACC"<x>']["drivers"] == [XSS, "Logins fell"]
    assert rows["ACC-002"]["name"] == FORMULA, "shown as the text it is"
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts.count("<script>") == 1, "the page's own script is the only one that runs"
    assert sorted(set(scripts) - {"<script>"}) == [
        '<script type="application/json" id="report-data">',
        '<script type="application/json" id="report-waterfalls">',
    ], "the others are data, never run"


def test_embedded_json_cannot_end_its_script_block() -> None:
    hostile = {"a": "</script><img src=x onerror=alert(1)>", "b": "<!-- & \u2028"}
    text = str(script_json(hostile))
    # Golden value, written by hand: <, > and & as JSON escapes, and U+2028 too.
    assert text == (
        '{"a":"\\u003c/script\\u003e\\u003cimg src=x onerror=alert(1)\\u003e",'
        '"b":"\\u003c!-- \\u0026 \\u2028"}'
    )
    assert json.loads(text) == hostile


def test_csv_cells_that_would_run_as_formulas_are_neutralised() -> None:
    assert neutralise_csv_cell(FORMULA) == "'" + FORMULA
    for risky in ("+1", "-1+2", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise_csv_cell(risky) == "'" + risky
    assert neutralise_csv_cell(-0.5) == -0.5 and neutralise_csv_cell("Acme") == "Acme"
    frame = pd.DataFrame({"name": [FORMULA, "Acme", None], "delta": [-0.5, 1.0, np.nan]})
    out = neutralise_csv(frame)
    assert out["name"].tolist()[:2] == ["'" + FORMULA, "Acme"] and pd.isna(out["name"].iloc[2])
    assert out["delta"].dtype == np.float64 and out["delta"].iloc[0] == -0.5
    assert frame["name"].iloc[0] == FORMULA, "the input frame is not mutated"


def test_page_needs_no_network(seed: int) -> None:
    page = render(portfolio(seed), waterfalls={"ACC-001": waterfall_png(seed)})
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "url(" not in page and "@import" not in page
    assert "default-src 'none'" in page and "'unsafe-inline'" not in page
    # Pictures travel as base64 PNG in a data block; the script shows them as data: URIs,
    # the only images the policy allows (img-src data:).
    assert "img-src data:;" in page and '"data:image/png;base64," +' in page
    picture = base64.b64decode(embedded(page, "report-waterfalls")["ACC-001"])
    assert picture.startswith(b"\x89PNG\r\n\x1a\n")


def test_waterfalls_are_recoded_smaller_and_the_same_picture() -> None:
    png = waterfall_png(3)
    small = compact_png(png)
    assert small.startswith(b"\x89PNG") and len(small) < len(png)
    with Image.open(io.BytesIO(png)) as a, Image.open(io.BytesIO(small)) as b:
        before = np.asarray(a.convert("RGB"), dtype=int)
        after = np.asarray(b.convert("RGB"), dtype=int)
    assert before.shape == after.shape
    assert np.abs(before - after).max() <= 32, "a palette of 256 colours: no visible change"
    see_through = io.BytesIO()
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(see_through, format="PNG")
    assert compact_png(see_through.getvalue()) == see_through.getvalue(), "alpha is kept"


def test_inputs_the_report_cannot_use_are_named() -> None:
    with pytest.raises(ValueError, match=r"scores: missing columns \['priority'\]"):
        render(five_accounts().drop(columns="priority"))
    with pytest.raises(ValueError, match=r"scores\.band: 1 rows .*A1"):
        render(five_accounts().assign(band=["purple", "red", "yellow", "green", "green"]))
    with pytest.raises(ValueError, match=r"waterfalls: 1 images are not PNG bytes .*A1"):
        render(five_accounts(), waterfalls={"A1": b"GIF89a"})


# --------------------------------------------------------------------------- figures


def test_summary_figures_match_a_hand_computation() -> None:
    s = portfolio_summary(five_accounts())
    # By hand: red = A1 (100k) + A2 (ARR unknown), yellow = A3 (50k), green = A4 + A5 (30k).
    assert s.by_band["accounts"].to_dict() == {"red": 2, "yellow": 1, "green": 2}
    assert s.by_band["arr"].to_dict() == {"red": 100_000, "yellow": 50_000, "green": 30_000}
    assert (s.arr_red, s.arr_red_yellow, s.unknown_arr) == (100_000, 150_000, 1)
    # 0.8 x 100k + 0.3 x 50k + 0.1 x 20k + 0.05 x 10k = 80,000 + 15,000 + 2,000 + 500.
    assert s.expected_churned_arr == pytest.approx(97_500)
    assert s.by_segment is not None
    assert s.by_segment["expected_churned_arr"].to_dict() == pytest.approx(
        {"(no segment)": 500, "Enterprise": 82_000, "SMB": 15_000}
    )
    assert s.by_segment.loc["SMB"].to_dict() == pytest.approx(
        {
            "accounts": 2,
            "arr": 50_000,
            "red_arr": 0,
            "red_yellow_arr": 50_000,
            "expected_churned_arr": 15_000,
        }
    )
    page = render(five_accounts())
    assert "97,500" in page and "150,000" in page and "renewal forecast" in page


def test_table_is_by_priority_and_optional_columns_may_be_absent() -> None:
    page = render(five_accounts().drop(columns=["name", "segment", "csm", "change"]))
    rows = accounts(page)
    order = [a["id"] for a in rows]
    assert order == ["A1", "A3", "A4", "A5", "A2"], "priority descending, unknown ARR last"
    assert "By segment" not in page
    assert {(a["name"], a["segment"], a["csm"], a["change"]) for a in rows} == {
        (None, None, None, None)
    }
    assert 'id="filter-segment"' not in page and 'id="filter-csm"' not in page, "no empty filter"


def test_the_page_carries_each_account_as_the_table_and_details_show_it() -> None:
    scores = five_accounts()
    scores.loc[0, "driver_list"] = ["Logins fell", "Seats unused", "Protective: NPS 9"]
    scores = scores.assign(overdue=[False, False, True, False, False])
    rows = {a["id"]: a for a in accounts(render(scores))}
    # By hand from five_accounts: A1 is red, 0.8 x 100,000, renews 2025-08-01 (61 days
    # after 2025-06-01); A2 has no ARR; A3 is overdue.
    assert rows["A1"] == {
        "id": "A1", "name": "Acme", "segment": "Enterprise", "csm": "Dana", "band": "red",
        "health": 20, "probability": 0.8, "arr": 100_000, "priority": 80_000, "renewal": 61,
        "overdue": 0, "drivers": ["Logins fell", "Seats unused"], "protective": "NPS 9",
        "play": "Call the champion", "change": None,
    }  # fmt: skip
    assert rows["A2"]["arr"] is None and rows["A2"]["priority"] is None
    assert rows["A3"]["overdue"] == 1 and rows["A5"]["segment"] is None


def test_filters_offer_every_value_of_the_book_with_its_count() -> None:
    scores = five_accounts().assign(
        renewal_date=pd.to_datetime(
            pd.Series(["2025-08-01", "2025-08-31", "2025-09-01", None, "2025-08-15"])
        )
    )
    page = render(scores)

    def choices(name: str) -> list[tuple[str, str]]:
        select = re.search(rf'<select id="filter-{name}"[^>]*>(.*?)</select>', page, re.S)
        assert select is not None, name
        return re.findall(r'<option value="([^"]*)">([^<]+)</option>', select.group(1))

    # Values sorted, the missing one last; months by date; by hand from five_accounts.
    # "" means all; "=" + value picks a value ("=" alone: the accounts without one).
    assert choices("segment") == [
        ("", "All segments"), ("=Enterprise", "Enterprise (2)"), ("=SMB", "SMB (2)"),
        ("=", "(no segment) (1)"),
    ]  # fmt: skip
    assert choices("csm") == [("", "All CSMs"), ("=Dana", "Dana (5)")]
    assert choices("renewal") == [
        ("", "Any month"), ("=2025-08", "Aug 2025 (3)"), ("=2025-09", "Sep 2025 (1)"),
        ("=", "(no renewal date) (1)"),
    ]  # fmt: skip
    assert re.findall(r'data-band="(\w+)" aria-pressed="false">[^<]+\((\d+)\)', page) == [
        ("red", "2"), ("yellow", "1"), ("green", "2")
    ]  # fmt: skip


def test_every_figure_training_stores_has_words_in_the_report() -> None:
    from pipelines.context import FIGURES

    assert set(FIGURES) == set(BACKTEST_FIGURES)


def test_quality_section_says_what_was_measured_in_words() -> None:
    page = render(five_accounts())
    quality = page[page.index('id="quality"') : page.index('id="drift"')]
    labels = re.findall(r'data-figure="([a-z_]+)"><div class="card-label">([^<]+)<', quality)
    assert [k for k, _ in labels] == [
        "roc_auc", "hand_weighted_roc_auc", "red_recall", "green_churn_rate", "watermelon_rate"
    ]  # fmt: skip
    for key, label in labels:
        assert label == BACKTEST_FIGURES[key][0] and key not in label
    assert "0.812" in quality and "95% interval: 0.790 to 0.830" in quality
    assert "out of time (rolling origin" in quality and "2,000 labelled outcomes" in quality
    assert "2024-01-02: training part has 1 churned" in quality
    assert "58.0%<br><span class=muted>50.0% to 66.0%</span>" in quality  # red precision
    assert "below yellow" in quality and "2.1%" in quality  # green band, ECE of the fold


def test_drift_lists_only_moved_features_or_says_no_drift() -> None:
    page = render(five_accounts())
    drift = page[page.index('id="drift"') :]
    assert "Events (30 d)" in drift and "Urgent tickets open" in drift
    assert "Licence utilisation" not in drift and "2 features drifted" in page
    calm = pd.DataFrame({"feature": ["x"], "label": ["X"], "psi": [0.03], "status": ["ok"]})
    page = render(five_accounts(), drift=calm)
    assert "No drift." in page and "drifted" not in page


# --------------------------------------------------------------------------- browser


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None, (
        "chromium is not installed: make test installs it (apt-get install chromium)"
    )
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )


def test_page_loads_sorts_and_renders_in_headless_chromium(seed: int, tmp_path: Path) -> None:
    scores = portfolio(seed)
    top = scores.sort_values("priority", ascending=False)["account_id"][:3]
    waterfalls = {a: waterfall_png(i) for i, a in enumerate(top)}
    path = tmp_path / "report.html"
    write_report(render(scores, waterfalls=waterfalls), path)

    # The page's #selftest clicks the headers and records the result and any script error.
    run = chromium("--virtual-time-budget=2000", "--dump-dom", f"{path.as_uri()}#selftest")
    assert run.returncode == 0, run.stderr
    root = re.search(r"<html[^>]*>", run.stdout)
    assert root is not None, run.stdout[:500]
    assert 'data-selftest="ok"' in root.group(0), root.group(0)
    assert "data-errors" not in root.group(0), root.group(0)
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;" in run.stdout and "<script>alert" not in run.stdout
    )

    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(path, ARTIFACTS / "report.html")
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    run = chromium(
        "--window-size=1400,2000", "--hide-scrollbars", f"--screenshot={shot}", path.as_uri()
    )
    assert run.returncode == 0 and shot.is_file(), run.stderr
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG") and struct.unpack(">II", png[16:24]) == (1400, 2000)
    assert len(png) > 20_000, f"screenshot of {len(png):,} bytes looks blank"
