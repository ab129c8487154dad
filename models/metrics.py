"""Scores of a churn-risk ranking and of churn probabilities, one function per idea.

``y`` is the 0/1 churn label, ``p`` a churn probability and ``risk`` any score where higher
means more likely to churn. Metrics that need both classes return NaN on one-class rows.

Every metric a bootstrap interval is drawn for takes an optional ``weight``: a row weight
(1-D, the result is a number) or a matrix of them, one row of weights per bootstrap
replicate (2-D, the result is an array with one value per replicate). A bootstrap draw is
then the same definition with the drawn counts as weights (:mod:`models.uncertainty`), so
the interval and the figure it brackets can never be computed two different ways.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike
#: Bands as stored in score tables.
RED, YELLOW, GREEN = "red", "yellow", "green"
BANDS = (RED, YELLOW, GREEN)
Value = float | np.ndarray


def _weights(weight: ArrayLike | None, n: int) -> tuple[np.ndarray, bool]:
    """The weights as a (replicates, rows) matrix, and whether the caller gave a matrix."""
    if weight is None:
        return np.ones((1, n)), False
    w = np.asarray(weight, float)
    if w.ndim == 1:
        return w[None, :], False
    return w, True


def _out(values: np.ndarray, many: bool) -> Value:
    return values if many else float(values[0])


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``, NaN where ``den`` is 0 (no rows, no churners, ...)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def roc_auc(y: ArrayLike, risk: ArrayLike, weight: ArrayLike | None = None) -> Value:
    """Area under the ROC curve: the chance a churner is ranked above a renewer (ties: half).

    The Mann-Whitney statistic over groups of equal scores: for each group, its churners
    beat the renewers of every lower group and tie with its own. With weights, every pair
    counts with the product of its two weights. The same value as
    ``sklearn.metrics.roc_auc_score`` without its per-call validation cost.
    """
    y, risk = np.asarray(y, float), np.asarray(risk, float)
    w, many = _weights(weight, y.size)
    if y.size == 0:
        return _out(np.full(w.shape[0], np.nan), many)
    _, codes = np.unique(risk, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(codes[order])) + 1]
    wo, yo = w[:, order], y[order]
    pos = np.add.reduceat(wo * yo, starts, axis=1)
    neg = np.add.reduceat(wo * (1.0 - yo), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    wins = (pos * (below + 0.5 * neg)).sum(axis=1)
    return _out(_ratio(wins, pos.sum(axis=1) * neg.sum(axis=1)), many)


def pr_auc(y: ArrayLike, risk: ArrayLike) -> float:
    """Average precision (area under the precision-recall curve); the base rate is random.

    ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds, highest first, as
    ``sklearn.metrics.average_precision_score`` defines it.
    """
    ya, ra = np.asarray(y, float), np.asarray(risk, float)
    if not (ya.size > 0 and 0 < ya.sum() < ya.size):
        return float("nan")
    order = np.argsort(-ra, kind="stable")
    ys, rs = ya[order], ra[order]
    last = np.r_[np.flatnonzero(np.diff(rs)), ys.size - 1]
    tps = np.cumsum(ys)[last]
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def brier(y: ArrayLike, p: ArrayLike, weight: ArrayLike | None = None) -> Value:
    """Mean squared difference between probability and outcome (lower is better)."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    w, many = _weights(weight, y.size)
    return _out(_ratio(w @ ((p - y) ** 2), w.sum(axis=1)), many)


def log_loss(y: ArrayLike, p: ArrayLike, eps: float = 1e-6) -> float:
    """Mean negative log-likelihood, probabilities clipped to [eps, 1 - eps]."""
    ya, pa = np.asarray(y, float), np.clip(np.asarray(p, float), eps, 1 - eps)
    if not ya.size:
        return float("nan")
    return float(-np.mean(ya * np.log(pa) + (1 - ya) * np.log(1 - pa)))


