"""The confidence-based estimator (:mod:`models.cbpe`) replayed on the backtest's folds.

Each fold's later renewals at one lead are a book scored before its renewals resolved,
with the probabilities of a model fitted before the fold's cut-off: how well the estimate
of a book's churners, ROC AUC and red-band precision matched what happened is the record
the report quotes beside today's estimate.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from models import cbpe
from models.backtest import BacktestResult, bands_of

#: Smallest book (renewals of one fold at one lead) the estimator is replayed on: a handful
#: of renewals (the last fold's longest lead) says nothing about the estimator.
MIN_BOOK = 30


def estimates_on_folds(result: BacktestResult, level: float = 0.9) -> pd.DataFrame:
    """Confidence-based estimates (:mod:`models.cbpe`) against what happened, per fold and
    lead time: each fold's later renewals at one lead are a book scored before its renewals
    resolved, with the probabilities of a model fitted before the fold's cut-off.

    One row per (``fold``, ``lead_days``) with at least :data:`MIN_BOOK` renewals:
    ``accounts``, and for ``churners``, ``auc`` and
    ``red_precision`` the estimate, its interval (``_low``, ``_high``), the realized value
    and whether it fell inside (``_within``).
    """
    rows = []
    for (fold, lead), book in result.scores.groupby(["fold", "lead_days"], sort=True):
        if len(book) < MIN_BOOK:
            continue
        p = book["model"].to_numpy(float)
        y = book["label"].to_numpy(float)
        bands = bands_of("model", book)
        est = cbpe.estimate_performance(p, arr=book["arr"], bands=bands, level=level,
                                        draws=500, seed=0)  # fmt: skip
        checks = {c.metric: c for c in cbpe.compare(est, y, p, arr=book["arr"], bands=bands)}
        row: dict[str, Any] = {"fold": fold, "lead_days": lead, "accounts": len(book)}
        for metric in ("churners", "auc", "red_precision"):
            c = checks[metric]
            row |= {metric: c.estimated, f"{metric}_low": c.low, f"{metric}_high": c.high,
                    f"{metric}_realized": c.realized, f"{metric}_within": c.within}  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def estimate_summary(table: pd.DataFrame) -> dict[str, float]:
    """How the estimator did over the folds: mean absolute error of the expected churners
    (relative to the realized count) and of the AUC, and how often each interval held."""
    if table.empty:
        return {}
    churners = table["churners_realized"].clip(lower=1.0)
    return {
        "books": float(len(table)),
        "churners_abs_error_share": float(
            ((table["churners"] - table["churners_realized"]).abs() / churners).mean()
        ),
        "churners_within": float(table["churners_within"].mean()),
        "auc_abs_error": float((table["auc"] - table["auc_realized"]).abs().mean()),
        "auc_within": float(table["auc_within"].mean()),
    }
