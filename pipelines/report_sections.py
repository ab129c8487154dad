"""What the report's "Expected outcome" and "Plays that worked" sections show.

Both take what the scoring run already computed (:mod:`pipelines.outlook`, the plays the
model carries) and return plain values for the template; no markup here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from models.plays import MeasuredPlay
from pipelines.report_format import count, money, pct

#: Each estimated figure: its label, how it is written, and what it means.
OUTLOOK_FIGURES = {
    "churners": ("Expected churners", "count", "accounts expected to churn at these renewals"),
    "arr_lost": ("Expected ARR lost", "money", "ARR of the accounts expected to churn"),
    "auc": ("Expected ROC AUC", "ratio",
            "how well today's ranking should separate churners from renewers"),
    "red_precision": ("Red band: expected churn rate", "pct",
                      "share of today's red accounts expected to churn"),
}  # fmt: skip


def _write(x: float | None, kind: str) -> str:
    if x is None:
        return "–"
    if kind == "count":
        return f"{x:,.1f}" if x < 100 else f"{x:,.0f}"
    if kind == "money":
        return money(x)
    if kind == "pct":
        return pct(x, 1)
    return f"{x:.3f}"


def _figure(figure: Mapping[str, Any], kind: str) -> tuple[str, str]:
    value = _write(figure.get("value"), kind)
    low, high = figure.get("low"), figure.get("high")
    interval = "" if low is None or high is None else f"{_write(low, kind)} to {_write(high, kind)}"
    return value, interval


def outlook_view(outlook: Mapping[str, Any]) -> dict[str, Any] | None:
    """Cards of today's expected figures, how the estimator did on the backtest's folds,
    and earlier runs against what happened; None when nothing was estimated."""
    expected = outlook.get("expected") or {}
    if not expected:
        return None
    cards = []
    for key, (label, kind, meaning) in OUTLOOK_FIGURES.items():
        figure = expected.get(key) or {}
        value, interval = _figure(figure, kind)
        level = pct(figure.get("level", 0.9))
        note = f"{level} interval: {interval}. " if interval else ""
        cards.append({"key": key, "label": label, "value": value, "note": note + meaning})
    folds = outlook.get("on_folds") or {}
    on_folds = ""
    if folds.get("books"):
        on_folds = (
            f"Replayed on the training backtest ({count(folds['books'])} books: each fold's "
            "later renewals at one lead time, estimated from a model fitted before them), the "
            f"expected churner count was off by {pct(folds['churners_abs_error_share'])} on "
            f"average and inside its interval in {pct(folds['churners_within'])} of the books; "
            f"the expected ROC AUC was off by {folds['auc_abs_error']:.3f} on average and "
            f"inside its interval in {pct(folds['auc_within'])}."
        )
    earlier = []
    for run in outlook.get("earlier", []):
        cells = []
        for check in run["checks"]:
            kind = OUTLOOK_FIGURES[check["metric"]][1]
            value, interval = _figure(
                {"value": check["estimated"], "low": check["low"], "high": check["high"]}, kind
            )
            cells.append(
                {"estimated": value, "interval": interval,
                 "realized": _write(check["realized"], kind), "within": check["within"]}
            )  # fmt: skip
        earlier.append({"as_of": run["as_of"], "resolved": count(run["resolved"]),
                        "accounts": count(run["accounts"]), "cells": cells})  # fmt: skip
    return {
        "cards": cards,
        "accounts": count(expected.get("accounts", 0)),
        "notes": list(expected.get("notes", [])),
        "on_folds": on_folds,
        "earlier": earlier,
        "columns": [OUTLOOK_FIGURES[c["metric"]][0] for c in
                    (outlook.get("earlier") or [{"checks": []}])[0]["checks"]],
    }  # fmt: skip


def plays_view(measured: Sequence[MeasuredPlay]) -> list[dict[str, Any]]:
    """Each measured play in plain words, those that measurably lower churn first."""
    order = sorted(measured, key=lambda m: (not m.helps, m.status != "ok", m.effect or 0.0, m.key))
    return [
        {
            "key": m.key,
            "status": "helps" if m.helps else m.status,
            "line": m.lines[0] if m.lines else m.text,
            "caveat": " ".join(m.lines[1:]),
            "naive": (
                ""
                if m.naive is None
                else f"Naive comparison (all treated against all untreated): renewal odds "
                f"{-m.naive:+.1f} points."
            ),
        }
        for m in order
    ]
