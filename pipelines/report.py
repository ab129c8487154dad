"""``report.html`` for CS ops, and CSV cells a spreadsheet cannot run as formulas.

:func:`render_report` is pure: frames and figures in, one self-contained HTML string out
(inline CSS and JS, images as ``data:`` URIs, a Content-Security-Policy that forbids any
network request). :func:`write_report` is the only function here that touches the disk.

Every text that comes from the data (account ids, names, segments, CSMs, drivers, plays,
changes, feature labels) goes through :func:`_e`, which HTML-escapes it for text and
attribute positions alike; the page's one script is allowed by its hash, so even markup
that slipped through could not run.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.files import write_atomically

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


def _text(value: Any) -> str:
    """A cell as display text; missing (None, NaN, NA, NaT) is the empty string."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    return str(value)


def _e(value: Any) -> str:
    """HTML-escape a value from the data, safe in text and in double-quoted attributes."""
    return html.escape(_text(value), quote=True)


def _money(x: float) -> str:
    return "–" if pd.isna(x) else f"{x:,.0f}"


def _pct(x: float, digits: int = 0) -> str:
    return "–" if pd.isna(x) else f"{x:.{digits}%}"


def _drivers(row: Mapping[Any, Any]) -> list[str]:
    """The row's reasons, most important first: ``driver_list``, else ``drivers`` split on '; '."""
    listed = row.get("driver_list")
    if isinstance(listed, list | tuple | np.ndarray):
        return [_text(d) for d in listed if _text(d)]
    return [d.strip() for d in _text(row.get("drivers")).split(";") if d.strip()]


def _badge(band: str) -> str:
    return f'<span class="badge badge-{band}">{BAND_LABEL[band]}</span>'


def _date(value: Any) -> str:
    return "" if pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d")


#: The mark of an account whose renewal date passed with no outcome recorded.
OVERDUE_BADGE = '<span class="badge badge-overdue">Overdue</span>'


def _is_overdue(row: Mapping[Any, Any]) -> bool:
    value = row.get("overdue")
    return bool(value) if _text(value) else False


# --------------------------------------------------------------------------- sections


def _summary_section(s: PortfolioSummary, thresholds: Mapping[str, float]) -> str:
    count = {str(b): int(n) for b, n in s.by_band["accounts"].items()}
    cards = [
        (
            "Accounts scored",
            f"{s.accounts:,}",
            f"{s.unknown_arr:,} with unknown ARR" if s.unknown_arr else "all with known ARR",
        ),
        (
            "ARR at risk: red",
            _money(s.arr_red),
            f"{count['red']:,} accounts",
        ),
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
            f"{s.overdue:,}",
            f"renewal date passed, no outcome recorded: ARR {_money(s.overdue_arr)}"
            if s.overdue
            else "no renewal date passed without an outcome",
        ),
    ]
    card_html = "".join(
        f'<div class="card"><div class="card-label">{label}</div>'
        f'<div class="card-value">{value}</div><div class="card-note">{note}</div></div>'
        for label, value, note in cards
    )
    band_rows = "".join(
        f"<tr><td>{_badge(str(b))}</td><td class=num>{int(r.accounts):,}</td>"
        f"<td class=num>{_money(r.arr)}</td>"
        f"<td class=num>{_money(r.expected_churned_arr)}</td></tr>"
        for b, r in s.by_band.iterrows()
    )
    red, yellow = thresholds["red"], thresholds["yellow"]
    bands_note = (
        f"Red: churn probability {_pct(red)} or more · Yellow: {_pct(yellow)} to {_pct(red)} · "
        f"Green: below {_pct(yellow)}."
    )
    segments = ""
    if s.by_segment is not None:
        rows = "".join(
            f"<tr><td>{_e(seg)}</td><td class=num>{int(r.accounts):,}</td>"
            f"<td class=num>{_money(r.arr)}</td><td class=num>{_money(r.red_arr)}</td>"
            f"<td class=num>{_money(r.red_yellow_arr)}</td>"
            f"<td class=num>{_money(r.expected_churned_arr)}</td></tr>"
            for seg, r in s.by_segment.iterrows()
        )
        segments = (
            "<h3>By segment</h3><table class=compact><thead><tr><th>Segment</th>"
            "<th class=num>Accounts</th><th class=num>ARR</th><th class=num>Red ARR</th>"
            "<th class=num>Red + yellow ARR</th><th class=num>Expected churned ARR</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>"
        )
    return (
        '<section id="summary"><h2>Portfolio summary</h2>'
        f'<div class="cards">{card_html}</div>'
        '<div class="two-col"><div><h3>Accounts by band</h3><table class=compact><thead><tr>'
        "<th>Band</th><th class=num>Accounts</th><th class=num>ARR</th>"
        "<th class=num>Expected churned ARR</th></tr></thead>"
        f'<tbody>{band_rows}</tbody></table><p class="note">{bands_note}</p></div>'
        f"<div><h3>ARR by band</h3>{_arr_chart(s.by_band)}</div></div>"
        f"{segments}</section>"
    )


