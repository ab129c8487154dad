"""``report.html`` for CS ops, and CSV cells a spreadsheet cannot run as formulas.

:func:`render_report` is pure: frames and figures in, one self-contained HTML string out.
:func:`write_report` is the only function here that touches the disk. The markup, CSS and
script are package files under ``pipelines/templates/`` (a Jinja2 template with
autoescaping on); this module prepares what they show.

The page is built for a real book (10,000 accounts and more). The summary, quality and
drift sections are rendered here, as HTML. The accounts are not: they travel as one JSON
document in a ``<script type="application/json">`` block, and the page's script renders
the table from it, a page of rows at a time, with search, filters by band, segment, CSM and
renewal month, sorting, and each account's details opened on demand. The view (search,
filters, sort, page, open account) lives in the address's ``#`` part, so a CSM can
bookmark "my accounts". Rendering 10,000 accounts as HTML rows and detail blocks made a
23 MB page; with the accounts as JSON it is 2.4 MB (see the decision above
:func:`compact_png`).

Safety. Every text from the data (account ids, names, segments, CSMs, drivers, plays,
changes, feature labels) is either HTML-escaped by the template or JSON-encoded with ``<``,
``>`` and ``&`` written as ``\\u003c``, ``\\u003e`` and ``\\u0026`` (:func:`script_json`),
so no value can close the data block; the script inserts values with ``textContent`` and
``setAttribute`` only. The page's Content-Security-Policy forbids every network request and
allows the one script and the one style sheet by their hashes (no ``'unsafe-inline'``), and
requires Trusted Types, so that a string assigned to ``innerHTML`` throws instead of being
parsed as markup.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup
from PIL import Image

from models.plays import MeasuredPlay
from pipelines.files import write_atomically
from pipelines.report_format import count as _count
from pipelines.report_format import money as _money
from pipelines.report_format import pct as _pct
from pipelines.report_format import text as _text
from pipelines.report_sections import outlook_view, plays_view

BANDS = ("red", "yellow", "green")
BAND_LABEL = {"red": "Red", "yellow": "Yellow", "green": "Green"}
BAND_COLOUR = {"red": "#c53030", "yellow": "#d48806", "green": "#2f855a"}
REQUIRED = (
    "account_id",
    "churn_probability",
    "health_score",
    "band",
    "renewal_date",
    "arr",
    "drivers",
    "play",
    "priority",
)
#: Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: Backtest figures the report knows how to say in plain language: label, format, meaning.
#: Every key of ``scoring.json``'s ``backtest`` has an entry (a test checks it).
BACKTEST_FIGURES = {
    "roc_auc": (
        "ROC AUC, this model",
        "auc",
        "How well the score ranks churners above renewers: 0.5 is a coin toss, 1 is perfect.",
    ),
    "hand_weighted_roc_auc": (
        "ROC AUC, hand-weighted health score",
        "auc",
        "The same measure for a classic hand-weighted score on the same accounts.",
    ),
    "logistic_roc_auc": (
        "ROC AUC, logistic regression",
        "auc",
        "The same measure for a plain logistic regression on the same features and accounts.",
    ),
    "lift_top_decile": (
        "Churn rate in the riskiest 10%, vs average",
        "lift",
        "How many times the average churn rate the model's riskiest tenth of accounts had.",
    ),
    "red_precision": (
        "Red accounts that churned",
        "pct",
        "Of the accounts the model called red, the share that churned: a red call's hit rate.",
    ),
    "red_recall": (
        "Churners that were red",
        "pct",
        "Of the accounts that churned, the share the model had called red.",
    ),
    "green_churn_rate": (
        "Green accounts that churned",
        "pct",
        "Of the accounts the model called green, the share that churned anyway.",
    ),
    "watermelon_rate": (
        "Churners that looked green",
        "pct",
        "Green outside, red inside: churned accounts the model had called green.",
    ),
}


# --------------------------------------------------------------------------- CSV safety


def neutralise_csv_cell(value: Any) -> Any:
    """Prefix ``'`` to a text cell a spreadsheet would run as a formula; leave the rest alone.

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is affected;
    numbers (``-0.5`` stays a float), dates and missing values are returned unchanged.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralise_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells are neutralised; numeric columns are untouched."""
    text_cols = [
        c
        for c in frame.columns
        if not pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_datetime64_any_dtype(frame[c])
    ]
    return frame.assign(**{str(c): frame[c].map(neutralise_csv_cell) for c in text_cols})


# --------------------------------------------------------------------------- numbers


@dataclass(frozen=True)
class PortfolioSummary:
    """The portfolio figures at the top of the report.

    ARR sums skip accounts whose ARR is unknown (``unknown_arr`` counts them).
    ``expected_churned_arr`` is sum(ARR x churn probability): a renewal forecast of the ARR
    lost at these renewals if nothing changes. ``by_band`` is indexed red, yellow, green with
    columns accounts, arr, expected_churned_arr; ``by_segment`` (None when the scores carry
    no segment) is indexed by segment with accounts, arr, red_arr, red_yellow_arr,
    expected_churned_arr. ``overdue`` counts the accounts whose renewal date passed with no
    outcome recorded (the scores' ``overdue`` column; none when it is absent) and
    ``overdue_arr`` sums their known ARR.
    """

    accounts: int
    unknown_arr: int
    by_band: pd.DataFrame
    arr_red: float
    arr_red_yellow: float
    expected_churned_arr: float
    by_segment: pd.DataFrame | None
    overdue: int = 0
    overdue_arr: float = 0.0


def _overdue(scores: pd.DataFrame) -> pd.Series:
    """The scores' ``overdue`` flags as booleans; all False when the column is absent."""
    if "overdue" not in scores:
        return pd.Series(False, index=scores.index)
    return scores["overdue"].astype("boolean").fillna(False).astype(bool)


def portfolio_summary(scores: pd.DataFrame) -> PortfolioSummary:
    """Accounts and ARR by band, ARR at risk and the expected churned ARR of ``scores``."""
    arr = pd.to_numeric(scores["arr"], errors="coerce").astype("float64")
    band = scores["band"].astype("str")
    frame = pd.DataFrame(
        {
            "band": band,
            "arr": arr,
            "expected": arr * scores["churn_probability"].astype("float64"),
            "red": arr.where(band == "red", 0.0),
            "red_yellow": arr.where(band != "green", 0.0),
        }
    )

    def totals(group: Any) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "accounts": group.size(),
                "arr": group["arr"].sum(),
                "red_arr": group["red"].sum(),
                "red_yellow_arr": group["red_yellow"].sum(),
                "expected_churned_arr": group["expected"].sum(),
            }
        )

    by_band = totals(frame.groupby("band")).reindex(list(BANDS), fill_value=0)
    by_segment = None
    if "segment" in scores and scores["segment"].map(_text).ne("").any():
        segment = scores["segment"].map(_text).replace("", "(no segment)")
        by_segment = totals(frame.groupby(segment.rename("segment"), sort=True))
    return PortfolioSummary(
        accounts=len(scores),
        unknown_arr=int(arr.isna().sum()),
        by_band=by_band[["accounts", "arr", "expected_churned_arr"]],
        arr_red=float(frame["red"].sum()),
        arr_red_yellow=float(frame["red_yellow"].sum()),
        expected_churned_arr=float(frame["expected"].sum()),
        by_segment=by_segment,
        overdue=int(_overdue(scores).sum()),
        overdue_arr=float(arr.where(_overdue(scores), 0.0).sum()),
    )


