"""How good is today's score before its renewals resolve, and how earlier scores did.

Today's book: from the calibrated probabilities, the expected churners and ARR lost at the
upcoming renewals, the ROC AUC the score is expected to show and the red band's expected
precision (:func:`models.cbpe.estimate_performance`; all of it assumes the probabilities
are calibrated). Earlier runs: the score history keeps each run's probability, band, ARR
and renewal date, so once the data holds the outcome of those renewals, the same estimate
over the resolved accounts is set against what happened (:func:`models.cbpe.compare`).
Written to ``outlook.json`` in the scores directory and shown in the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from models.cbpe import PerformanceEstimate, compare, estimate_performance

#: Figures of an estimate, in the order shown.
FIGURES = ("churners", "arr_lost", "auc", "red_precision")
#: Earlier runs shown against their outcomes, most recent first.
EARLIER_RUNS = 6


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _estimate(est: PerformanceEstimate) -> dict[str, Any]:
    out: dict[str, Any] = {"accounts": est.n_accounts, "red_accounts": est.n_red,
                           "arr_missing": est.n_arr_missing, "notes": list(est.notes)}  # fmt: skip
    for name in FIGURES:
        iv = getattr(est, name)
        out[name] = {"value": _finite(iv.estimate), "low": _finite(iv.low),
                     "high": _finite(iv.high), "level": iv.level}  # fmt: skip
    return out


def _inputs(rows: pd.DataFrame) -> dict[str, Any]:
    return {
        "p": rows["churn_probability"].to_numpy(float),
        "arr": rows["arr"].to_numpy(float),
        "bands": rows["band"].astype("str").to_numpy(),
    }


def expected(scores: pd.DataFrame, level: float = 0.9, seed: int = 0) -> dict[str, Any]:
    """What today's scored book is expected to show once its renewals resolve."""
    if scores.empty:
        return {}
    x = _inputs(scores)
    return _estimate(estimate_performance(x["p"], arr=x["arr"], bands=x["bands"], level=level,
                                          seed=seed))  # fmt: skip


def renewal_outcomes(contracts: pd.DataFrame) -> pd.DataFrame:
    """``account_id``, ``renewal_day`` and ``churned`` (0/1) of every decided term end; an
    account whose terms ending that day include a churn counts as churned."""
    decided = contracts.loc[contracts["outcome"].notna()]
    day = pd.to_datetime(decided["end_date"]).dt.strftime("%Y-%m-%d")
    out = pd.DataFrame({"account_id": decided["account_id"].astype("str"), "renewal_day": day,
                        "churned": (decided["outcome"] == "churned").astype("int64")})  # fmt: skip
    return out.groupby(["account_id", "renewal_day"], as_index=False).agg(
        churned=("churned", "max")
    )


def earlier_against_outcomes(
    history: pd.DataFrame | None, outcomes: pd.DataFrame, as_of: date, level: float = 0.9
) -> list[dict[str, Any]]:
    """Each earlier run's estimate over its accounts whose renewal has resolved, against
    what happened; most recent first, at most :data:`EARLIER_RUNS`."""
    needed = {"account_id", "as_of", "churn_probability", "band", "arr", "renewal_date"}
    if history is None or history.empty or not needed <= set(history.columns):
        return []
    h = history.loc[history["band"].notna() & history["renewal_date"].notna()].copy()
    h = h.loc[pd.to_datetime(h["as_of"], utc=True) < pd.Timestamp(as_of, tz="UTC")]
    if h.empty:
        return []
    h["renewal_day"] = pd.to_datetime(h["renewal_date"], utc=True).dt.strftime("%Y-%m-%d")
    h["account_id"] = h["account_id"].astype("str")
    # Only renewals that resolved before this run's as-of: a backfilled run must not read
    # outcomes from its own future.
    known = outcomes.loc[outcomes["renewal_day"] < f"{as_of:%Y-%m-%d}"]
    h = h.merge(known, on=["account_id", "renewal_day"], how="left")
    runs = []
    h["run"] = pd.to_datetime(h["as_of"], utc=True).dt.strftime("%Y-%m-%d")
    for run_as_of, rows in sorted(h.groupby("run"), key=lambda kv: str(kv[0]), reverse=True):
        resolved = rows.loc[rows["churned"].notna()]
        if len(resolved) < 2:
            continue
        x = _inputs(resolved)
        est = estimate_performance(x["p"], arr=x["arr"], bands=x["bands"], level=level)
        checks = compare(est, resolved["churned"].to_numpy(float), x["p"], arr=x["arr"],
                         bands=x["bands"])  # fmt: skip
        runs.append(
            {
                "as_of": str(run_as_of),
                "accounts": len(rows),
                "resolved": len(resolved),
                "checks": [
                    {"metric": c.metric, "estimated": _finite(c.estimated), "low": _finite(c.low),
                     "high": _finite(c.high), "realized": _finite(c.realized),
                     "within": c.within}
                    for c in checks if c.metric in FIGURES
                ],
            }
        )  # fmt: skip
        if len(runs) == EARLIER_RUNS:
            break
    return runs


def outlook(
    scores: pd.DataFrame,
    history: pd.DataFrame | None,
    contracts: pd.DataFrame | None,
    as_of: date,
    on_folds: Mapping[str, float] | None = None,
    level: float = 0.9,
) -> dict[str, Any]:
    """Today's expected figures, earlier runs against their outcomes, and how the estimator
    did on the training backtest's folds (``on_folds``, from the model's scoring context)."""
    earlier = (
        earlier_against_outcomes(history, renewal_outcomes(contracts), as_of, level)
        if contracts is not None
        else []
    )
    return {
        "as_of": f"{as_of:%Y-%m-%d}",
        "expected": expected(scores, level),
        "earlier": earlier,
        "on_folds": dict(on_folds or {}),
    }