def _arr_chart(by_band: pd.DataFrame) -> str:
    """A horizontal bar chart of ARR by band as inline SVG (labels are fixed text, not data)."""
    width, label_w, value_w, bar_h, gap = 460, 70, 110, 26, 12
    top = float(by_band["arr"].max()) or 1.0
    bars = []
    for i, (band, r) in enumerate(by_band.iterrows()):
        y = i * (bar_h + gap)
        w = max(0.0, (width - label_w - value_w) * float(r.arr) / top)
        baseline = y + bar_h * 0.68
        bars.append(
            f'<text x="0" y="{baseline:.0f}" class="svg-label">{BAND_LABEL[str(band)]}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="3" '
            f'fill="{BAND_COLOUR[str(band)]}"/>'
            f'<text x="{label_w + w + 8:.1f}" y="{baseline:.0f}" class="svg-value">'
            f"{_money(float(r.arr))}</text>"
        )
    height = len(by_band) * (bar_h + gap) - gap
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="ARR by band">{"".join(bars)}</svg>'
    )


#: Columns of the accounts table: key (used by the self-test), header, sort type, CSS class
#: and share of the table's width (fixed layout, so the table fits the window it is given).
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


def _number(x: Any, fmt: str = ".6f") -> str:
    """A sort value: the number, or '' for missing (the table sorts those last)."""
    return "" if pd.isna(x) else format(x, fmt)


def _account_cells(i: int, row: Mapping[Any, Any], as_of: date) -> list[tuple[str, str | None]]:
    """(HTML content, sort value or None to sort by the text) of one row, in COLUMNS order."""
    band, p, renewal = str(row["band"]), float(row["churn_probability"]), row["renewal_date"]
    days = "" if pd.isna(renewal) else str((pd.Timestamp(renewal).date() - as_of).days)
    when = f"in {days} d"
    if _is_overdue(row):
        when = f"{OVERDUE_BADGE} {-int(days)} d ago" if days else OVERDUE_BADGE
    drivers = _drivers(row)
    listed = "".join(f"<li>{_e(d)}</li>" for d in drivers[:2])
    more = f'<li class="muted">+{len(drivers) - 2} more</li>' if len(drivers) > 2 else ""
    return [
        (f'<a href="#acct-{i}">{_e(row["account_id"])}</a>', None),
        (_e(row.get("name")), None),
        (_e(row.get("segment")), None),
        (_e(row.get("csm")), None),
        (_badge(band), str(BANDS[::-1].index(band))),  # green 0, yellow 1, red 2
        (str(int(row["health_score"])), str(int(row["health_score"]))),
        (_pct(p), _number(p)),
        (_money(row["arr"]), _number(row["arr"])),
        (_money(row["priority"]), _number(row["priority"])),
        (f"{_date(renewal)}<br><span class=muted>{when}</span>" if days else "", days),
        (f"<ul>{listed}{more}</ul>" if drivers else "", drivers[0] if drivers else ""),
        (_e(row.get("play")), None),
        (_e(row.get("change")), None),
    ]


def _td(content: str, sort_value: str | None, cls: str) -> str:
    sort = "" if sort_value is None else f' data-sort-value="{_e(sort_value)}"'
    return f'<td class="{cls}"{sort}>{content}</td>'