# --------------------------------------------------------------------------- formatting


def _drivers(row: Mapping[Any, Any]) -> list[str]:
    """The row's reasons, most important first: ``driver_list``, else ``drivers`` split on '; '."""
    listed = row.get("driver_list")
    if isinstance(listed, list | tuple | np.ndarray):
        return [_text(d) for d in listed if _text(d)]
    return [d.strip() for d in _text(row.get("drivers")).split(";") if d.strip()]


# --------------------------------------------------------------------------- sections


def _summary_view(s: PortfolioSummary, thresholds: Mapping[str, float]) -> dict[str, Any]:
    """What the summary section shows: cards, accounts by band, the ARR chart, segments."""
    count = {str(b): int(n) for b, n in s.by_band["accounts"].items()}
    cards = [
        (
            "Accounts scored",
            _count(s.accounts),
            f"{s.unknown_arr:,} with unknown ARR" if s.unknown_arr else "all with known ARR",
        ),
        ("ARR at risk: red", _money(s.arr_red), f"{count['red']:,} accounts"),
        (
            "ARR at risk: red + yellow",
            _money(s.arr_red_yellow),
            f"{count['red'] + count['yellow']:,} accounts",
        ),
        (
            "Expected churned ARR",
            _money(s.expected_churned_arr),
            "renewal forecast: sum of ARR × churn probability",
        ),
        (
            "Overdue renewals",
            _count(s.overdue),
            f"renewal date passed, no outcome recorded: ARR {_money(s.overdue_arr)}"
            if s.overdue
            else "no renewal date passed without an outcome",
        ),
    ]
    red, yellow = thresholds["red"], thresholds["yellow"]
    return {
        "cards": cards,
        "bands": [(str(b), r) for b, r in s.by_band.iterrows()],
        "bands_note": (
            f"Red: churn probability {_pct(red)} or more · Yellow: {_pct(yellow)} to "
            f"{_pct(red)} · Green: below {_pct(yellow)}."
        ),
        "chart": _arr_chart(s.by_band),
        "segments": None if s.by_segment is None else list(s.by_segment.iterrows()),
    }


