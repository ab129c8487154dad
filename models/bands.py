"""Health score and bands: thresholds chosen from the backtest, not guessed.

Health score = 100 x (1 - calibrated churn probability), rounded. An account is red when
its probability reaches the red threshold, yellow from the yellow threshold, else green.
The default thresholds come from out-of-time backtest predictions: red where precision for
churn reaches ``red_precision`` (a CSM's call is then worth it), yellow where red and yellow
together catch ``yellow_recall`` of the churners.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from features.config import Frozen
from models.metrics import band


class BandConfig(Frozen):
    """Band thresholds: fixed numbers, or targets the backtest turns into numbers."""

    red: float | None = Field(None, gt=0, lt=1, description="fixed red threshold")
    yellow: float | None = Field(None, gt=0, lt=1, description="fixed yellow threshold")
    red_precision: float = Field(0.5, gt=0, lt=1, description="share of reds that churn")
    yellow_recall: float = Field(0.8, gt=0, lt=1, description="churners caught by red+yellow")
    per_segment: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="segment -> (yellow, red) thresholds"
    )

    @model_validator(mode="after")
    def _ordered(self) -> BandConfig:
        if self.red is not None and self.yellow is not None and not self.yellow < self.red:
            raise ValueError(f"yellow ({self.yellow}) must be below red ({self.red})")
        return self


def health_score(p: np.ndarray) -> np.ndarray:
    """0-100, higher is healthier."""
    return np.rint(100.0 * (1.0 - np.asarray(p, dtype=float))).astype(np.int64)


def choose_thresholds(
    p: np.ndarray, y: np.ndarray, red_precision: float, yellow_recall: float
) -> tuple[float, float]:
    """(yellow, red) probability thresholds from out-of-time predictions.

    Red: the lowest threshold at which the precision of "p >= t" is at least
    ``red_precision`` (falls back to the top decile's threshold when none reaches it).
    Yellow: the highest threshold at which "p >= t" catches ``yellow_recall`` of churners.
    """
    p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=int)
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    hits = np.cumsum(ys)
    precision = hits / np.arange(1, len(ps) + 1)
    recall = hits / max(int(ys.sum()), 1)
    # Thresholds only where the probability changes, so ties fall on one side together.
    last_of_tie = np.r_[ps[1:] != ps[:-1], True]
    ok = np.flatnonzero(last_of_tie & (precision >= red_precision))
    red = float(ps[ok[-1]]) if ok.size else float(np.quantile(p, 0.9))
    caught = np.flatnonzero(last_of_tie & (recall >= yellow_recall))
    yellow = float(ps[caught[0]]) if caught.size else float(ps[-1])
    yellow = min(yellow, red - 1e-6)
    return yellow, red


def threshold_quality(p: np.ndarray, y: np.ndarray, yellow: float, red: float) -> pd.DataFrame:
    """Precision and recall for churn of "red" and of "red or yellow"."""
    p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=int)
    rows = []
    for name, t in (("red", red), ("yellow", yellow)):
        flagged = p >= t
        rows.append(
            {
                "band": name,
                "threshold": t,
                "precision": float(y[flagged].mean()) if flagged.any() else float("nan"),
                "recall": float(y[flagged].sum() / max(y.sum(), 1)),
                "share_of_accounts": float(flagged.mean()),
            }
        )
    return pd.DataFrame(rows)


def assign_bands(
    p: np.ndarray,
    segments: pd.Series | None,
    thresholds: tuple[float, float],
    per_segment: Mapping[str, tuple[float, float]] | None = None,
) -> np.ndarray:
    """green / yellow / red for each probability, with per-segment thresholds if given."""
    p = np.asarray(p, dtype=float)
    yellow = np.full(len(p), thresholds[0])
    red = np.full(len(p), thresholds[1])
    if per_segment and segments is not None:
        seg = segments.astype("str").to_numpy()
        for name, (y_t, r_t) in per_segment.items():
            yellow[seg == name], red[seg == name] = y_t, r_t
    return band(p, (yellow, red))  # type: ignore[arg-type]  # arrays broadcast like scalars
