"""The report's summary, quality and drift sections: the figures, in words and numbers.

:func:`portfolio_summary` computes the book's figures; the ``*_view`` functions turn them,
the backtest's figures and the drift table into plain values for the template.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipelines.report_format import count as _count
from pipelines.report_format import money as _money
from pipelines.report_format import pct as _pct
from pipelines.report_format import text as _text

BANDS = ("red", "yellow", "green")
BAND_LABEL = {"red": "Red", "yellow": "Yellow", "green": "Green"}
BAND_COLOUR = {"red": "#c53030", "yellow": "#d48806", "green": "#2f855a"}
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


def overdue_rows(scores: pd.DataFrame) -> pd.Series:
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
        overdue=int(overdue_rows(scores).sum()),
        overdue_arr=float(arr.where(overdue_rows(scores), 0.0).sum()),
    )


# --------------------------------------------------------------------------- formatting


def driver_texts(row: Mapping[Any, Any]) -> list[str]:
    """The row's reasons, most important first: ``driver_list``, else ``drivers`` split on '; '."""
    listed = row.get("driver_list")
    if isinstance(listed, list | tuple | np.ndarray):
        return [_text(d) for d in listed if _text(d)]
    return [d.strip() for d in _text(row.get("drivers")).split(";") if d.strip()]


# --------------------------------------------------------------------------- sections


def summary_view(s: PortfolioSummary, thresholds: Mapping[str, float]) -> dict[str, Any]:
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


def quality_view(
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


def drift_view(drift: pd.DataFrame) -> dict[str, Any]:
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