def _arr_chart(by_band: pd.DataFrame) -> dict[str, Any]:
    """The geometry of the ARR-by-band bar chart, drawn as inline SVG by the template."""
    width, label_w, bar_h, gap = 460, 70, 26, 12
    room = width - label_w - 110  # 110: the value label right of the longest bar
    top = float(by_band["arr"].max()) or 1.0
    bars = []
    for i, (band, r) in enumerate(by_band.iterrows()):
        w = max(0.0, room * float(r.arr) / top)
        y = i * (bar_h + gap)
        bars.append(
            {
                "label": BAND_LABEL[str(band)],
                "colour": BAND_COLOUR[str(band)],
                "y": y,
                "baseline": f"{y + bar_h * 0.68:.0f}",
                "x": label_w,
                "width": f"{w:.1f}",
                "value_x": f"{label_w + w + 8:.1f}",
                "value": _money(float(r.arr)),
            }
        )
    return {
        "width": width,
        "height": len(by_band) * (bar_h + gap) - gap,
        "bar_height": bar_h,
        "bars": bars,
    }


def _figure_text(figure: Mapping[str, Any], kind: str) -> tuple[str, str]:
    """A backtest figure and its interval as display text ("–" when unknown)."""

    def one(x: Any) -> str:
        if x is None or pd.isna(x):
            return "–"
        if kind == "pct":
            return _pct(float(x), 1)
        return f"{float(x):.2f}×" if kind == "lift" else f"{float(x):.3f}"

    low, high = figure.get("low"), figure.get("high")
    interval = "" if low is None or high is None else f"{one(low)} to {one(high)}"
    return one(figure.get("value")), interval


def _quality_view(
    backtest: Mapping[str, Mapping[str, Any]],
    evaluation: Mapping[str, Any],
    thresholds: Mapping[str, float],
    band_quality: Sequence[Mapping[str, Any]],
    model_version: str,
) -> dict[str, Any]:
    """What "How good is this score" shows: figures in words, bands, calibration by fold."""
    level = _pct(float(evaluation.get("interval_level", 0.95)))
    figures = []
    for key, (label, kind, meaning) in BACKTEST_FIGURES.items():
        if key in backtest:
            value, interval = _figure_text(backtest[key], kind)
            note = f"{level} interval: {interval}. " if interval else ""
            figures.append({"key": key, "label": label, "value": value, "note": note + meaning})
    order = {b: i for i, b in enumerate(BANDS)}
    bands = []
    for r in sorted(band_quality, key=lambda r: order.get(str(r["band"]), len(order))):
        band = _text(r["band"])
        cells = [
            _figure_text(
                {"value": r.get(name), "low": r.get(f"{name}_low"), "high": r.get(f"{name}_high")},
                "pct",
            )
            for name in ("precision", "recall")
        ]
        bands.append(
            {
                "band": band,
                "start": "below yellow" if band == "green" else _pct(r["threshold"], 1),
                "share": _pct(r.get("share_of_accounts", np.nan), 1),
                "cells": cells,
            }
        )
    return {
        "model_version": model_version,
        "kind": _text(evaluation.get("kind", "")),
        "kind_text": _text(evaluation.get("kind_text", "")),
        "statement": _text(evaluation.get("statement", "")),
        "skipped": [
            (_text(s["cutoff"]), _text(s["reason"])) for s in evaluation.get("skipped", [])
        ],
        "figures": figures,
        "bands": bands,
        "ece": [
            (_text(f["fold"]), _count(f["rows"]), _pct(f["ece"], 1))
            for f in evaluation.get("ece_by_fold", [])
        ],
        "level": level,
        "lead": int(evaluation.get("band_lead_days", 90)),
        "red": _pct(thresholds["red"], 1),
        "yellow": _pct(thresholds["yellow"], 1),
    }


