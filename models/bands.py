"""Health score and bands: thresholds chosen from held-out predictions, not guessed.

Health score = 100 x (1 - calibrated churn probability), rounded. An account is red when
its probability reaches the red threshold, yellow from the yellow threshold, else green.

The thresholds are chosen by the training procedure (:mod:`models.procedure`) from
probabilities held out from the trees and the calibrator: red where precision for churn
reaches ``red_precision`` (a CSM's call is then worth it), yellow where red and yellow
together catch ``yellow_recall`` of the churners, within what a CS team can work: red is at
most ``max_red_share`` of the accounts and red plus yellow at most ``max_flagged_share``,
so that green is never empty when most accounts renew, whatever the churn rate. Every
backtest fold chooses its own thresholds from its own past; the precision and recall
reported for the bands are those of the folds' thresholds on the folds' later rows.
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
    max_red_share: float = Field(
        0.15, gt=0, lt=1, description="red is at most this share of the accounts"
    )
    max_flagged_share: float = Field(
        0.4, gt=0, lt=1, description="red and yellow together are at most this share"
    )
    per_segment: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="segment -> (yellow, red) thresholds"
    )

    @model_validator(mode="after")
    def _ordered(self) -> BandConfig:
        if self.red is not None and self.yellow is not None and not self.yellow < self.red:
            raise ValueError(f"yellow ({self.yellow}) must be below red ({self.red})")
        if (self.red is None) != (self.yellow is None):
            raise ValueError("give both fixed thresholds (red and yellow) or neither")
        if self.max_red_share > self.max_flagged_share:
            raise ValueError(
                f"max_red_share ({self.max_red_share}) must not exceed max_flagged_share "
                f"({self.max_flagged_share}): red accounts are also flagged"
            )
        return self


def health_score(p: np.ndarray) -> np.ndarray:
    """0-100, higher is healthier."""
    return np.rint(100.0 * (1.0 - np.asarray(p, dtype=float))).astype(np.int64)


def choose_thresholds(
    p: np.ndarray,
    y: np.ndarray,
    red_precision: float,
    yellow_recall: float,
    max_red_share: float = 1.0,
    max_flagged_share: float = 1.0,
) -> tuple[float, float]:
    """(yellow, red) probability thresholds from held-out predictions.

    Red: the lowest threshold at which the precision of "p >= t" is at least
    ``red_precision`` (the top decile's threshold when none reaches it), raised if needed so
    that at most ``max_red_share`` of the rows are red. Yellow: the highest threshold at
    which "p >= t" catches ``yellow_recall`` of churners, raised if needed so that at most
    ``max_flagged_share`` are red or yellow. Thresholds sit where the probability changes,
    so tied rows fall on one side together; when even the top group of ties is larger
    than a cap, nothing takes that band (the threshold sits above every probability).
    """
    p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=int)
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    n = len(ps)
    hits = np.cumsum(ys)
    precision = hits / np.arange(1, n + 1)
    recall = hits / max(int(ys.sum()), 1)
    share = np.arange(1, n + 1) / max(n, 1)
    # Thresholds only where the probability changes, so ties fall on one side together.
    last_of_tie = np.r_[ps[1:] != ps[:-1], True] if n else np.zeros(0, bool)
    above_all = float(np.nextafter(ps[0], np.inf)) if n else 1.0

    def lowest(ok: np.ndarray, cap: float) -> float:
        """The lowest tie-group threshold among ``ok`` whose flagged share is within ``cap``."""
        fits = np.flatnonzero(last_of_tie & ok & (share <= cap + 1e-12))
        return float(ps[fits[-1]]) if fits.size else above_all

    reaches = precision >= red_precision
    if not (last_of_tie & reaches).any():
        reaches = share <= 0.1 + 1e-12  # no threshold is precise enough: the top decile
    red = lowest(reaches, max_red_share)
    caught = np.flatnonzero(last_of_tie & (recall >= yellow_recall))
    wanted = float(ps[caught[0]]) if caught.size else float(ps[-1]) if n else 0.0
    yellow = max(wanted, lowest(np.ones(n, bool), max_flagged_share))
    yellow = min(yellow, red)  # equal: no yellow band
    return yellow, red


def thresholds_for(p: np.ndarray, y: np.ndarray, cfg: BandConfig) -> tuple[float, float]:
    """The (yellow, red) thresholds of ``cfg``: its fixed ones, or chosen from ``p`` and ``y``."""
    if cfg.red is not None and cfg.yellow is not None:
        return cfg.yellow, cfg.red
    return choose_thresholds(
        p, y, cfg.red_precision, cfg.yellow_recall, cfg.max_red_share, cfg.max_flagged_share
    )


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
