"""What scoring needs besides the trees, computed once at training time (``scoring.json``).

Besides the healthy-peer references, the band thresholds and the drift baseline, it holds
what the report says about how good the score is: the kind of check (out of time, or
held-out accounts), the history it rests on, the folds used and skipped, and the backtest's
figures with their intervals. Every figure under ``backtest`` has a plain-language label in
:data:`pipelines.report.BACKTEST_FIGURES`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.training import TrainingSet
from models.backtest import BacktestResult
from models.config import ModelConfig
from models.drift import baseline
from models.explain import references
from models.fold_estimates import estimate_summary, estimates_on_folds
from models.folds import KIND_TEXT, count_outcomes, outcome_ids
from models.procedure import Trained

CONTEXT_FILE = "scoring.json"
DRIFT_FEATURES = 12
#: Backtest figures shown on the report's cards: key -> (scorer, pooled metric).
FIGURES = {
    "roc_auc": ("model", "roc_auc"),
    "hand_weighted_roc_auc": ("health_score", "roc_auc"),
    "logistic_roc_auc": ("logistic", "roc_auc"),
    "lift_top_decile": ("model", "lift_top_decile"),
    "red_precision": ("model", "red_precision"),
    "red_recall": ("model", "red_recall"),
    "green_churn_rate": ("model", "green_churn_rate"),
    "watermelon_rate": ("model", "watermelon_rate"),
}


def _figure(result: BacktestResult, scorer: str, metric: str) -> dict[str, float | None]:
    iv = result.interval(scorer, metric)

    def plain(x: float) -> float | None:
        return float(x) if np.isfinite(x) else None

    return {"value": plain(iv.estimate), "low": plain(iv.low), "high": plain(iv.high)}


def evaluation_summary(result: BacktestResult, frame: pd.DataFrame, mc: ModelConfig) -> dict:
    """What the backtest rests on, in numbers and in one plain paragraph."""
    labelled = frame.loc[frame["label"].notna()].reset_index(drop=True)
    counts = count_outcomes(labelled, np.ones(len(labelled), bool), outcome_ids(labelled))
    first, last = labelled["label_known_at"].min(), labelled["label_known_at"].max()
    months = max(1, round((last - first).days / 30.44))
    scored = result.scores
    auc = result.interval("model", "roc_auc")
    per_fold = result.pooled(per_fold=True)
    per_fold = per_fold[per_fold.scorer == "model"]
    ece = [
        {"fold": str(r["fold"]), "rows": int(r["rows"]), "ece": float(r["ece"])}
        for r in per_fold.to_dict("records")
    ]
    kind = result.kind
    folds = (
        f"{len(result.plan.folds)} out-of-time fold{'s' if len(result.plan.folds) > 1 else ''}"
        if kind == "out_of_time"
        else f"{len(result.plan.folds)} folds of held-out accounts (not out of time: the "
        "history is too short for any out-of-time fold that holds enough churned and "
        f"retained outcomes, {mc.min_churned} and {mc.min_retained})"
    )
    width = auc.high - auc.low if np.isfinite(auc.high) else float("nan")
    statement = (
        f"This check rests on {counts.churned + counts.retained:,} labelled outcomes "
        f"({counts.churned:,} churned) decided between {first:%Y-%m-%d} and {last:%Y-%m-%d} "
        f"({months} month{'s' if months > 1 else ''} of outcomes), scored in {folds}; "
        f"{len(scored):,} snapshots of {scored['account_id'].nunique():,} accounts were "
        "scored by models that never saw them. "
    )
    skipped = len(result.plan.skipped)
    if skipped:
        were = "s were" if skipped > 1 else " was"
        statement += f"{skipped} cut-off{were} skipped for lack of outcomes. "
    if np.isfinite(width):
        statement += f"ROC AUC {auc.text()}: the {auc.level:.0%} interval is {width:.2f} wide" + (
            ", so treat every figure below as a rough guide." if width > 0.1 else "."
        )
    return {
        "kind": kind,
        "kind_text": KIND_TEXT[kind],
        "folds_used": [str(n) for n in result.folds["fold"]],
        "skipped": [{"cutoff": s.name, "reason": s.reason} for s in result.plan.skipped],
        "outcomes": counts.churned + counts.retained,
        "churned_outcomes": counts.churned,
        "first_outcome": f"{first:%Y-%m-%d}",
        "last_outcome": f"{last:%Y-%m-%d}",
        "months_of_outcomes": months,
        "scored_rows": len(scored),
        "scored_accounts": int(scored["account_id"].nunique()),
        "interval_level": mc.interval_level,
        "band_lead_days": mc.band_lead_days,
        "ece_by_fold": ece,
        "statement": statement,
    }


def band_quality(result: BacktestResult, thresholds: tuple[float, float]) -> list[dict]:
    """Per band: the threshold in use, and the share of accounts, churn rate and share of
    churners the backtest's bands (each fold's own thresholds) had, with intervals."""
    yellow, red = thresholds
    summary = result.summary("model")
    starts = {"red": red, "yellow": yellow, "green": 0.0}
    out = []
    for band in ("red", "yellow", "green"):
        precision = "green_churn_rate" if band == "green" else f"{band}_precision"
        recall = "watermelon_rate" if band == "green" else f"{band}_recall"
        row: dict[str, Any] = {"band": band, "threshold": starts[band]}
        row["share_of_accounts"] = summary.get(f"{band}_share", float("nan"))
        for name, metric in (("precision", precision), ("recall", recall)):
            figure = _figure(result, "model", metric)
            row[name] = figure["value"]
            row[f"{name}_low"], row[f"{name}_high"] = figure["low"], figure["high"]
        out.append(row)
    return out


def scoring_context(
    ts: TrainingSet,
    trained: Trained,
    result: BacktestResult,
    mc: ModelConfig,
    per_segment: dict[str, tuple[float, float]] | None = None,
    expected_on_folds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """What scoring needs besides the trees, computed once at training time.

    - ``references``: medians of healthy (renewed) accounts per segment, for the drivers;
    - ``thresholds``: the band thresholds the training procedure chose on all history;
    - ``band_quality``: per band, how the backtest's bands did (each fold's own thresholds
      on its later rows), with intervals;
    - ``backtest``: the figures of :data:`FIGURES`, each ``{value, low, high}``;
    - ``evaluation``: what the figures rest on (:func:`evaluation_summary`);
    - ``drift_baseline``: decile bins of the most important numeric features.
    """
    frame = ts.frame
    model = trained.model
    healthy = frame["label"].fillna(1).astype(int) == 0
    refs = references(frame, ts.features, healthy)
    yellow, red = trained.thresholds
    figures = {
        key: _figure(result, scorer, metric)
        for key, (scorer, metric) in FIGURES.items()
        if scorer in result.scores.columns
    }
    gains = dict(
        zip(
            model.booster_.feature_name(),
            model.booster_.feature_importance("gain", iteration=model.n_estimators_),
            strict=True,
        )
    )
    numeric = [f.name for f in ts.features if not f.categorical]
    main = sorted(numeric, key=lambda n: -gains.get(n, 0.0))[:DRIFT_FEATURES]
    return {
        "references": refs,
        "thresholds": {"yellow": yellow, "red": red},
        "band_quality": band_quality(result, trained.thresholds),
        "per_segment": {k: list(v) for k, v in (per_segment or {}).items()},
        "backtest": figures,
        "evaluation": evaluation_summary(result, frame, mc),
        "calibration": {
            "method": model.calibration_,
            "kind": model.calibration_kind_,
            "note": model.calibration_note_,
        },
        "drift_baseline": baseline(frame, main),
        # How the confidence-based estimate of a book's outcome did on the folds (as
        # logged with the backtest; computed here when not given).
        "expected_on_folds": (
            expected_on_folds
            if expected_on_folds is not None
            else estimate_summary(estimates_on_folds(result, mc.interval_level))
        ),
    }