def _drift_view(drift: pd.DataFrame) -> dict[str, Any]:
    """The features that moved since training (watch or drift), largest PSI first."""
    moved = drift[drift["status"].isin(["watch", "drift"])].sort_values("psi", ascending=False)
    plural = "s" if len(drift) != 1 else ""
    return {
        "checked": f"{len(drift):,} feature{plural} checked against training",
        "moved": [
            {
                "label": _text(r["label"]),
                "feature": _text(r["feature"]),
                "psi": f"{r['psi']:.3f}",
                "band": "red" if r["status"] == "drift" else "yellow",
                "status": _text(r["status"]).capitalize(),
            }
            for r in moved.to_dict("records")
        ],
    }


# --------------------------------------------------------------------------- accounts

#: Columns of the accounts table: key (the script's name for the column), header, sort type,
#: CSS class and share of the table's width (fixed layout, so the table fits its window).
COLUMNS = (
    ("account", "Account", "text", "", 6.5),
    ("name", "Name", "text", "", 9),
    ("segment", "Segment", "text", "", 7),
    ("csm", "CSM", "text", "", 7),
    ("band", "Band", "number", "", 5.5),
    ("health", "Health", "number", "num", 4.5),
    ("probability", "Churn probability", "number", "num", 7),
    ("arr", "ARR", "number", "num", 6),
    ("priority", "Priority", "number", "num", 6),
    ("renewal", "Renewal", "number", "nowrap", 7.5),
    ("drivers", "Top drivers", "text", "", 17),
    ("play", "Play", "text", "", 8.5),
    ("change", "Change", "text", "", 8.5),
)
#: Positions of an account's values in the page's JSON rows (``accounts_payload``).
FIELDS = (
    "id",
    "name",
    "segment",
    "csm",
    "band",
    "health",
    "probability",
    "arr",
    "priority",
    "renewal",
    "overdue",
    "drivers",
    "protective",
    "play",
    "change",
)
#: Fields whose values repeat across accounts: stored once in the JSON's ``text`` list.
LOOKUP = ("segment", "csm", "band", "drivers", "protective", "play", "change")
#: How ``pipelines.scoring`` marks the protective factor among an account's drivers.
PROTECTIVE = "Protective: "
#: Rows per page the reader can choose; the first page shows ``PAGE_SIZE``.
PAGE_SIZES = (25, 50, 100, 200)
PAGE_SIZE = 50


def _number(x: Any, digits: int) -> float | int | None:
    """``x`` rounded to ``digits`` decimals, an int when whole (shorter JSON); None when missing."""
    if x is None or pd.isna(x):
        return None
    value = round(float(x), digits)
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() else value


def _renewal_days(scores: pd.DataFrame, as_of: date) -> list[int | None]:
    """Days from ``as_of`` to each renewal date (its calendar day); None when there is none."""
    out: list[int | None] = []
    for value in scores["renewal_date"]:
        out.append(None if pd.isna(value) else (pd.Timestamp(value).date() - as_of).days)
    return out