def _accounts_table(scores: pd.DataFrame, as_of: date) -> str:
    head = "".join(
        f'<th scope="col" data-key="{key}" data-sort-type="{kind}" class="{cls}"'
        f"{' aria-sort=descending' if key == 'priority' else ''}>"
        f'<button type="button">{label}</button></th>'
        for key, label, kind, cls, _ in COLUMNS
    )
    cols = "<colgroup>" + "".join(f'<col style="width:{w}%">' for *_, w in COLUMNS) + "</colgroup>"
    rows = []
    for i, row in enumerate(scores.to_dict("records")):
        cells = "".join(
            _td(content, value, cls)
            for (content, value), (_, _, _, cls, _) in zip(
                _account_cells(i, row, as_of), COLUMNS, strict=True
            )
        )
        rows.append(f'<tr data-account-id="{_e(row["account_id"])}">{cells}</tr>')
    return (
        '<section id="accounts"><h2>Accounts by priority</h2>'
        '<p class="note">Ordered by priority: ARR at stake × churn probability. Change: what '
        "moved since the last scoring run. Overdue: the renewal date passed with no outcome "
        "recorded. Click a column "
        "header to sort by it; click again to reverse. Click an account for its details.</p>"
        '<div class="table-wrap"><table id="accounts-table" class="sortable">'
        f"{cols}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _details(scores: pd.DataFrame, as_of: date, waterfalls: Mapping[str, bytes]) -> str:
    parts = []
    for i, row in enumerate(scores.to_dict("records")):
        account = _text(row["account_id"])
        who = " · ".join(_e(row.get(c)) for c in ("segment", "csm") if _text(row.get(c)))
        drivers = "".join(f"<li>{_e(d)}</li>" for d in _drivers(row)) or "<li>None recorded.</li>"
        change = _e(row.get("change")) or "Nothing recorded: a first run, or no driver moved."
        renewal = _date(row["renewal_date"])
        due = " · renews " + renewal if renewal else ""
        mark = ""
        if _is_overdue(row):
            mark = f" {OVERDUE_BADGE}"
            due = f" · renewal overdue since {renewal}" if renewal else " · renewal overdue"
        figure = '<p class="note">No SHAP waterfall was drawn for this account.</p>'
        if account in waterfalls:
            data = base64.b64encode(waterfalls[account]).decode("ascii")
            figure = (
                f'<figure><img src="data:image/png;base64,{data}" '
                f'alt="SHAP waterfall of account {_e(account)}">'
                "<figcaption>How each feature moved this account's churn score away from the "
                "average account (SHAP waterfall).</figcaption></figure>"
            )
        parts.append(
            f'<details id="acct-{i}" class="account"><summary>{_badge(str(row["band"]))}{mark} '
            f"<strong>{_e(row.get('name')) or _e(account)}</strong> "
            f'<span class="muted">{_e(account)}{" · " + who if who else ""}</span>'
            f'<span class="facts">{_pct(float(row["churn_probability"]))} churn · '
            f"health {int(row['health_score'])} · ARR {_money(row['arr'])}"
            f"{due}</span></summary>"
            '<div class="account-body"><div>'
            "<h4>Drivers <span class=muted>(associations the model found, not proven causes)"
            f"</span></h4><ol>{drivers}</ol>"
            f"<h4>Recommended play</h4><p>{_e(row.get('play')) or 'None.'}</p>"
            f"<h4>Change since the last scoring run</h4><p>{change}</p>"
            '<p><a href="#accounts">Back to the table</a></p>'
            f"</div>{figure}</div></details>"
        )
    return (
        '<section id="details"><h2>Account details</h2>'
        f'<p class="note">Scored as of {as_of:%Y-%m-%d}. Open an account for its drivers, play '
        f"and SHAP waterfall.</p>{''.join(parts)}</section>"
    )


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


def _quality_section(
    backtest: Mapping[str, Mapping[str, Any]],
    evaluation: Mapping[str, Any],
    thresholds: Mapping[str, float],
    band_quality: Sequence[Mapping[str, Any]],
    model_version: str,
) -> str:
    level = _pct(float(evaluation.get("interval_level", 0.95)))
    items = []
    for key, (label, kind, meaning) in BACKTEST_FIGURES.items():
        if key not in backtest:
            continue
        value, interval = _figure_text(backtest[key], kind)
        note = f"{level} interval: {interval}. " if interval else ""
        items.append(
            f'<div class="card" data-figure="{key}"><div class="card-label">{_e(label)}</div>'
            f'<div class="card-value">{value}</div><div class="card-note">{_e(note)}'
            f"{_e(meaning)}</div></div>"
        )
    order = {b: i for i, b in enumerate(BANDS)}
    rows = []
    for r in sorted(band_quality, key=lambda r: order.get(str(r["band"]), len(order))):
        band = _text(r["band"])
        cells = []
        for name in ("precision", "recall"):
            value, interval = _figure_text(
                {"value": r.get(name), "low": r.get(f"{name}_low"), "high": r.get(f"{name}_high")},
                "pct",
            )
            cells.append(f"{value}<br><span class=muted>{interval}</span>" if interval else value)
        start = "below yellow" if band == "green" else _pct(r["threshold"], 1)
        rows.append(
            f"<tr><td>{_badge(band) if band in BANDS else _e(band)}</td><td class=num>{start}</td>"
            f"<td class=num>{_pct(r.get('share_of_accounts', np.nan), 1)}</td>"
            f"<td class=num>{cells[0]}</td><td class=num>{cells[1]}</td></tr>"
        )
    skipped = "".join(
        f"<li>{_e(s['cutoff'])}: {_e(s['reason'])}</li>" for s in evaluation.get("skipped", [])
    )
    skipped_html = (
        f'<p class="note">Cut-offs skipped, too few outcomes to check on:</p><ul class="note">'
        f"{skipped}</ul>"
        if skipped
        else ""
    )
    ece_rows = "".join(
        f"<tr><td>{_e(f['fold'])}</td><td class=num>{int(f['rows']):,}</td>"
        f"<td class=num>{_pct(f['ece'], 1)}</td></tr>"
        for f in evaluation.get("ece_by_fold", [])
    )
    lead = int(evaluation.get("band_lead_days", 90))
    return (
        '<section id="quality"><h2>How good is this score</h2>'
        f'<p class="note">Model version <strong>{_e(model_version)}</strong>, checked '
        f"<strong>{_e(evaluation.get('kind_text', ''))}</strong>. Every figure comes from "
        "models that never saw the snapshots they were checked on, each tuned, calibrated and "
        "banded on its own training rows alone; features use only data from before each "
        f'snapshot.</p><p data-evaluation="{_e(evaluation.get("kind", ""))}">'
        f"{_e(evaluation.get('statement', ''))}</p>{skipped_html}"
        f'<div class="cards">{"".join(items)}</div>'
        "<h3>Bands</h3><table class=compact><thead><tr><th>Band</th>"
        "<th class=num>Starts at churn probability</th><th class=num>Share of accounts</th>"
        "<th class=num>Churned (precision)</th><th class=num>Share of all churners (recall)"
        f"</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f'<p class="note">Precision: of the accounts in the band {lead} days before renewal, '
        "the share that churned. Recall: of the accounts that churned, the share that were in "
        "the band. Measured in the backtest with each fold's own thresholds, chosen from its "
        f"own past; {level} intervals below each figure. In use now: red from "
        f"{_pct(thresholds['red'], 1)}, yellow from {_pct(thresholds['yellow'], 1)}.</p>"
        "<h3>Calibration by fold</h3><table class=compact><thead><tr><th>Fold</th>"
        "<th class=num>Snapshots</th><th class=num>Expected calibration error</th></tr>"
        f"</thead><tbody>{ece_rows}</tbody></table>"
        '<p class="note">Expected calibration error: the average gap between predicted '
        "churn probability and the observed churn rate, in ten equal-sized groups.</p>"
        "</section>"
    )


def _drift_section(drift: pd.DataFrame) -> str:
    moved = drift[drift["status"].isin(["watch", "drift"])].sort_values("psi", ascending=False)
    checked = f"{len(drift):,} feature{'s' if len(drift) != 1 else ''} checked against training"
    if moved.empty:
        body = (
            f'<p class="ok-note"><strong>No drift.</strong> {checked}; '
            "none has a PSI above 0.1.</p>"
        )
    else:
        rows = "".join(
            f'<tr><td>{_e(r["label"])} <span class="muted">{_e(r["feature"])}</span></td>'
            f'<td class=num>{r["psi"]:.3f}</td><td><span class="badge badge-'
            f'{"red" if r["status"] == "drift" else "yellow"}">{_e(r["status"]).capitalize()}'
            "</span></td></tr>"
            for r in moved.to_dict("records")
        )
        body = (
            f'<p class="note">{checked}; {len(moved):,} moved. The scores of accounts that '
            "depend on these features are less certain until the model is retrained.</p>"
            "<table class=compact><thead><tr><th>Feature</th><th class=num>PSI</th>"
            f"<th>Status</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    return (
        '<section id="drift"><h2>Drift warnings</h2><p class="note">Population stability index '
        "(PSI) of each feature today against the training data: above 0.1 is worth watching, "
        f"above 0.25 is drift.</p>{body}</section>"
    )


# --------------------------------------------------------------------------- page


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
        outcome recorded: an "Overdue" badge on its row and card, and a count in the summary.
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
        Each PNG is embedded, so pass only the accounts worth showing.

    The page needs no network: CSS and JS are inline, images are data URIs, and its
    Content-Security-Policy blocks every request. Opening it at ``#selftest`` clicks the
    table headers and writes ``ok`` or the problems found to ``<html data-selftest>``;
    script errors are recorded in ``<html data-errors>``.
    """
    _check_inputs(scores, thresholds, waterfalls)
    ordered = scores.sort_values("priority", ascending=False, na_position="last", kind="stable")
    summary = portfolio_summary(ordered)
    moved = int(drift["status"].isin(["watch", "drift"]).sum())
    banner = (
        f'<p class="banner"><strong>{moved} feature{"s" if moved != 1 else ""} drifted</strong> '
        'since training: see <a href="#drift">drift warnings</a>.</p>'
        if moved
        else ""
    )
    body = (
        '<header><div><h1>Customer health report</h1><p class="sub">'
        f"Scores as of <strong>{as_of:%Y-%m-%d}</strong> · model version "
        f"<strong>{_e(model_version)}</strong> · {len(scores):,} accounts</p></div>"
        '<nav><a href="#summary">Summary</a><a href="#accounts">Accounts</a>'
        '<a href="#quality">How good is this score</a><a href="#drift">Drift</a>'
        f'<a href="#details">Details</a></nav></header><main>{banner}'
        f"{_summary_section(summary, thresholds)}{_accounts_table(ordered, as_of)}"
        f"{_quality_section(backtest, evaluation, thresholds, band_quality, model_version)}"
        f"{_drift_section(drift)}{_details(ordered, as_of, waterfalls)}</main>"
        "<footer>Churn probabilities are calibrated on past renewals; drivers are associations, "
        "not proven causes. Generated by churn-health.</footer>"
    )
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    csp = (
        f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Customer health report {as_of:%Y-%m-%d}</title>"
        f"<style>{_CSS}</style><script>{_SCRIPT}</script></head><body>{body}</body></html>\n"
    )


def write_report(html_text: str, path: Path) -> None:
    """Write the page to ``path`` atomically (through a temporary sibling, then rename)."""
    write_atomically(lambda p: p.write_text(html_text, encoding="utf-8"), path)


_CSS = "\n".join(
    [
        ":root{--bg:#f5f6f8;--card:#fff;--ink:#1f2933;--muted:#616e7c;--line:#e1e5ea;"
        "--accent:#2c5282;font-family:system-ui,-apple-system,'Segoe UI',Roboto,"
        "'Helvetica Neue',Arial,'Noto Sans','Liberation Sans',sans-serif;color:var(--ink);"
        "background:var(--bg);line-height:1.45;font-size:15px}",
        "body{margin:0}",
        "header{background:#1f2933;color:#fff;padding:18px 32px;display:flex;"
        "justify-content:space-between;align-items:flex-end;flex-wrap:wrap;gap:12px}",
        "h1{margin:0;font-size:24px;font-weight:650}",
        ".sub{margin:4px 0 0;color:#cbd2d9}",
        "nav a{color:#e4e7eb;margin-left:18px;text-decoration:none;font-size:14px}",
        "nav a:hover{color:#fff;text-decoration:underline}",
        "main{padding:8px 24px 32px;max-width:1600px}",
        "section{background:var(--card);border:1px solid var(--line);border-radius:8px;"
        "padding:16px 18px;margin-top:20px}",
        "h2{margin:0 0 8px;font-size:19px}",
        "h3{margin:16px 0 8px;font-size:15px;color:var(--muted);text-transform:uppercase;"
        "letter-spacing:.04em}",
        "h4{margin:12px 0 4px;font-size:14px}",
        ".note{color:var(--muted);font-size:13.5px;margin:4px 0 8px}",
        ".muted{color:var(--muted);font-weight:normal}",
        ".cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(210px,1fr));gap:12px;"
        "margin:12px 0}",
        ".card{border:1px solid var(--line);border-radius:8px;padding:12px 14px;"
        "background:#fafbfc}",
        ".card-label{font-size:13px;color:var(--muted)}",
        ".card-value{font-size:24px;font-weight:650;font-variant-numeric:tabular-nums}",
        ".card-note{font-size:12.5px;color:var(--muted)}",
        ".two-col{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:32px}",
        "table{border-collapse:collapse;font-size:13.5px}",
        "table.compact{min-width:420px}",
        "th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;"
        "vertical-align:top}",
        "th{font-size:12.5px;color:var(--muted);font-weight:600;background:#f8f9fb}",
        ".num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}",
        ".nowrap{white-space:nowrap}",
        ".table-wrap{overflow:auto;max-height:80vh;border:1px solid var(--line);border-radius:6px}",
        "#accounts-table{width:100%;min-width:1100px;table-layout:fixed;font-size:13px}",
        "#accounts-table td{overflow-wrap:anywhere}#accounts-table td.nowrap{overflow-wrap:normal}",
        "#accounts-table th,#accounts-table td{padding:6px 7px}",
        "#accounts-table thead th{position:sticky;top:0;z-index:1}",
        "#accounts-table th{white-space:normal;vertical-align:bottom}",
        "#accounts-table ul{margin:0;padding-left:16px}",
        "#accounts-table tbody tr:nth-child(even){background:#fafbfc}",
        "#accounts-table tbody tr:hover{background:#eef4fb}",
        "th button{all:unset;cursor:pointer}th button:hover{text-decoration:underline}",
        "th button:focus-visible{outline:2px solid var(--accent)}",
        "th[aria-sort=ascending] button::after{content:'\\a0\\25B2'}",
        "th[aria-sort=descending] button::after{content:'\\a0\\25BC'}",
        "a{color:var(--accent)}",
        ".badge{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12px;"
        "font-weight:650;border:1px solid;white-space:nowrap}",
        ".badge-red{background:#fde8e8;color:#9b1c1c;border-color:#f5b5b5}",
        ".badge-yellow{background:#fef3c7;color:#8a4b08;border-color:#f6d58a}",
        ".badge-green{background:#def7ec;color:#03543f;border-color:#a7e3c6}",
        ".badge-overdue{background:#3d1f1f;color:#fff;border-color:#3d1f1f}",
        ".chart{max-width:100%;height:auto}",
        ".svg-label{font-size:13px;fill:var(--ink)}",
        ".svg-value{font-size:13px;fill:var(--muted);font-variant-numeric:tabular-nums}",
        ".banner{background:#fff8e1;border:1px solid #f6d58a;border-radius:8px;padding:10px 16px;"
        "margin:20px 0 0}",
        ".ok-note{background:#f0faf4;border:1px solid #a7e3c6;border-radius:6px;padding:8px 12px}",
        "details.account{border-top:1px solid var(--line);padding:8px 0}",
        "details.account>summary{cursor:pointer;display:flex;gap:10px;align-items:baseline;"
        "flex-wrap:wrap}",
        ".facts{margin-left:auto;color:var(--muted);font-size:13px}",
        "details.account:target{background:#eef4fb}",
        ".account-body{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:24px;"
        "padding:4px 8px 8px 24px}",
        ".account-body ol{margin:0;padding-left:20px}",
        "figure{margin:8px 0}figure img{max-width:100%;border:1px solid var(--line);"
        "border-radius:6px}",
        "figcaption{font-size:12.5px;color:var(--muted)}",
        "footer{color:var(--muted);font-size:12.5px;padding:0 32px 24px}",
        "@media (max-width:900px){.two-col,.account-body{grid-template-columns:1fr}}",
    ]
)

# One script, allowed by its hash in the page's CSP. It records errors first, so that a
# failure anywhere later on the page lands in <html data-errors> for the browser test.
_SCRIPT = """
(function () {
  "use strict";
  var root = document.documentElement, errors = [];
  function record(message) {
    errors.push(String(message));
    root.setAttribute("data-errors", JSON.stringify(errors));
  }
  window.addEventListener("error", function (e) {
    record(e.message ? e.message + " (line " + e.lineno + ")"
                     : "failed to load " + (e.target && (e.target.src || e.target.href)));
  }, true);
  window.addEventListener("unhandledrejection", function (e) { record("rejected: " + e.reason); });
  document.addEventListener("securitypolicyviolation", function (e) {
    record("blocked by the page's policy: " + e.violatedDirective + " " + e.blockedURI);
  });

  function sortValue(row, col) {
    var cell = row.cells[col];
    return cell.hasAttribute("data-sort-value") ? cell.getAttribute("data-sort-value")
                                                : cell.textContent.trim();
  }
  function compare(x, y, numeric) {
    return numeric ? Number(x) - Number(y)
                   : x.localeCompare(y, undefined, {numeric: true, sensitivity: "base"});
  }
  function sortBy(th) {
    var table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
    var numeric = th.getAttribute("data-sort-type") === "number";
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    var sign = dir === "ascending" ? 1 : -1;
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = sortValue(a, col), y = sortValue(b, col);
      if (x === "" || y === "") { return (x === "") - (y === ""); }  // missing: last, both ways
      return sign * compare(x, y, numeric);
    });
    rows.forEach(function (r) { body.appendChild(r); });
    table.querySelectorAll("th[aria-sort]").forEach(function (h) {
      h.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", dir);
  }
  function openTarget() {
    var el = location.hash.length > 1 && document.getElementById(location.hash.slice(1));
    if (el && el.tagName === "DETAILS") { el.open = true; }
  }

  function selftest() {
    var table = document.getElementById("accounts-table"), problems = [];
    function th(key) { return table.querySelector('th[data-key="' + key + '"]'); }
    function check(key, dir, what) {
      var h = th(key), numeric = h.getAttribute("data-sort-type") === "number";
      var values = Array.prototype.map.call(table.tBodies[0].rows,
                                            function (r) { return sortValue(r, h.cellIndex); });
      var known = values.filter(function (v) { return v !== ""; });
      if (values.slice(0, known.length).indexOf("") !== -1) {
        problems.push(what + ": missing values not last");
      }
      for (var i = 1; i < known.length; i++) {
        if (dir * compare(known[i - 1], known[i], numeric) > 0) {
          problems.push(what + ": " + known[i - 1] + " before " + known[i]);
          return;
        }
      }
      if (known.length < 2) { problems.push(what + ": fewer than two values to compare"); }
    }
    function click(key) { th(key).querySelector("button").click(); }
    check("priority", -1, "default order by priority, descending");
    click("probability"); check("probability", 1, "churn probability, first click");
    click("probability"); check("probability", -1, "churn probability, second click");
    click("name"); check("name", 1, "name, first click");
    click("arr"); click("arr"); check("arr", -1, "ARR, second click");
    click("renewal"); check("renewal", 1, "renewal, first click");
    root.setAttribute("data-selftest", problems.length ? problems.join("; ") : "ok");
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.sortable th[data-sort-type] button").forEach(function (b) {
      b.addEventListener("click", function () { sortBy(b.closest("th")); });
    });
    window.addEventListener("hashchange", openTarget);
    openTarget();
    if (location.hash === "#selftest") {
      try { selftest(); } catch (e) {
        record("selftest: " + e);
        root.setAttribute("data-selftest", "error");
      }
    }
  });
})();
"""
