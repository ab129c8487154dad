"""What scoring needs besides the trees, computed once at training time (``scoring.json``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from features.training import TrainingSet
from models.bands import BandConfig, assign_bands, choose_thresholds, threshold_quality
from models.drift import baseline
from models.explain import references
from models.metrics import roc_auc, watermelon_rate
from models.train import ChurnModel

CONTEXT_FILE = "scoring.json"
DRIFT_FEATURES = 12


def scoring_context(
    ts: TrainingSet,
    model: ChurnModel,
    backtest_scores: pd.DataFrame,
    bands: BandConfig,
    hand_weighted_auc: float | None = None,
    band_lead_days: int = 90,
) -> dict[str, Any]:
    """What scoring needs besides the trees, computed once at training time.

    - ``references``: medians of healthy (renewed) accounts per segment, for the drivers;
    - ``thresholds``: band thresholds chosen on the out-of-time backtest rows (or the fixed
      ones of the config), with the precision and recall they give;
    - ``backtest``: how often green accounts churned, how many churners were red
      ``band_lead_days`` before renewal, the watermelon rate, ROC AUC vs hand-weighted;
    - ``drift_baseline``: decile bins of the most important numeric features.
    """
    frame = ts.frame
    healthy = frame["label"].fillna(1).astype(int) == 0
    refs = references(frame, ts.features, healthy)
    bt = backtest_scores.dropna(subset=["label", "model"])
    p, y = bt["model"].to_numpy(float), bt["label"].to_numpy(int)
    if bands.red is not None and bands.yellow is not None:
        yellow, red = bands.yellow, bands.red
    else:
        yellow, red = choose_thresholds(p, y, bands.red_precision, bands.yellow_recall)
    quality = threshold_quality(p, y, yellow, red)
    at_lead = bt[bt["lead_days"] == band_lead_days] if "lead_days" in bt else bt.iloc[:0]
    if at_lead.empty:
        at_lead = bt
    lead_band = assign_bands(at_lead["model"].to_numpy(float), None, (yellow, red))
    lead_y = at_lead["label"].to_numpy(int)
    green = lead_band == "green"
    summary = {
        "roc_auc": roc_auc(y, p),
        "green_churn_rate": float(lead_y[green].mean()) if green.any() else float("nan"),
        "red_recall": float((lead_y & (lead_band == "red")).sum() / max(lead_y.sum(), 1)),
        "watermelon_rate": watermelon_rate(lead_y, lead_band),
        "band_lead_days": band_lead_days,
        "rows": len(bt),
    }
    if hand_weighted_auc is not None:
        summary["hand_weighted_roc_auc"] = float(hand_weighted_auc)
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
        "threshold_quality": quality.to_dict("records"),
        "per_segment": {k: list(v) for k, v in bands.per_segment.items()},
        "backtest": summary,
        "drift_baseline": baseline(frame, main),
    }