def accounts_payload(scores: pd.DataFrame, as_of: date) -> dict[str, Any]:
    """The accounts as the page's script reads them: one JSON document, rows in ``scores``' order.

    ``fields`` names the positions in each row (:data:`FIELDS`). Text that repeats across
    accounts (:data:`LOOKUP`: segment, CSM, band, drivers, play, change) is stored once, in
    ``text``, and a row holds its index there; ids and names are unique, so a row holds them
    itself. Numbers are rounded to what the page shows or sorts by: probability to four
    decimals, ARR to cents, priority to units (the page's order by priority is the row
    order, so rounding cannot reorder the book). ``renewal`` is days from ``asOf``,
    ``overdue`` is 1 or 0, ``drivers`` are the risk drivers, most important first, and
    ``protective`` is the protective factor (the driver that ``pipelines.scoring`` starts
    with "Protective: ", without those words). Missing values are null.

    Size: 10,000 accounts as HTML rows and detail blocks took 20.2 MB; as this document,
    1.7 MB (benchmarks/bench_report.py's book; the ids, names and driver sentences that
    differ from account to account are most of it).
    """
    text: dict[str, int] = {}

    def ref(value: Any) -> int | None:
        s = _text(value)
        return text.setdefault(s, len(text)) if s else None

    overdue = _overdue(scores).tolist()
    rows = []
    for row, days, late in zip(
        scores.to_dict("records"), _renewal_days(scores, as_of), overdue, strict=True
    ):
        drivers = _drivers(row)
        risks = [d for d in drivers if not d.startswith(PROTECTIVE)]
        protective = next((d[len(PROTECTIVE) :] for d in drivers if d.startswith(PROTECTIVE)), None)
        values = {
            "id": _text(row["account_id"]),
            "name": _text(row.get("name")) or None,
            "segment": ref(row.get("segment")),
            "csm": ref(row.get("csm")),
            "band": ref(row["band"]),
            "health": int(row["health_score"]),
            "probability": _number(row["churn_probability"], 4),
            "arr": _number(row["arr"], 2),
            "priority": _number(row["priority"], 0),
            "renewal": days,
            "overdue": int(late),
            "drivers": [ref(d) for d in risks],
            "protective": ref(protective),
            "play": ref(row.get("play")),
            "change": ref(row.get("change")),
        }
        rows.append([values[f] for f in FIELDS])
    return {
        "asOf": f"{as_of:%Y-%m-%d}",
        "fields": list(FIELDS),
        "lookup": list(LOOKUP),
        "text": list(text),
        "rows": rows,
    }


def _options(
    values: Sequence[str], missing: str, label: Callable[[str], str] = str
) -> list[dict[str, Any]]:
    """A filter's choices: each distinct value with its count, sorted, the missing one last."""
    counts = pd.Series(values, dtype="object").value_counts(sort=False)
    present = sorted((v for v in counts.index if v), key=lambda v: (str(v).casefold(), v))
    out = [{"value": v, "label": label(v), "count": int(counts[v])} for v in present]
    if "" in counts.index:
        out.append({"value": "", "label": missing, "count": int(counts[""])})
    return out


def _filters(scores: pd.DataFrame, as_of: date, summary: PortfolioSummary) -> dict[str, Any]:
    """The choices of the filters above the table, from the whole book."""

    def column(name: str) -> list[str]:
        return [_text(v) for v in scores[name]] if name in scores else [""] * len(scores)

    months = [
        "" if d is None else f"{pd.Timestamp(as_of) + pd.Timedelta(days=d):%Y-%m}"
        for d in _renewal_days(scores, as_of)
    ]
    segments, csms = column("segment"), column("csm")
    return {
        "bands": [(str(b), int(n)) for b, n in summary.by_band["accounts"].items()],
        # A filter that could only say "all" is left out.
        "segment": _options(segments, "(no segment)") if any(segments) else [],
        "csm": _options(csms, "(no CSM)") if any(csms) else [],
        "renewal": _options(
            months, "(no renewal date)", lambda m: f"{pd.Timestamp(m + '-01'):%b %Y}"
        ),
        "overdue": summary.overdue,
        "page_sizes": PAGE_SIZES,
        "page_size": PAGE_SIZE,
    }


