"""How good is today's score before its renewals resolve: confidence-based estimates.

If the churn probabilities p_i of the current book are calibrated, each account churns with
probability p_i, and the performance the score will show once the renewals resolve can be
estimated today, as NannyML's CBPE does. Every figure here rests on that assumption (and on
accounts churning independently): an over-confident score promises a better AUC than it
will deliver, which the tests show. Realized figures are compared with the estimates by
:func:`compare` once the labels arrive.

- Expected churners: sum p_i. Its interval is exact: the churn count is Poisson-binomial
  and its distribution is computed by dynamic programming over the accounts (O(n^2), up
  to ``EXACT_MAX`` accounts; beyond that the normal approximation with mean sum p and
  variance sum p(1 - p), rounded outward).
- Expected ARR lost: sum p_i ARR_i (unknown ARR counts as 0 and is reported).
- Expected ROC AUC of ``score``: with W = sum over ordered pairs i != j of
  Y_i (1 - Y_j) [s_i > s_j] (ties: 1/2) and P = N_pos N_neg = sum_{i != j} Y_i (1 - Y_j),
  the AUC is W / P, and independence gives
      E[W] = sum_{i != j} p_i (1 - p_j) k_ij,   E[P] = (sum p)(sum (1 - p)) - sum p (1 - p).
  The estimate is E[W] / E[P], computed in O(n log n) by sorting on the score: for each
  group g of equal scores with churn mass P_g = sum p, renew mass N_g = sum (1 - p) and
  self-pair mass S_g = sum p (1 - p), E[W] = sum_g P_g N_below(g) + (P_g N_g - S_g) / 2.
  It differs from E[W / P] by O(1/n) (delta method); the tests measure the difference
  against Monte Carlo. NannyML's curve-based form is (sum_{i,j} ...) / ((sum p)(sum 1-p)),
  which also counts the impossible pairs of an account with itself.
- Red band: expected precision is the mean p over red accounts (exact: the number of red
  accounts is known, so this is the expectation of the realized precision); its interval
  is the exact Poisson-binomial of the red churners divided by the red count. Expected
  recall is sum_red p / sum p (a ratio of expectations, like the AUC).

Intervals for the AUC, recall and ARR are Monte Carlo: ``draws`` label sets drawn from p
(seeded), the central ``level`` range of the realized figure each would give. They say
where the realized figure should fall if the score is calibrated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import norm, rankdata

from models.metrics import RED, band_precision, band_recall, roc_auc
from models.uncertainty import Interval

#: Largest book whose churn-count interval is computed exactly (the DP is O(n^2)).
EXACT_MAX = 20_000
#: Label sets drawn per Monte-Carlo batch (a (batch, accounts) matrix).
BATCH = 100
NAN = float("nan")


@dataclass(frozen=True)
class PerformanceEstimate:
    """Expected figures of a book whose renewals have not resolved, each with its interval.

    A figure that cannot exist (AUC with no expected churner, precision of an empty red
    band) is NaN and ``notes`` says why.
    """

    n_accounts: int
    churners: Interval
    churners_method: str
    arr_lost: Interval
    n_arr_missing: int
    auc: Interval
    n_red: int
    red_precision: Interval
    red_recall: Interval
    draws: int
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Check:
    """One estimated figure against what happened; ``error`` is realized minus estimated."""

    metric: str
    estimated: float
    low: float
    high: float
    realized: float
    error: float
    within: bool


def expected_auc(p: npt.ArrayLike, score: npt.ArrayLike | None = None) -> float:
    """E[W] / E[P]: the AUC ``score`` is expected to show if ``p`` is calibrated.

    ``score`` ranks accounts (higher: riskier; default ``p``); ties count one half. NaN when
    fewer than one churner-renewer pair is expected (every p is 0 or 1, or one account).
    """
    pa = _probabilities(p)
    s = pa if score is None else _score(score, pa.size)
    if pa.size < 2:
        return NAN
    _, codes = np.unique(s, return_inverse=True)
    pos = np.bincount(codes, weights=pa)
    neg = np.bincount(codes, weights=1.0 - pa)
    self_pairs = np.bincount(codes, weights=pa * (1.0 - pa))
    below = np.cumsum(neg) - neg
    wins = float(np.sum(pos * below + 0.5 * (pos * neg - self_pairs)))
    pairs = float(pa.sum() * (1.0 - pa).sum() - np.sum(pa * (1.0 - pa)))
    return wins / pairs if pairs > 1e-12 else NAN


def poisson_binomial_pmf(p: npt.ArrayLike) -> np.ndarray:
    """P(k churners) for k = 0..n when account i churns independently with probability p_i."""
    pa = _probabilities(p)
    pmf = np.zeros(pa.size + 1)
    pmf[0] = 1.0
    for k, pi in enumerate(pa, start=1):
        pmf[1 : k + 1] = pmf[1 : k + 1] * (1.0 - pi) + pmf[:k] * pi
        pmf[0] *= 1.0 - pi
    return pmf


def churn_count_interval(p: npt.ArrayLike, level: float = 0.9) -> tuple[Interval, str]:
    """Expected churners sum p with the central ``level`` interval of the churn count.

    Exact (Poisson-binomial by dynamic programming) up to ``EXACT_MAX`` accounts, else the
    normal approximation; the second value says which.
    """
    pa = _probabilities(p)
    mean, tail = float(pa.sum()), (1.0 - level) / 2.0
    if pa.size <= EXACT_MAX:
        cdf = np.cumsum(poisson_binomial_pmf(pa))
        low = int(np.searchsorted(cdf, tail - 1e-12))
        high = int(np.searchsorted(cdf, 1.0 - tail - 1e-12))
        return Interval(mean, float(low), float(min(high, pa.size)), level), "exact"
    sd = float(np.sqrt(np.sum(pa * (1.0 - pa))))
    z = float(norm.ppf(1.0 - tail))
    low, high = np.floor(mean - z * sd), np.ceil(mean + z * sd)
    return Interval(mean, max(float(low), 0.0), min(float(high), pa.size), level), "normal"


def estimate_performance(
    p: npt.ArrayLike,
    *,
    arr: npt.ArrayLike | None = None,
    bands: npt.ArrayLike | None = None,
    score: npt.ArrayLike | None = None,
    level: float = 0.9,
    draws: int = 1000,
    seed: int = 0,
) -> PerformanceEstimate:
    """What the book's renewals are expected to show, from calibrated probabilities ``p``.

    Args:
        p: calibrated churn probability of each account for its upcoming renewal.
        arr: ARR of each account (missing counts as 0 and is counted in ``n_arr_missing``).
        bands: "red"/"yellow"/"green" of each account (the red-band figures need it).
        score: the ranking whose AUC is estimated (default ``p``; e.g. minus the health
            score, whose rounding makes ties).
        level: coverage of the intervals.
        draws: Monte-Carlo label sets for the AUC, recall and ARR intervals (0: none).
        seed: of those draws.
    """
    pa = _probabilities(p)
    n = pa.size
    s = pa if score is None else _score(score, n)
    money, n_missing = _arr(arr, n)
    red = np.zeros(n, bool) if bands is None else _bands(bands, n) == RED
    notes: list[str] = []

    churners, method = churn_count_interval(pa, level)
    auc = expected_auc(pa, s)
    if not np.isfinite(auc):
        notes.append(_no_auc(pa))
    if red.any():
        red_churners, _ = churn_count_interval(pa[red], level)
        n_red = int(red.sum())
        precision = Interval(red_churners.estimate / n_red, red_churners.low / n_red,
                             red_churners.high / n_red, level)  # fmt: skip
    else:
        precision = Interval(NAN, NAN, NAN, level)
        notes.append("no red accounts: the red band's precision and recall are undefined")
    recall = float(pa[red].sum() / pa.sum()) if red.any() and pa.sum() > 0 else NAN
    if red.any() and not pa.sum() > 0:
        notes.append("no churner is expected: the red band's recall is undefined")

    mc = _monte_carlo(pa, s, money, red, draws, seed)
    tail = (1.0 - level) / 2.0

    def interval(est: float, values: np.ndarray) -> Interval:
        values = values[np.isfinite(values)]
        if not np.isfinite(est) or values.size < max(10, draws // 2):
            return Interval(est, NAN, NAN, level)
        low, high = np.quantile(values, [tail, 1.0 - tail])
        return Interval(est, float(low), float(high), level)

    return PerformanceEstimate(
        n_accounts=n, churners=churners, churners_method=method,
        arr_lost=interval(float(pa @ money), mc["arr"]), n_arr_missing=n_missing,
        auc=interval(auc, mc["auc"]), n_red=int(red.sum()), red_precision=precision,
        red_recall=interval(recall, mc["recall"]), draws=draws, notes=tuple(notes),
    )  # fmt: skip


def compare(
    estimate: PerformanceEstimate,
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    *,
    arr: npt.ArrayLike | None = None,
    bands: npt.ArrayLike | None = None,
    score: npt.ArrayLike | None = None,
) -> list[Check]:
    """The estimate against the resolved renewals ``y`` (1 = churned) of the same accounts.

    Pass the same ``p``, ``arr``, ``bands`` and ``score`` as to :func:`estimate_performance`.
    ``within`` says whether the realized figure fell inside the estimate's interval (False
    when either is undefined).
    """
    pa = _probabilities(p)
    ya = np.asarray(y, float)
    if ya.shape != pa.shape or not np.isin(ya, (0.0, 1.0)).all():
        raise ValueError(
            f"cbpe: y must be 0/1 with one value per account ({pa.size}); got {ya.size} values"
            f"{'' if np.isin(ya, (0.0, 1.0)).all() else ' with some not 0/1'}. Drop the "
            "accounts whose renewal has not resolved from y and from p."
        )
    if ya.size != estimate.n_accounts:
        raise ValueError(
            f"cbpe: the estimate covers {estimate.n_accounts} accounts, y has {ya.size}. "
            "Compare the same accounts that were estimated."
        )
    s = pa if score is None else _score(score, pa.size)
    money, _ = _arr(arr, pa.size)
    band_of = np.full(pa.size, "green") if bands is None else _bands(bands, pa.size)
    realized = {
        "churners": float(ya.sum()),
        "arr_lost": float(ya @ money),
        "auc": float(roc_auc(ya, s)),
        "red_precision": float(band_precision(ya, band_of, RED)),
        "red_recall": float(band_recall(ya, band_of, RED)),
    }
    out = []
    for metric, value in realized.items():
        est: Interval = getattr(estimate, metric)
        inside = bool(est.low <= value <= est.high)  # False when any is NaN
        out.append(Check(metric, est.estimate, est.low, est.high, value,
                         value - est.estimate, inside))  # fmt: skip
    return out


def _monte_carlo(
    p: np.ndarray, score: np.ndarray, money: np.ndarray, red: np.ndarray, draws: int, seed: int
) -> dict[str, np.ndarray]:
    """Realized AUC, red recall and ARR lost of ``draws`` label sets drawn from ``p``."""
    out: dict[str, list[np.ndarray]] = {"auc": [], "recall": [], "arr": []}
    n = p.size
    ranks = rankdata(score)  # midranks: a tie counts one half, as in metrics.roc_auc
    rng = np.random.default_rng(seed)
    done = 0
    while done < draws and n:
        size = min(BATCH, draws - done)
        y = (rng.random((size, n)) < p).astype(float)
        pos = y.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["auc"].append((y @ ranks - pos * (pos + 1) / 2) / (pos * (n - pos)))
            out["recall"].append((y @ red.astype(float)) / pos)
        out["arr"].append(y @ money)
        done += size
    return {k: np.concatenate(v) if v else np.empty(0) for k, v in out.items()}


def _no_auc(p: np.ndarray) -> str:
    if p.size < 2:
        return f"{p.size} account(s): an AUC needs at least one churner and one renewer"
    if not (p > 0).any():
        return "every probability is 0: no churner is expected, so the AUC is undefined"
    if not (p < 1).any():
        return "every probability is 1: no renewer is expected, so the AUC is undefined"
    return "fewer than one churner-renewer pair is expected: the AUC is undefined"


def _probabilities(p: npt.ArrayLike) -> np.ndarray:
    pa = np.asarray(p, float).reshape(-1)
    bad = ~((pa >= 0.0) & (pa <= 1.0))  # also NaN
    if bad.any():
        raise ValueError(
            f"cbpe: probabilities must be in [0, 1]; {int(bad.sum())} are not (e.g. "
            f"{pa[bad][:3].tolist()}). Pass the calibrated churn probability, not a score "
            "or a logit, and drop unscored accounts."
        )
    return pa


def _score(score: npt.ArrayLike, n: int) -> np.ndarray:
    s = np.asarray(score, float).reshape(-1)
    if s.size != n or not np.isfinite(s).all():
        raise ValueError(
            f"cbpe: score must be finite with one value per account ({n}); got {s.size} "
            "values. Pass the ranking used for the AUC, or leave it out to rank by p."
        )
    return s


def _arr(arr: npt.ArrayLike | None, n: int) -> tuple[np.ndarray, int]:
    if arr is None:
        return np.zeros(n), n
    a = np.asarray(arr, float).reshape(-1)
    if a.size != n:
        raise ValueError(f"cbpe: arr has {a.size} values for {n} accounts; give one per account")
    missing = ~np.isfinite(a)
    return np.where(missing, 0.0, a), int(missing.sum())


def _bands(bands: npt.ArrayLike, n: int) -> np.ndarray:
    b = np.asarray(bands, dtype=object).reshape(-1)
    if b.size != n:
        raise ValueError(f"cbpe: bands has {b.size} values for {n} accounts; give one each")
    return b.astype(str)
