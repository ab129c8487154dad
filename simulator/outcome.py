"""The churn formula applied at every term end.

``logit = intercept(t) + sum_k w_k * x_k + noise``; the true drivers ``x_k`` are computed
from the simulated behaviour in the 13 weeks (about 90 days) before ``end_date`` (and, for
the champion and the invoices, from the term or the last six months, whichever is
longer). ``sigmoid(logit)`` is an annual churn probability; the outcome of a term of
``m`` months is drawn with ``1 - (1 - sigmoid(logit)) ** (m / 12)``. The oracle
probability is that probability averaged over the per-term noise, which nothing in the
data can reveal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.polynomial.hermite_e import hermegauss

from simulator.config import ChurnWeights, Mechanisms
from simulator.logistic import sigmoid

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
# Event-like drivers (a champion's departure, a badly overdue invoice) count when they
# happened during the term or the DRIVER_LOOKBACK_MONTHS before its end, whichever is
# longer: a whole term for annual terms, six months (six monthly or two quarterly
# decisions) for short terms, so that a departure does not vanish after one month.
DRIVER_LOOKBACK_MONTHS = 6
# An invoice is badly overdue once it is still unpaid this many days after its due date.
OVERDUE_DAYS = 30
DAYS_PER_YEAR = 365.25
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
    """Behaviour of the accounts whose term ends, over the window before ``end_date``.

    ``champion_left`` and ``bad_invoices`` cover the term or the last
    :data:`DRIVER_LOOKBACK_MONTHS` months, whichever is longer; the rest the last
    :data:`WINDOW_WEEKS` weeks.
    """

    key_per_seat_week: npt.NDArray[np.float64]
    breadth: npt.NDArray[np.float64]
    support_pain: npt.NDArray[np.float64]
    champion_left: npt.NDArray[np.bool_]
    bad_invoices: npt.NDArray[np.float64]
    watermelon: npt.NDArray[np.bool_]
    mean_health: npt.NDArray[np.float64]


def window_groups(
    lo: npt.NDArray[np.int64], w: int
) -> list[tuple[npt.NDArray[np.bool_], int, int]]:
    """Rows grouped by the weeks ``[a, b)`` their behaviour window reads.

    ``lo`` is each row's first week (13 weeks before week ``w``, or the account's first
    week if later); the window ends before week ``w``. A term that ends in the account's
    first simulated week (a pre-existing customer on short terms renewing in week 0) reads
    that week itself, the only behaviour there is.
    """
    groups = []
    for a in np.unique(lo):
        b = w if a < w else w + 1
        groups.append((lo == a, int(a), b))
    return groups


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
        ``per_term(sigmoid(intercept(t) + sum(contrib) + noise))``: the probability the
        outcome is drawn with (see :func:`per_term`).
    p_noisy_annual
        ``sigmoid(intercept(t) + sum(contrib) + noise)``: ``p_noisy`` before the conversion
        to the term (a play's effect is added to it).
    p
        ``E_noise[p_noisy]``: the churn probability of the term given the drivers.
        Drawing with ``p_noisy`` for a random noise is the same as drawing with ``p``, so
        ``p`` is the oracle: the best any scorer that sees the drivers, but not the noise,
        can do.
    """

    contrib: npt.NDArray[np.float64]
    noise: npt.NDArray[np.float64]
    p_noisy: npt.NDArray[np.float64]
    p_noisy_annual: npt.NDArray[np.float64]
    p: npt.NDArray[np.float64]


def per_term(p_annual: npt.NDArray[np.float64], term_months: int) -> npt.NDArray[np.float64]:
    """Probability over a term of ``term_months`` months of an event with annual probability
    ``p_annual``: ``1 - (1 - p_annual) ** (term_months / 12)``.

    A constant hazard through the year, so that twelve monthly decisions lose as many
    customers as one annual decision. Annual terms return ``p_annual`` itself.
    """
    if term_months == 12:
        return p_annual
    with np.errstate(divide="ignore"):  # p_annual == 1 gives log1p(-1) = -inf, and 1
        out: npt.NDArray[np.float64] = -np.expm1(term_months / 12.0 * np.log1p(-p_annual))
    return out


def marginal_probability(
    logit: npt.NDArray[np.float64], sd: float, term_months: int = 12
) -> npt.NDArray[np.float64]:
    """``E[per_term(sigmoid(logit + sd * Z))]`` for ``Z ~ Normal(0, 1)``, by Gauss-Hermite
    quadrature (see :func:`per_term`)."""
    if sd == 0.0:
        return per_term(sigmoid(logit), term_months)
    nodes = logit[:, None] + sd * _NODES[None, :]
    out: npt.NDArray[np.float64] = per_term(sigmoid(nodes), term_months) @ _WEIGHTS
    return out


def intercept_at(weights: ChurnWeights, years: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The intercept of the churn logit ``years`` years after ``start`` (base-rate drift)."""
    out: npt.NDArray[np.float64] = weights.intercept + weights.intercept_per_year * years
    return out


def churn_logit(
    win: Window,
    weights: ChurnWeights,
    mechanisms: Mechanisms,
    rng: np.random.Generator,
    years: npt.NDArray[np.float64],
    term_months: int = 12,
) -> Churn:
    """Contributions ``w_k * x_k``, the noise and both probabilities (see :class:`Churn`).

    ``years`` is each term's end date in years since ``start`` (the drift's clock);
    ``term_months`` converts the annual probability to the term's (:func:`per_term`).
    Draws exactly one normal per term from ``rng``.
    """
    contrib = driver_values(win) * weight_vector(weights, mechanisms)
    noise: npt.NDArray[np.float64] = np.asarray(
        rng.normal(0.0, weights.noise_sd, size=contrib.shape[0]), dtype=np.float64
    )
    logit = intercept_at(weights, years) + contrib.sum(axis=1)
    annual = sigmoid(logit + noise)
    return Churn(
        contrib=contrib,
        noise=noise,
        p_noisy=per_term(annual, term_months),
        p_noisy_annual=annual,
        p=marginal_probability(logit, weights.noise_sd, term_months),
    )


def dominant_reason(contrib: npt.NDArray[np.float64]) -> npt.NDArray[np.object_]:
    """Name of the driver with the largest positive contribution, or ``"none"``."""
    names = np.array(DRIVERS, dtype=object)
    best = contrib.argmax(axis=1)
    top = contrib[np.arange(contrib.shape[0]), best]
    return np.where(top > 0.0, names[best], "none")