def script_json(value: Any) -> Markup:
    """``value`` as compact JSON that is safe inside a ``<script type="application/json">``.

    ``<``, ``>`` and ``&`` can only occur inside JSON strings, where ``\\u003c``, ``\\u003e``
    and ``\\u0026`` mean the same characters to ``JSON.parse``: with them replaced, no value
    can end the script element (``</script>``) or open a comment (``<!--``). U+2028 and
    U+2029 are escaped too, for any reader that treats the block as JavaScript.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return Markup(text)  # escaped above, for this one context


# --------------------------------------------------------------------------- waterfalls

# Decision (the report's size). At 10,000 accounts the page rendered as HTML was 22.6 MB
# (benchmarks/bench_report.py's book, with 50 waterfalls): 20.2 MB of HTML repeated per
# account (130,000 table cells and 10,000 detail blocks) and 2.4 MB of pictures (50
# matplotlib PNGs of about 35 KB, base64). So the rows became JSON (accounts_payload:
# 1.7 MB), and the pictures stay PNGs for the accounts the caller drew them for: ``churn
# score`` draws them for the ``scoring.waterfalls`` accounts of highest priority (50 by
# default), the ones that need attention first; every other account's details say how to
# get one (``churn explain``). Drawing every account's waterfall client-side as SVG would
# need each account's SHAP contributions in the scores frame (about 25 numbers each, a
# change to pipelines.scoring), so it is not done here. Each PNG is re-encoded with a
# 256-colour palette: a waterfall is a few flat colours plus anti-aliasing, so nothing
# visible changes, and it is three times smaller (2.4 MB -> 0.7 MB; 15 ms a picture). The
# pictures sit in their own JSON block, which the script reads when a detail first opens.
# The page is 2.4 MB at 10,000 accounts and 1.0 MB at 1,000.


def compact_png(png: bytes) -> bytes:
    """``png`` re-encoded with a 256-colour palette, or unchanged when that is not smaller.

    A picture with transparency is returned unchanged (the palette would drop its alpha).
    """
    with Image.open(io.BytesIO(png)) as image:
        alpha = image.getchannel("A").getextrema() if "A" in image.getbands() else (255, 255)
        transparent = "transparency" in image.info or alpha[0] != 255
        if transparent:
            return png
        rgb = image.convert("RGB")
    palette = rgb.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    out = io.BytesIO()
    palette.save(out, format="PNG")
    small = out.getvalue()
    return small if len(small) < len(png) else png


# --------------------------------------------------------------------------- page


@functools.cache
def _environment() -> jinja2.Environment:
    """The Jinja2 environment of the report's templates (built on first use, then kept)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipelines", "templates"),
        autoescape=jinja2.select_autoescape(["html"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=_money, pct=_pct, count=_count)
    return env


def _asset(name: str) -> str:
    """The text of a package file beside the templates (the script), as it is."""
    env = _environment()
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, name)
    return source


def _inline(text: str, tag: str) -> Markup:
    """``text`` for an inline ``<tag>`` element, refused if it could end that element."""
    if f"</{tag}" in text.lower() or "<!--" in text:
        raise ValueError(f"templates: the inline {tag} contains '</{tag}' or '<!--'.")
    return Markup(text)  # our own package file, checked above


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _check_inputs(
    scores: pd.DataFrame, thresholds: Mapping[str, float], waterfalls: Mapping[str, bytes]
) -> None:
    missing = [c for c in REQUIRED if c not in scores.columns]
    if missing:
        raise ValueError(
            f"scores: missing columns {missing}. render_report expects the scores columns of "
            "DATA_CONTRACT.md plus priority (ARR x probability); pass the frame churn score built."
        )
    bad = scores.loc[~scores["band"].isin(BANDS), "account_id"]
    if len(bad):
        raise ValueError(
            f"scores.band: {len(bad)} rows are not green, yellow or red (account_id "
            f"{', '.join(map(str, bad[:3]))}). Bands come from the thresholds; check the column."
        )
    if (
        not {"red", "yellow"} <= set(thresholds)
        or not 0 <= thresholds["yellow"] <= thresholds["red"] <= 1
    ):
        raise ValueError(
            f"thresholds: expected {{'red': p, 'yellow': q}} with 0 <= q <= p <= 1, got "
            f"{dict(thresholds)}."
        )
    not_png = [a for a, png in waterfalls.items() if not png.startswith(b"\x89PNG\r\n\x1a\n")]
    if not_png:
        raise ValueError(
            f"waterfalls: {len(not_png)} images are not PNG bytes (account_id "
            f"{', '.join(not_png[:3])}). Save the figure with format='png'."
        )


