"""Did a play work? The doubly robust (AIPW) estimate of one play's effect on churn.

A unit is one account-renewal. It is *treated* when the play was run in a window before the
renewal; its covariates are measured at the snapshot when the play was (or could have
been) run: the model's own calibrated churn probability, the driver features, ARR and
segment. The outcome is churn at that renewal (0/1).

CSMs run plays mostly on risky and large accounts, so the raw churn rate of the treated
minus that of the untreated (the *naive* difference, reported beside the estimate) mixes
the play's effect with the risk the accounts already had. The estimate adjusts for the
covariates by augmented inverse-probability weighting:

    psi_i = mu1(x_i) - mu0(x_i) + t_i (y_i - mu1(x_i)) / e(x_i)
            - (1 - t_i) (y_i - mu0(x_i)) / (1 - e(x_i))

with the propensity e(x) = P(t = 1 | x) and the outcome models mu_t(x) = P(y = 1 | t, x).
The mean of psi is consistent when either the propensity or the outcome models are right
(Robins, Rotnitzky & Zhao 1994, "Estimation of regression coefficients when some regressors
are not always observed", JASA 89). The nuisance models are cross-fitted: the units are
split into K folds and each fold's e, mu0, mu1 come from models fitted on the other folds,
so a unit's own outcome never enters its own prediction and flexible models do not bias
the mean (Chernozhukov et al. 2018, "Double/debiased machine learning for treatment and
structural parameters", Econometrics Journal 21).

By default the estimand is the effect on the treated (ATT): what the play did for the
accounts that got it, compared with untreated accounts weighted to look like them. Plays go
to a minority of renewals (a tenth or less each), so the average effect over all units
(ATE) would need comparable treated units for every untreated one, and the overlap rule
below would trim most of the book. The doubly robust ATT uses the untreated outcome model
and the propensity only:

    tau = sum_t (y - mu0) / n_t - sum_c w (y - mu0) / sum_c w,    w = e / (1 - e),

consistent when either model is right: it is the mean of the cross-fitted ATTE score of
Chernozhukov et al. (2018, section 5.1), with the untreated weights normalised to sum to
one (the Hajek form, more stable when a few propensities are large). Units whose propensity
exceeds 1 - trim are dropped: treated accounts with no comparable untreated one, and
untreated ones whose weight would dominate (Crump, Hotz, Imbens & Mitnik 2009, "Dealing
with limited overlap in estimation of average treatment effects", Biometrika 96; their rule
of thumb is trim = 0.1). The untreated units in the treated's propensity range are the
"comparable untreated" counted. ``estimand="ate"`` gives the average effect over the units
with a propensity in [trim, 1 - trim] instead, from the AIPW score above. The result says
how many units were trimmed.

The interval is a percentile bootstrap that resamples units (or clusters of them, e.g. the
renewals of one account) and re-averages the cross-fitted scores psi; the nuisance models
are not refitted. With cross-fitting the error of the nuisance models enters the estimate
only at second order, so the estimate's sampling variance is that of the mean of psi
(Chernozhukov et al. 2018, Theorem 5.1, who bootstrap the score the same way); refitting
K x 3 models per replicate would cost hundreds of times more for the same first-order
interval. The overlap region is held fixed across replicates.

Effects are in percentage points of churn probability at the next renewal, treated minus
untreated: negative means fewer churners. When there are too few treated or comparable
untreated units the result refuses an estimate: ``status`` says why and ``reason`` says
what was found, so a caller prints the reason rather than catching an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np
import pandas as pd

from models.play_nuisance import Learner, cross_fit, design
from models.uncertainty import Interval, bootstrap_many

#: Fewest treated units, and fewest untreated ones, inside the overlap region for an
#: estimate: below this the cross-fitted models and the interval rest on a handful of
#: accounts and the figure would be noise presented as a finding.
MIN_TREATED = 20
MIN_UNTREATED = 20
#: Propensity bounds of the overlap region: units outside [TRIM, 1 - TRIM] are trimmed
#: (Crump et al. 2009's rule of thumb). Weights inside are at most 1 / TRIM = 10.
TRIM = 0.1
#: An interval wider than this many points gets a caveat line when rendered.
WIDE_POINTS = 20.0

Status = Literal["ok", "too few", "no overlap"]
Estimand = Literal["att", "ate"]


@dataclass(frozen=True)
class PlayEffect:
    """One play's estimated effect on churn at the next renewal, or why there is none.

    ``effect`` and ``naive`` are in percentage points of churn probability, treated minus
    untreated (negative: fewer churners). ``effect`` is NaN unless ``status == "ok"``;
    ``naive`` (raw churn rate of the treated minus the untreated, over all units) is given
    whenever both groups exist. ``se`` is the influence-function standard error, in points.
    """

    play: str
    status: Status
    reason: str
    effect: Interval
    naive: Interval
    se: float
    n_units: int
    n_treated: int
    n_untreated: int
    n_treated_overlap: int
    n_untreated_overlap: int
    n_trimmed: int
    trim: float
    learner: Learner
    folds: int
    n_boot: int
    seed: int
    #: Which units (rows of the frame, in order) the estimate averages over; None when
    #: there is no estimate. A simulation's true effect is averaged over the same units.
    overlap: np.ndarray | None = field(default=None, repr=False, compare=False)
    estimand: Estimand = "att"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def n_overlap(self) -> int:
        """Units the estimate averages over: treated and comparable untreated."""
        return self.n_treated_overlap + self.n_untreated_overlap


def estimate_effect(
    frame: pd.DataFrame,
    *,
    treatment: str,
    outcome: str,
    covariates: Sequence[str],
    play: str = "play",
    groups: str | None = None,
    folds: int = 5,
    n_boot: int = 500,
    level: float = 0.9,
    trim: float = TRIM,
    learner: Learner = "logistic",
    seed: int = 0,
    estimand: Estimand = "att",
) -> PlayEffect:
    """The AIPW estimate of ``play``'s effect on ``outcome`` among comparable units.

    Args:
        frame: one row per unit (account-renewal); not modified.
        treatment: 0/1 (or bool) column, 1 when the play was run in the window before.
        outcome: 0/1 column, 1 when the account churned at that renewal.
        covariates: columns measured at the snapshot when the play was or could have been
            run. Numeric ones (the model's probability, drivers, ARR) enter the logistic
            models as cubic splines with quantile knots, so skewed ARR or a curved risk
            needs no hand transformation; missing values are filled with the median and
            flagged by an indicator. Others (segment) are one-hot encoded.
        play: the play's name, used in the reason and the rendered words.
        groups: optional cluster column (e.g. account id): the bootstrap resamples
            clusters, not units, when one account has several renewals.
        folds: K of the cross-fitting.
        n_boot: bootstrap replicates of the interval.
        level: coverage of the interval, e.g. 0.9.
        trim: units with propensity outside [trim, 1 - trim] are outside the overlap.
        learner: nuisance models; "logistic" (spline logistic regression, the default: stable
            on a few hundred units) or "lightgbm" (small fixed trees, one thread).
        seed: folds, models and bootstrap draws; the same seed gives the same numbers.
        estimand: "att" (the default), the effect on the accounts that got the play: plays
            go to a minority of renewals, and the question is what the play did for them;
            only treated units without comparable untreated ones (propensity above
            1 - trim) are trimmed. "ate", the average effect over every unit in the overlap
            region [trim, 1 - trim], which trims most units when a play is rare.
    """
    _check(frame, treatment, outcome, covariates, groups, folds, trim)
    t = frame[treatment].to_numpy(dtype=float)
    y = frame[outcome].to_numpy(dtype=float)
    n, n_t = t.size, int(t.sum())
    n_c = n - n_t
    cluster = frame[groups].to_numpy() if groups is not None else np.arange(n)
    naive = _naive(t, y, cluster, n_boot=n_boot, level=level, seed=seed)
    fixed: dict[str, object] = {
        "play": play, "naive": naive, "n_units": n, "n_treated": n_t, "n_untreated": n_c,
        "trim": trim, "learner": learner, "folds": folds, "n_boot": n_boot, "seed": seed,
        "estimand": estimand,
    }  # fmt: skip
    result = partial(_result, level=level, fixed=fixed)

    # Each training part of the cross-fitting must hold both groups.
    if n_t < max(MIN_TREATED, folds) or n_c < max(MIN_UNTREATED, folds):
        return result(
            "too few",
            f"{play}: {n_t} treated and {n_c} untreated units; an estimate needs at least "
            f"{MIN_TREATED} of each. Wait for more renewals after the play, or pool it "
            "with a similar play.",
        )

    x = design(frame, covariates)
    e, mu0, mu1 = cross_fit(x, t, y, folds=folds, learner=learner, seed=seed)
    inside, n_t_in, n_c_in, bounds = _overlap(e, t, trim, estimand)
    counts: dict[str, Any] = {
        "n_treated_overlap": n_t_in,
        "n_untreated_overlap": n_c_in,
        "n_trimmed": int(n - inside.sum()),
    }
    if n_t_in < MIN_TREATED or n_c_in < MIN_UNTREATED:
        return result("no overlap", _no_overlap(play, n_t_in, n_t, n_c_in, n_c, bounds), **counts)

    effect_stat, se = _effect_score(t, y, e, mu0, mu1, inside, estimand)
    effect = bootstrap_many({"effect": effect_stat}, cluster, n_boot=n_boot, level=level,
                            seed=seed)["effect"]  # fmt: skip
    return result("ok", "", effect=effect, se=se, overlap=inside, **counts)


def _result(
    status: Status, reason: str, *, level: float, fixed: Mapping[str, object], **more: object
) -> PlayEffect:
    """The answer of :func:`estimate_effect`: the fields every answer has (``fixed``), and
    no estimate unless ``more`` gives one."""
    fields: dict[str, object] = {
        "effect": Interval(float("nan"), float("nan"), float("nan"), level),
        "se": float("nan"),
        "n_treated_overlap": 0,
        "n_untreated_overlap": 0,
        "n_trimmed": 0,
    } | more
    return PlayEffect(status=status, reason=reason, **fixed, **fields)  # type: ignore[arg-type]


def _naive(
    t: np.ndarray, y: np.ndarray, cluster: np.ndarray, *, n_boot: int, level: float, seed: int
) -> Interval:
    """The naive difference with its bootstrap interval; NaN unless both groups exist."""
    n_t = int(t.sum())
    n_c = t.size - n_t
    naive_stat = _naive_stat(t, y)
    return (
        bootstrap_many({"naive": naive_stat}, cluster, n_boot=n_boot, level=level, seed=seed)[
            "naive"
        ]
        if n_t and n_c
        else Interval(float("nan"), float("nan"), float("nan"), level)
    )


def _overlap(
    e: np.ndarray, t: np.ndarray, trim: float, estimand: Estimand
) -> tuple[np.ndarray, int, int, str]:
    """The units the estimate averages over, the treated and untreated among them, and the
    propensity rule in words."""
    if estimand == "att":
        # The treated need comparable untreated units, not the reverse: trim only where
        # the play was (almost) certain, and count as comparable the untreated units in
        # the treated's propensity range.
        inside = e <= 1.0 - trim
        floor = e[inside & (t == 1)].min() if (inside & (t == 1)).any() else 1.0
        n_t_in = int(t[inside].sum())
        n_c_in = int(((1 - t) * (inside & (e >= floor))).sum())
        bounds = f"at most {1 - trim:g}"
    else:
        inside = (e >= trim) & (e <= 1.0 - trim)
        n_t_in, n_c_in = int(t[inside].sum()), int((1 - t[inside]).sum())
        bounds = f"in [{trim:g}, {1 - trim:g}]"
    return inside, n_t_in, n_c_in, bounds


def _no_overlap(play: str, n_t_in: int, n_t: int, n_c_in: int, n_c: int, bounds: str) -> str:
    """Why there is no estimate when too few units are comparable."""
    return (
        f"{play}: only {n_t_in} of {n_t} treated and {n_c_in} of {n_c} untreated "
        f"units have a propensity {bounds}; an estimate needs "
        f"{MIN_TREATED} treated and {MIN_UNTREATED} untreated at similar risk. The play "
        "goes to accounts that have no untreated counterpart (or the reverse), so no "
        "comparison is honest; run it on some comparable accounts too, or randomise."
    )


def _effect_score(
    t: np.ndarray,
    y: np.ndarray,
    e: np.ndarray,
    mu0: np.ndarray,
    mu1: np.ndarray,
    inside: np.ndarray,
    estimand: Estimand,
) -> tuple[Callable[[np.ndarray | None], np.ndarray], float]:
    """The effect in points as a function of bootstrap weights over the units (``None``:
    the observed units), and its influence-function standard error."""
    n = t.size
    # Outside the overlap e may be 0 or 1 (a constant model): those scores are never used.
    e = np.clip(e, 1e-6, 1.0 - 1e-6)
    mask = inside.astype(float)
    if estimand == "att":
        # Doubly robust ATT with normalised weights (Moodie et al. 2018; Hajek form): the
        # treated's outcome residuals against mu0, minus the untreated's residuals
        # weighted by the odds of treatment e / (1 - e), each averaged with its weights.
        resid = (y - mu0) * 100.0
        wt = t * mask
        wc = (1 - t) * mask * e / (1.0 - e)

        def effect_stat(w: np.ndarray | None) -> np.ndarray:
            w = np.ones((1, n)) if w is None else np.atleast_2d(w)
            with np.errstate(invalid="ignore", divide="ignore"):
                return (w @ (wt * resid)) / (w @ wt) - (w @ (wc * resid)) / (w @ wc)

        tau = float(effect_stat(None)[0])
        # Influence of each unit on the ratio estimate, for the standard error.
        psi = wt * (resid - tau) / wt.mean() - wc * (resid - (wc @ resid) / wc.sum()) / wc.mean()
        se = float(np.std(psi[inside], ddof=1) / np.sqrt(inside.sum()))
    else:
        psi = (mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e)) * 100.0
        psi_in = np.where(inside, psi, 0.0)

        def effect_stat(w: np.ndarray | None) -> np.ndarray:
            w = np.ones((1, n)) if w is None else np.atleast_2d(w)
            with np.errstate(invalid="ignore", divide="ignore"):
                return (w @ psi_in) / (w @ mask)

        se = float(np.std(psi[inside], ddof=1) / np.sqrt(inside.sum()))
    return effect_stat, se


def describe(effect: PlayEffect) -> list[str]:
    """Plain words for a CS leader: one line, and a caveat line when the figure is uncertain.

    The effect is turned around to read as renewals: churn -8 points is "renewal odds +8
    points" ("odds" in its everyday sense: a change in the chance, in percentage points).
    """
    if not effect.ok:
        return [f"{effect.play}: no estimate ({effect.status}). {effect.reason}"]
    est, low, high = (-effect.effect.estimate, -effect.effect.high, -effect.effect.low)
    lines = [
        f"{effect.play}: renewal odds {_points(est)} points [{_points(low)}, {_points(high)}] "
        f"for accounts at similar risk, {effect.n_overlap:,} accounts "
        f"({effect.n_treated_overlap:,} with the play)"
    ]
    caveats = []
    if low <= 0.0 <= high:
        caveats.append("the interval includes no effect at all")
    if high - low > WIDE_POINTS:
        caveats.append(f"the interval is wider than {WIDE_POINTS:g} points")
    if caveats:
        lines.append(
            f"Uncertain: {' and '.join(caveats)}; treat it as unproven until more renewals resolve."
        )
    return lines


def _points(value: float) -> str:
    rounded = round(value)
    return "0" if rounded == 0 else f"{rounded:+d}"


def _naive_stat(t: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray | None], np.ndarray]:
    """Raw churn rate of the treated minus the untreated, in points, per weight row."""

    def stat(w: np.ndarray | None) -> np.ndarray:
        w = np.ones((1, t.size)) if w is None else np.atleast_2d(w)
        with np.errstate(invalid="ignore", divide="ignore"):
            treated = (w @ (t * y)) / (w @ t)
            untreated = (w @ ((1 - t) * y)) / (w @ (1 - t))
        return (treated - untreated) * 100.0

    return stat


def _check(
    frame: pd.DataFrame,
    treatment: str,
    outcome: str,
    covariates: Sequence[str],
    groups: str | None,
    folds: int,
    trim: float,
) -> None:
    """Bad input is an error naming the column and the rule (a refusal is not)."""
    wanted = [treatment, outcome, *covariates, *([groups] if groups else [])]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise ValueError(
            f"play effects: columns {missing} are not in the frame (it has "
            f"{list(frame.columns)[:12]}). Name the treatment, outcome and covariate columns."
        )
    if not covariates:
        raise ValueError(
            "play effects: no covariates given. Pass at least the model's point-in-time "
            "churn probability, or the estimate is the naive difference."
        )
    for col in (treatment, outcome):
        s = frame[col]
        values = (
            s.astype(float) if pd.api.types.is_bool_dtype(s) else pd.to_numeric(s, errors="coerce")
        )
        bad = ~values.isin([0.0, 1.0])
        if bad.any():
            raise ValueError(
                f"play effects: {col} must be 0/1 (or bool); {int(bad.sum())} rows are not "
                f"(e.g. {frame.loc[bad, col].head(3).tolist()}). Map it to 0/1 and drop rows "
                "whose renewal has not resolved."
            )
    if folds < 2:
        raise ValueError(f"play effects: folds must be at least 2 for cross-fitting, got {folds}")
    if not 0.0 <= trim < 0.5:
        raise ValueError(f"play effects: trim must be in [0, 0.5), got {trim}")