def ece(y: ArrayLike, p: ArrayLike, bins: int = 10, weight: ArrayLike | None = None) -> Value:
    """Expected calibration error over ``bins`` equal-frequency bins of ``p``.

    ``sum_b n_b / n * |mean(p in b) - mean(y in b)|``, which is ``sum_b |sum_{i in b}
    (p_i - y_i)| / n``. Equal-frequency (quantile) bins are used because churn probabilities
    crowd near zero: equal-width bins would leave most bins empty and put nearly every row
    in the first. With weights the bins stay those of the unweighted rows.
    """
    y, p = np.asarray(y, float), np.asarray(p, float)
    w, many = _weights(weight, y.size)
    if not y.size:
        return _out(np.full(w.shape[0], np.nan), many)
    order = np.argsort(p, kind="stable")
    gap = w[:, order] * (p - y)[order]
    starts = np.array([idx[0] for idx in np.array_split(np.arange(y.size), min(bins, y.size))])
    per_bin = np.abs(np.add.reduceat(gap, starts, axis=1)).sum(axis=1)
    return _out(_ratio(per_bin, w.sum(axis=1)), many)


def calibration_curve(y: ArrayLike, p: ArrayLike, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mean predicted and observed churn rate per equal-frequency bin (as in :func:`ece`)."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    order = np.argsort(p, kind="stable")
    parts = [idx for idx in np.array_split(order, min(bins, max(y.size, 1))) if idx.size]
    return np.array([p[i].mean() for i in parts]), np.array([y[i].mean() for i in parts])


def top_share(
    y: ArrayLike, risk: ArrayLike, share: float = 0.1, weight: ArrayLike | None = None
) -> tuple[Value, Value]:
    """Lift and recall among the ``share`` highest-risk rows (the top decile by default).

    Lift is the churn rate in the top rows divided by the overall churn rate; recall is the
    share of all churners found there. Ties at the boundary are broken by row order after a
    stable sort, so the top set has exactly ``ceil(share * n)`` rows; with weights, a row is
    in the top set when the weight ranked above it is below ``share`` of the total.
    """
    y, risk = np.asarray(y, float), np.asarray(risk, float)
    w, many = _weights(weight, y.size)
    order = np.argsort(-risk, kind="stable")
    wo, yo = w[:, order], y[order]
    total = wo.sum(axis=1, keepdims=True)
    above = np.cumsum(wo, axis=1) - wo
    top = above < share * total - 1e-9
    churned = wo @ yo
    top_churned = (wo * top) @ yo
    rate_top = _ratio(top_churned, (wo * top).sum(axis=1))
    lift = _ratio(rate_top, _ratio(churned, total[:, 0]))
    recall = _ratio(top_churned, churned)
    return _out(lift, many), _out(recall, many)


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


def band_precision(
    y: ArrayLike, bands: ArrayLike, which: str, weight: ArrayLike | None = None
) -> Value:
    """The churn rate of one band: of the accounts in it, the share that churned.

    For red this is the precision of a red flag; for green, how often a green account
    churned anyway.
    """
    yv, inside = np.asarray(y, float), (np.asarray(bands) == which).astype(float)
    w, many = _weights(weight, yv.size)
    return _out(_ratio(w @ (yv * inside), w @ inside), many)


def band_recall(
    y: ArrayLike, bands: ArrayLike, which: str, weight: ArrayLike | None = None
) -> Value:
    """The share of all churners that were in one band (red: the recall of a red flag)."""
    yv, inside = np.asarray(y, float), (np.asarray(bands) == which).astype(float)
    w, many = _weights(weight, yv.size)
    return _out(_ratio(w @ (yv * inside), w @ yv), many)


def band_share(bands: ArrayLike, which: str, weight: ArrayLike | None = None) -> Value:
    """The share of all rows (accounts) in one band."""
    inside = (np.asarray(bands) == which).astype(float)
    w, many = _weights(weight, inside.size)
    return _out(_ratio(w @ inside, w.sum(axis=1)), many)


def red_arr_share(
    y: ArrayLike, bands: ArrayLike, arr: ArrayLike, weight: ArrayLike | None = None
) -> Value:
    """Share of churned ARR whose account was red (missing ARR counts as zero)."""
    money = np.nan_to_num(np.asarray(arr, float)) * (np.asarray(y) == 1)
    return band_recall(money, bands, RED, weight) if money.size else float("nan")


def watermelon_rate(y: ArrayLike, bands: ArrayLike, weight: ArrayLike | None = None) -> Value:
    """Share of churned accounts that were green: green outside, red inside (lower is better)."""
    return band_recall(y, bands, GREEN, weight)
