"""The churn formula applied at every term end.

``logit = intercept + sum_k w_k * x_k + noise``; the true drivers ``x_k`` are computed
from the simulated behaviour in the 13 weeks (about 90 days) before ``end_date``. The
outcome is drawn with ``sigmoid(logit)``; the oracle probability is that probability
averaged over the per-term noise, which nothing in the data can reveal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.polynomial.hermite_e import hermegauss

from features.simulator.config import ChurnWeights, Mechanisms

DRIVERS: tuple[str, ...] = (
    "low_key_usage",
    "low_utilisation",
    "champion_left",
    "support_pain",
    "overdue_invoices",
    "watermelon",
    "low_health",
)
"""Driver names; the truth has one ``contrib_<driver>`` column per name."""

WINDOW_WEEKS = 13
# Typical key events per seat and week: below it low_key_usage is positive.
KEY_PER_SEAT_REF = 0.055
KEY_PER_SEAT_FLOOR = 0.006
# Typical share of seats active in a week: below it low_utilisation is positive.
BREADTH_REF = 0.4
BREADTH_SCALE = 0.2
# Gauss-Hermite nodes for E[sigmoid(a + sd Z)], Z ~ N(0, 1): with sd <= 1 the error of 32
# nodes is below 1e-12 (the integrand is smooth; checked against scipy.integrate.quad).
_NODES, _WEIGHTS = hermegauss(32)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()  # the weights of exp(-z^2 / 2) sum to sqrt(2 pi)


@dataclass(frozen=True)
class Window:
    """Behaviour of the accounts whose term ends, over the window before ``end_date``."""

    key_per_seat_week: npt.NDArray[np.float64]
    breadth: npt.NDArray[np.float64]
    support_pain: npt.NDArray[np.float64]
    champion_left: npt.NDArray[np.bool_]
    bad_invoices: npt.NDArray[np.float64]
    watermelon: npt.NDArray[np.bool_]
    mean_health: npt.NDArray[np.float64]


def driver_values(win: Window) -> npt.NDArray[np.float64]:
    """The drivers ``x_k`` (rows: terms, columns: :data:`DRIVERS`), positive means risk."""
    low_key = np.log(KEY_PER_SEAT_REF / (win.key_per_seat_week + KEY_PER_SEAT_FLOOR))
    low_util = (BREADTH_REF - win.breadth) / BREADTH_SCALE
    return np.column_stack(
        [
            np.clip(low_key, -2.0, 3.0),
            np.clip(low_util, -2.0, 2.0),
            win.champion_left.astype(np.float64),
            np.log1p(win.support_pain),
            np.minimum(win.bad_invoices, 3.0),
            win.watermelon.astype(np.float64),
            -win.mean_health,
        ]
    )


def weight_vector(weights: ChurnWeights, mechanisms: Mechanisms) -> npt.NDArray[np.float64]:
    """Weights in :data:`DRIVERS` order; a mechanism switched off gets weight 0."""
    w = np.array([getattr(weights, name) for name in DRIVERS], dtype=np.float64)
    # Support pain still produces tickets when off, but they no longer drive churn.
    if not mechanisms.support_pain:
        w[DRIVERS.index("support_pain")] = 0.0
    return w


@dataclass(frozen=True)
class Churn:
    """The churn formula evaluated for the terms that end in one week.

    Attributes
    ----------
    contrib
        ``w_k * x_k`` (rows: terms, columns: :data:`DRIVERS`).
    noise
        The per-term logit noise, ``Normal(0, noise_sd)``.
    p_noisy
        ``sigmoid(intercept + sum(contrib) + noise)``: the probability the outcome is
        drawn with.
    p
        ``E_noise[sigmoid(intercept + sum(contrib) + noise)]``: the churn probability given
        the drivers. Drawing with ``p_noisy`` for a random noise is the same as drawing
        with ``p``, so ``p`` is the oracle: the best any scorer that sees the drivers, but
        not the noise, can do.
    """

    contrib: npt.NDArray[np.float64]
    noise: npt.NDArray[np.float64]
    p_noisy: npt.NDArray[np.float64]
    p: npt.NDArray[np.float64]


def _sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-x))
    return out


def marginal_probability(logit: npt.NDArray[np.float64], sd: float) -> npt.NDArray[np.float64]:
    """``E[sigmoid(logit + sd * Z)]`` for ``Z ~ Normal(0, 1)``, by Gauss-Hermite quadrature."""
    if sd == 0.0:
        return _sigmoid(logit)
    out: npt.NDArray[np.float64] = _sigmoid(logit[:, None] + sd * _NODES[None, :]) @ _WEIGHTS
    return out


def churn_logit(
    win: Window,
    weights: ChurnWeights,
    mechanisms: Mechanisms,
    rng: np.random.Generator,
) -> Churn:
    """Contributions ``w_k * x_k``, the noise and both probabilities (see :class:`Churn`).

    Draws exactly one normal per term from ``rng``.
    """
    contrib = driver_values(win) * weight_vector(weights, mechanisms)
    noise: npt.NDArray[np.float64] = np.asarray(
        rng.normal(0.0, weights.noise_sd, size=contrib.shape[0]), dtype=np.float64
    )
    logit = weights.intercept + contrib.sum(axis=1)
    return Churn(
        contrib=contrib,
        noise=noise,
        p_noisy=_sigmoid(logit + noise),
        p=marginal_probability(logit, weights.noise_sd),
    )


def dominant_reason(contrib: npt.NDArray[np.float64]) -> npt.NDArray[np.object_]:
    """Name of the driver with the largest positive contribution, or ``"none"``."""
    names = np.array(DRIVERS, dtype=object)
    best = contrib.argmax(axis=1)
    top = contrib[np.arange(contrib.shape[0]), best]
    return np.where(top > 0.0, names[best], "none")