def render_report(
    scores: pd.DataFrame,
    *,
    as_of: date,
    model_version: str,
    thresholds: dict[str, float],
    band_quality: list[dict[str, Any]],
    backtest: dict[str, dict[str, Any]],
    evaluation: dict[str, Any],
    drift: pd.DataFrame,
    waterfalls: dict[str, bytes],
    outlook: Mapping[str, Any] | None = None,
    plays: Sequence[MeasuredPlay] = (),
) -> str:
    """The self-contained ``report.html`` page for CS ops, as a string.

    Parameters
    ----------
    scores
        One row per scored account: the scores columns of DATA_CONTRACT.md (name, segment
        and csm may be absent or empty; arr may be NaN, renewal_date NaT) plus ``priority``
        (ARR x probability), ``change`` (text, may be empty) and ``driver_list`` (the
        reasons of ``drivers``, one per item). Rows are shown by priority, highest first.
        ``overdue`` (optional, boolean) marks an account whose renewal date passed with no
        outcome recorded: an "Overdue" badge on its row and details, a filter, and a count
        in the summary.
    as_of
        The scoring date; renewals are shown as days from it.
    model_version
        The registered model version that produced the scores.
    thresholds
        ``{"red": p_red, "yellow": p_yellow}``: churn probability at or above which a band starts.
    band_quality
        One mapping per band (``band``, ``threshold``, ``share_of_accounts``, ``precision``,
        ``recall`` and their ``_low``/``_high`` bounds), from ``scoring.json``.
    backtest
        Backtest figures of the model in use, each ``{value, low, high}``; the keys of
        :data:`BACKTEST_FIGURES` are shown with their plain-language label (others are not
        shown).
    evaluation
        What the figures rest on (``kind``, ``kind_text``, ``statement``, ``skipped``,
        ``ece_by_fold``, ``interval_level``, ``band_lead_days``), from ``scoring.json``.
    drift
        Columns feature, label, psi, status (``ok``, ``watch`` or ``drift``).
    waterfalls
        account_id -> PNG bytes of its SHAP waterfall; accounts without one get no figure.
        Each PNG is embedded (re-encoded with a palette, about 16 KB each as base64), so
        pass only the accounts worth showing; pictures of accounts not in ``scores`` are
        left out.
    outlook
        Today's expected outcome and earlier runs against theirs
        (:func:`pipelines.outlook.outlook`); no section when None or empty.
    plays
        The plays measured at training (:class:`models.plays.MeasuredPlay`); no section
        when empty.

    The page needs no network: CSS and JS are inline, images are data URIs, and its
    Content-Security-Policy blocks every request. The accounts table is drawn by the page's
    script from the embedded JSON (:func:`accounts_payload`); its view is kept in the
    address's ``#`` part (``#csm=Dana+Ortiz&band=red``). Opening the page at ``#selftest``
    clicks the table headers and writes ``ok`` or the problems found to
    ``<html data-selftest>``; script errors are recorded in ``<html data-errors>``, and
    ``<html data-ready>`` is set once the table is drawn.
    """
    _check_inputs(scores, thresholds, waterfalls)
    ordered = scores.sort_values("priority", ascending=False, na_position="last", kind="stable")
    summary = portfolio_summary(ordered)
    ids = [_text(a) for a in ordered["account_id"]]
    pictures = {
        a: base64.b64encode(compact_png(waterfalls[a])).decode("ascii")
        for a in dict.fromkeys(ids)
        if a in waterfalls
    }
    css = _environment().get_template("report.css").render(columns=COLUMNS)
    script = _asset("report.js")
    csp = (
        f"default-src 'none'; img-src data:; style-src '{_sha256(css)}'; "
        f"script-src '{_sha256(script)}'; base-uri 'none'; form-action 'none'; "
        "require-trusted-types-for 'script'; trusted-types 'none'"
    )
    page = (
        _environment()
        .get_template("report.html")
        .render(
            csp=Markup(csp),  # our own words and base64 hashes: no quote, '<' or '&' to escape
            css=_inline(css, "style"),
            script=_inline(script, "script"),
            as_of=f"{as_of:%Y-%m-%d}",
            model_version=model_version,
            accounts=len(scores),
            moved=int(drift["status"].isin(["watch", "drift"]).sum()),
            summary=_summary_view(summary, thresholds),
            band_label=BAND_LABEL,
            columns=COLUMNS,
            filters=_filters(ordered, as_of, summary),
            pictures=len(pictures),
            quality=_quality_view(backtest, evaluation, thresholds, band_quality, model_version),
            drift=_drift_view(drift),
            outlook=outlook_view(outlook or {}),
            plays=plays_view(plays),
            data=script_json(accounts_payload(ordered, as_of)),
            waterfalls=script_json(pictures),
        )
    )
    return page


def write_report(html_text: str, path: Path) -> None:
    """Write the page to ``path`` atomically (through a temporary sibling, then rename)."""
    write_atomically(lambda p: p.write_text(html_text, encoding="utf-8"), path)
