"""Scores of a churn-risk ranking and of churn probabilities, one function per idea.

``y`` is the 0/1 churn label, ``p`` a churn probability and ``risk`` any score where higher
means more likely to churn. Metrics that need both classes return NaN on one-class rows.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

ArrayLike = npt.ArrayLike
#: Bands as stored in score tables.
RED, YELLOW, GREEN = "red", "yellow", "green"


def _both_classes(y: np.ndarray) -> bool:
    return y.size > 0 and 0 < y.sum() < y.size


def roc_auc(y: ArrayLike, risk: ArrayLike) -> float:
    """Area under the ROC curve: the chance a churner is ranked above a renewer (ties: half).

    Computed from mid-ranks (the Mann-Whitney U statistic), the same value as
    ``sklearn.metrics.roc_auc_score`` without its per-call validation cost.
    """
    y = np.asarray(y, float)
    if not _both_classes(y):
        return float("nan")
    ranks = rankdata(np.asarray(risk, float))
    pos = y.sum()
    neg = y.size - pos
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def pr_auc(y: ArrayLike, risk: ArrayLike) -> float:
    """Average precision (area under the precision-recall curve); the base rate is random.

    ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds, highest first, as
    ``sklearn.metrics.average_precision_score`` defines it.
    """
    ya, ra = np.asarray(y, float), np.asarray(risk, float)
    if not _both_classes(ya):
        return float("nan")
    order = np.argsort(-ra, kind="stable")
    ys, rs = ya[order], ra[order]
    last = np.r_[np.flatnonzero(np.diff(rs)), ys.size - 1]
    tps = np.cumsum(ys)[last]
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def brier(y: ArrayLike, p: ArrayLike) -> float:
    """Mean squared difference between probability and outcome (lower is better)."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    return float(np.mean((p - y) ** 2)) if y.size else float("nan")


def log_loss(y: ArrayLike, p: ArrayLike, eps: float = 1e-6) -> float:
    """Mean negative log-likelihood, probabilities clipped to [eps, 1 - eps]."""
    ya, pa = np.asarray(y, float), np.clip(np.asarray(p, float), eps, 1 - eps)
    if not ya.size:
        return float("nan")
    return float(-np.mean(ya * np.log(pa) + (1 - ya) * np.log(1 - pa)))


def ece(y: ArrayLike, p: ArrayLike, bins: int = 10) -> float:
    """Expected calibration error over ``bins`` equal-frequency bins of ``p``.

    ``sum_b n_b / n * |mean(p in b) - mean(y in b)|``. Equal-frequency (quantile) bins are
    used because churn probabilities crowd near zero: equal-width bins would leave most bins
    empty and put nearly every row in the first.
    """
    y, p = np.asarray(y, float), np.asarray(p, float)
    if not y.size:
        return float("nan")
    order = np.argsort(p, kind="stable")
    total = 0.0
    for idx in np.array_split(order, min(bins, y.size)):
        total += idx.size * abs(p[idx].mean() - y[idx].mean())
    return float(total / y.size)


def calibration_curve(y: ArrayLike, p: ArrayLike, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mean predicted and observed churn rate per equal-frequency bin (as in :func:`ece`)."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    order = np.argsort(p, kind="stable")
    parts = [idx for idx in np.array_split(order, min(bins, max(y.size, 1))) if idx.size]
    return np.array([p[i].mean() for i in parts]), np.array([y[i].mean() for i in parts])


def top_share(y: ArrayLike, risk: ArrayLike, share: float = 0.1) -> tuple[float, float]:
    """Lift and recall among the ``share`` highest-risk rows (the top decile by default).

    Lift is the churn rate in the top rows divided by the overall churn rate; recall is the
    share of all churners found there. Ties at the boundary are broken by row order after a
    stable sort, so the top set has exactly ``ceil(share * n)`` rows.
    """
    y, risk = np.asarray(y, float), np.asarray(risk, float)
    if not y.size or y.sum() == 0:
        return float("nan"), float("nan")
    k = int(np.ceil(share * y.size))
    top = np.argsort(-risk, kind="stable")[:k]
    lift = y[top].mean() / y.mean()
    recall = y[top].sum() / y.sum()
    return float(lift), float(recall)


def lift_curve(y: ArrayLike, risk: ArrayLike, points: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gains: share of churners found in the riskiest 10%, 20%, ... of rows."""
    y, risk = np.asarray(y, float), np.asarray(risk, float)
    order = np.argsort(-risk, kind="stable")
    found = np.cumsum(y[order]) / max(y.sum(), 1.0)
    shares = np.arange(1, points + 1) / points
    idx = np.maximum(np.ceil(shares * y.size).astype(int) - 1, 0)
    return shares, found[idx] if y.size else np.full(points, np.nan)


def band(p: ArrayLike, thresholds: tuple[float, float]) -> np.ndarray:
    """Red/yellow/green from a churn probability: yellow from ``thresholds[0]``, red from [1]."""
    p = np.asarray(p, float)
    return np.where(p >= thresholds[1], RED, np.where(p >= thresholds[0], YELLOW, GREEN))


def red_arr_share(y: ArrayLike, bands: ArrayLike, arr: ArrayLike) -> float:
    """Share of churned ARR whose account was red (missing ARR counts as zero)."""
    churn, b = np.asarray(y) == 1, np.asarray(bands)
    money = np.nan_to_num(np.asarray(arr, float))
    churned = money[churn].sum()
    return float(money[churn & (b == RED)].sum() / churned) if churned > 0 else float("nan")


def watermelon_rate(y: ArrayLike, bands: ArrayLike) -> float:
    """Share of churned accounts that were green: green outside, red inside (lower is better)."""
    churn, b = np.asarray(y) == 1, np.asarray(bands)
    return float((b[churn] == GREEN).mean()) if churn.any() else float("nan")
