"""The calibration methods, declared once: how each maps the trees' raw scores to
probabilities, how "auto" chooses among them, and how the calibration rows are weighted.

:data:`METHODS` holds one :class:`CalibrationMethod` per name of :data:`Method`
(isotonic regression and Platt scaling); :data:`Calibration` (a method, or ``"auto"``) is
what :class:`models.config.ModelConfig` and :class:`models.train.ChurnModel` accept, and
:func:`fit_calibrator`, :func:`blocked_predictions` and :func:`choose_calibration` read the
registry. Adding a method is one entry here (and its plain-number form in
:class:`models.scorer.Calibrator`, which the served model reads).

scikit-learn is imported only when an isotonic calibrator is fitted: the settings read this
module, and they load without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import pandas as pd

from models.metrics import brier

if TYPE_CHECKING:
    from sklearn.isotonic import IsotonicRegression

#: The calibration methods by name (each has an entry in :data:`METHODS`).
Method = Literal["isotonic", "platt"]
#: A method, or ``"auto"``: the method with the lower held-out Brier score on the
#: calibration rows (:func:`choose_calibration`).
Calibration = Literal["auto", Method]


class PlattCalibrator:
    """Logistic regression of the outcome on the log-odds of the raw score (Platt scaling).

    Two parameters fitted by Newton's method with a tiny ridge (1e-6) so that separable
    calibration rows still converge; much faster than a general solver on one feature.
    Row weights (recency) enter the likelihood as frequency weights.
    """

    def fit(
        self, raw: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None
    ) -> PlattCalibrator:
        X = np.column_stack([np.ones(raw.size), _logit(raw)])
        y = np.asarray(y, float)
        w = np.ones(raw.size) if weight is None else np.asarray(weight, float)
        coef = np.zeros(2)
        for _ in range(50):
            p = 1.0 / (1.0 + np.exp(-(X @ coef)))
            grad = X.T @ (w * (p - y)) + 1e-6 * coef
            hess = (X * (w * p * (1 - p))[:, None]).T @ X + 1e-6 * np.eye(2)
            step = np.linalg.solve(hess, grad)
            coef -= step
            if np.abs(step).max() < 1e-10:
                break
        self.intercept_, self.slope_ = float(coef[0]), float(coef[1])
        return self

    def predict(self, raw: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.intercept_ + self.slope_ * _logit(raw))))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _isotonic() -> IsotonicRegression:
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")


def _fit_isotonic(raw: np.ndarray, y: np.ndarray, weight: np.ndarray | None) -> Any:
    return _isotonic().fit(raw, y, sample_weight=weight)


def _fit_platt(raw: np.ndarray, y: np.ndarray, weight: np.ndarray | None) -> Any:
    return PlattCalibrator().fit(raw, y, weight)


@dataclass(frozen=True)
class CalibrationMethod:
    """One way to map raw scores to probabilities.

    ``fit(raw, y, weight)`` returns a fitted calibrator with ``predict(raw)``. ``tie_rank``
    orders the methods whose held-out Brier scores are equal when "auto" chooses (lower
    wins: the simpler method).
    """

    name: Method
    fit: Callable[[np.ndarray, np.ndarray, np.ndarray | None], Any]
    tie_rank: int


#: Every calibration method, in the order "auto" tries them. Isotonic is more flexible and
#: needs more rows; Platt wins on small folds and on ties.
METHODS: dict[str, CalibrationMethod] = {
    m.name: m
    for m in (
        CalibrationMethod("isotonic", _fit_isotonic, tie_rank=1),
        CalibrationMethod("platt", _fit_platt, tie_rank=0),
    )
}
if set(METHODS) != set(get_args(Method)):
    raise ImportError(
        f"models.calibration.METHODS declares {sorted(METHODS)} but Method names "
        f"{sorted(get_args(Method))}: declare each method once in both"
    )


def fit_calibrator(
    raw: np.ndarray, y: np.ndarray, method: str, weight: np.ndarray | None = None
) -> Any:
    """An isotonic or Platt calibrator fitted on raw scores ``raw`` and outcomes ``y``.

    A name outside :data:`METHODS` fits Platt, as it always has (the settings admit only
    the declared names).
    """
    return METHODS.get(method, METHODS["platt"]).fit(raw, y, weight)


def is_decreasing(calibrator: Any) -> bool:
    """Whether a fitted calibrator maps higher raw scores to lower probabilities (a Platt
    calibrator with a negative slope; isotonic ones are increasing by construction)."""
    return isinstance(calibrator, PlattCalibrator) and calibrator.slope_ < 0


def recency_weights(known_at: pd.Series, half_life_days: int | None) -> np.ndarray:
    """Weights halving every ``half_life_days`` before the latest outcome (``None``: all 1).

    A calibrator fitted with them follows the most recent outcomes: when the churn rate
    drifts, the probabilities track the latest renewals rather than the average of the
    calibration window.
    """
    if half_life_days is None or known_at.empty:
        return np.ones(len(known_at))
    age = (known_at.max() - known_at).dt.total_seconds().to_numpy() / 86_400.0
    return np.power(0.5, age / half_life_days)


def blocked_predictions(
    raw: np.ndarray, y: np.ndarray, method: str, weight: np.ndarray, blocks: int = 5
) -> np.ndarray:
    """Each contiguous block of ``raw`` (in time order) calibrated by the other blocks."""
    idx = np.array_split(np.arange(raw.size), blocks)
    preds = np.empty(raw.size)
    for held in idx:
        rest = np.setdiff1d(np.arange(raw.size), held)
        if np.unique(y[rest]).size < 2:
            preds[held] = np.average(y[rest], weights=weight[rest]) if rest.size else np.nan
            continue
        preds[held] = fit_calibrator(raw[rest], y[rest], method, weight[rest]).predict(raw[held])
    return np.clip(preds, 0.0, 1.0)


def choose_calibration(
    raw: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, blocks: int = 5
) -> tuple[str, np.ndarray]:
    """The calibrator with the lower (weighted) Brier score when each time block is held out
    in turn, and that calibrator's held-out probabilities.

    ``raw`` must be in time order: blocks are contiguous, so the choice is made out of
    sample. Isotonic is more flexible and needs more rows; Platt wins on small folds and
    on ties. Every method of :data:`METHODS` is tried; equal scores go to the lower
    ``tie_rank``.
    """
    w = np.ones(raw.size) if weight is None else np.asarray(weight, float)
    preds = {m: blocked_predictions(raw, y, m, w, blocks) for m in METHODS}
    scores = {m: float(brier(y, p, w)) for m, p in preds.items()}
    method = min(scores, key=lambda m: (scores[m], METHODS[m].tie_rank))
    return method, preds[method]
