"""The learned health model: LightGBM on the declared features, calibrated out of time.

:class:`ChurnModel` follows the scikit-learn estimator contract, with ``fit(frame,
features)`` in place of ``fit(X, y)`` because the label and the point-in-time columns
travel in the frame. It learns in two steps:

1. trees on the snapshots whose label was known before the latest ``calibration_share``
   of snapshots (a purged, out-of-time split), then a calibrator (isotonic or Platt, see
   :mod:`models.calibration`) on the trees' scores of those latest snapshots, which the
   trees never saw. When that slice or the rows before it hold too few churned or retained
   outcomes (a young book), the calibrator is fitted on out-of-fold scores of folds of
   held-out accounts instead (cross-fitted), and the model records which;
2. the trees again on all labelled history with the same number of rounds; the
   calibrator of step 1 maps their scores to probabilities.

The calibration rows are weighted by recency (``calibration_half_life_days``), so the
probabilities follow the latest outcomes when the churn rate drifts.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from features.catalog import Feature
from features.errors import ChurnWarning
from models.calibration import (
    Calibration,
    blocked_predictions,
    choose_calibration,
    fit_calibrator,
    is_decreasing,
    recency_weights,
)
from models.columns import categories_of, check_columns, check_training_frame, matrix
from models.config import ModelConfig
from models.folds import (
    Fold,
    TooFewLabels,
    account_folds,
    count_outcomes,
    latest_split,
    outcome_ids,
)

#: Tree parameters used when none are tuned (the centre of the search space of ``tune``).
DEFAULT_PARAMS: dict[str, Any] = {
    "num_leaves": 15,
    "min_child_samples": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
}


def lgb_params(
    params: Mapping[str, Any] | None,
    features: Sequence[Feature],
    *,
    monotone: bool,
    learning_rate: float,
    seed: int,
    num_threads: int,
) -> dict[str, Any]:
    """Full LightGBM parameters: tuned ones, constraints and the settings that fix the result.

    ``deterministic`` and ``force_row_wise`` with a fixed ``num_threads`` make the same seed
    give the same trees, byte for byte, on the same machine.
    """
    out: dict[str, Any] = {
        "objective": "binary",
        "metric": "binary_logloss",
        "learning_rate": learning_rate,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": num_threads,
        "verbosity": -1,
        # Tuning changes min_child_samples between trials on the same rows.
        "feature_pre_filter": False,
        **DEFAULT_PARAMS,
        **(params or {}),
    }
    if monotone:
        out["monotone_constraints"] = [0 if f.categorical else f.monotone for f in features]
        # "intermediate" loses less accuracy than "basic" at a small cost in time.
        out["monotone_constraints_method"] = "intermediate"
    return out


def train_booster(
    X: pd.DataFrame,
    y: np.ndarray,
    params: Mapping[str, Any],
    rounds: int,
    valid: tuple[pd.DataFrame, np.ndarray] | None = None,
    early_stopping_rounds: int = 50,
) -> lgb.Booster:
    """Boost up to ``rounds`` trees; with ``valid``, stop early on its log loss."""
    train_set = lgb.Dataset(X, label=y, categorical_feature="auto", free_raw_data=True)
    callbacks: list[Callable[..., Any]] = []
    valid_sets: list[lgb.Dataset] = []
    if valid is not None:
        valid_sets = [lgb.Dataset(valid[0], label=valid[1], reference=train_set)]
        callbacks = [lgb.early_stopping(early_stopping_rounds, verbose=False)]
    return lgb.train(
        dict(params), train_set, num_boost_round=rounds, valid_sets=valid_sets,
        callbacks=callbacks,
    )  # fmt: skip


def out_of_fold(
    X: pd.DataFrame,
    y: np.ndarray,
    folds: Sequence[Fold],
    params: Mapping[str, Any],
    rounds: int,
    early_stopping_rounds: int,
    stop_early: bool = True,
) -> tuple[np.ndarray, list[int], list[float]]:
    """Boost on each fold's training rows and score its validation rows.

    Returns the out-of-fold raw scores (NaN outside the validation rows), the rounds each
    fold's trees score with, and, stopping early on the validation rows, each fold's best
    validation log loss (empty otherwise).
    """
    raw = np.full(len(y), np.nan)
    iterations: list[int] = []
    losses: list[float] = []
    for fold in folds:
        booster = train_booster(
            X[fold.train], y[fold.train], params, rounds=rounds,
            valid=(X[fold.valid], y[fold.valid]) if stop_early else None,
            early_stopping_rounds=early_stopping_rounds,
        )  # fmt: skip
        best = max(booster.best_iteration, 1) if stop_early else rounds
        if stop_early:
            losses.append(float(booster.best_score["valid_0"]["binary_logloss"]))
        iterations.append(best)
        raw[fold.valid] = booster.predict(X[fold.valid], num_iteration=best)
    return raw, iterations, losses


def model_from_config(
    cfg: ModelConfig,
    *,
    params: Mapping[str, Any] | None = None,
    n_estimators: int | None = None,
    monotone: bool = True,
    num_threads: int = 1,
) -> ChurnModel:
    """A :class:`ChurnModel` with the settings of ``cfg`` and the given tuned choices."""
    return ChurnModel(
        params=params, n_estimators=n_estimators, monotone=monotone,
        calibration=cfg.calibration, calibration_share=cfg.calibration_share,
        calibration_half_life_days=cfg.calibration_half_life_days, purge_days=cfg.purge_days,
        learning_rate=cfg.learning_rate, max_rounds=cfg.max_rounds,
        early_stopping_rounds=cfg.early_stopping_rounds, min_churned=cfg.min_churned,
        min_retained=cfg.min_retained, cv_folds=cfg.cv_folds, seed=cfg.seed,
        num_threads=num_threads,
    )  # fmt: skip


class ChurnModel(BaseEstimator):
    """Calibrated LightGBM churn probability from the declared features.

    Parameters
    ----------
    params
        Tree parameters (``num_leaves``, ``min_child_samples``, ...), e.g. from
        :func:`models.tune.tune`; ``None``: :data:`DEFAULT_PARAMS`.
    n_estimators
        Boosting rounds. ``None``: early stopping on the calibration rows (at most
        ``max_rounds``).
    monotone
        Constrain each feature's effect to its declared healthy direction
        (:attr:`features.catalog.Feature.monotone`): more of a "higher is healthy" feature
        never raises the predicted risk.
    calibration
        ``"isotonic"``, ``"platt"`` or ``"auto"`` (lower held-out Brier on the calibration
        rows, see :func:`models.calibration.choose_calibration`).
    calibration_share
        The latest share of snapshots that fits the calibrator (see
        :func:`models.folds.latest_split`).
    calibration_half_life_days
        Recency weighting of the calibration rows (:func:`models.calibration.recency_weights`).
    purge_days
        Extra purge before the calibration cut-off (:mod:`models.folds`).
    min_churned, min_retained, cv_folds
        The out-of-time calibration slice is used only when it and the rows before it each
        hold this many churned and retained outcomes; otherwise the calibrator is fitted on
        out-of-fold scores of ``cv_folds`` folds of held-out accounts (cross-fitted).
    refit
        Refit the trees on all labelled rows after calibrating (always, when cross-fitted).
    seed, num_threads
        Same seed and thread count, same model string.

    After ``fit``: ``calibration_`` (method), ``calibration_kind_`` (``"out_of_time"`` or
    ``"cross_fitted"``) and ``calibration_note_`` (why not out of time), the rows that fitted
    the calibrator (``calibration_rows_``, index labels of the frame), and their held-out
    calibrated probabilities (``calibration_probability_``, with ``calibration_label_``):
    scores out of sample for the trees and for the calibrator, from which band thresholds
    can be chosen.
    """

    def __init__(
        self,
        params: Mapping[str, Any] | None = None,
        n_estimators: int | None = None,
        monotone: bool = True,
        calibration: Calibration = "auto",
        calibration_share: float = 0.2,
        calibration_half_life_days: int | None = None,
        purge_days: int | None = None,
        learning_rate: float = 0.05,
        max_rounds: int = 1000,
        early_stopping_rounds: int = 50,
        min_churned: int = 30,
        min_retained: int = 30,
        cv_folds: int = 4,
        refit: bool = True,
        seed: int = 7,
        num_threads: int = 1,
    ) -> None:
        self.params = params
        self.n_estimators = n_estimators
        self.monotone = monotone
        self.calibration = calibration
        self.calibration_share = calibration_share
        self.calibration_half_life_days = calibration_half_life_days
        self.purge_days = purge_days
        self.learning_rate = learning_rate
        self.max_rounds = max_rounds
        self.early_stopping_rounds = early_stopping_rounds
        self.min_churned = min_churned
        self.min_retained = min_retained
        self.cv_folds = cv_folds
        self.refit = refit
        self.seed = seed
        self.num_threads = num_threads

    def fit(self, frame: pd.DataFrame, features: Sequence[Feature]) -> ChurnModel:
        """Learn from the labelled rows of ``frame``; only the ``features`` columns are used.

        Rows with a missing ``label`` are ignored. Any other column (ids, dates, a column
        that peeks into the future) never reaches the trees.
        """
        frame, X, y = self._labelled(frame, features)
        params = lgb_params(
            self.params, features, monotone=self.monotone, learning_rate=self.learning_rate,
            seed=self.seed, num_threads=self.num_threads,
        )  # fmt: skip
        self.lgb_params_ = params

        first, rounds, cal, raw, cut = self._calibration_scores(frame, X, y, params)
        self._calibrate(frame, y, cal, raw, cut)
        self.n_estimators_ = rounds
        if self.refit or first is None:
            self.booster_ = train_booster(X, y, params, rounds=rounds)
        else:
            self.booster_ = first
        if is_decreasing(self.calibrator_) and self.monotone:
            warnings.warn(
                "the Platt calibrator has a negative slope: the trees rank the calibration "
                "rows worse than chance, so the monotone constraints do not hold after "
                "calibration; check the features and the history length",
                ChurnWarning,
                stacklevel=2,
            )
        return self

    def _labelled(
        self, frame: pd.DataFrame, features: Sequence[Feature]
    ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
        """The labelled rows in time order, their model matrix and labels; remembers the
        features and the categorical levels seen."""
        check_training_frame(frame, features)
        frame = frame.loc[frame["label"].notna()]
        if frame.empty:
            raise TooFewLabels("the training frame has no labelled rows (column 'label')")
        order = np.argsort(frame["as_of"].to_numpy(), kind="stable")
        frame = frame.iloc[order]
        self.features_ = tuple(features)
        self.feature_names_in_ = np.array([f.name for f in features], dtype=object)
        self.categories_ = categories_of(frame, features)
        X = matrix(frame, features, self.categories_)
        y = frame["label"].to_numpy(dtype=np.int64)
        if np.unique(y).size < 2:
            raise TooFewLabels(
                f"all {len(y):,} labelled rows have label {int(y[0])}: a churn model needs "
                "churned and retained outcomes; add history or accounts"
            )
        return frame, X, y

    def _calibration_scores(
        self, frame: pd.DataFrame, X: pd.DataFrame, y: np.ndarray, params: Mapping[str, Any]
    ) -> tuple[lgb.Booster | None, int, np.ndarray, np.ndarray, pd.Timestamp]:
        """Step 1: the raw scores the calibrator is fitted on, out of time when the latest
        slice and the rows before it hold enough outcomes, else cross-fitted.

        Returns the out-of-time trees (``None`` when cross-fitted), the rounds, the mask of
        the calibration rows, their raw scores and the calibration cut-off; records which
        kind (``calibration_kind_``) and why (``calibration_note_``).
        """
        fit_rows, held, cut = latest_split(frame, self.calibration_share, self.purge_days)
        ids = outcome_ids(frame)
        short = [
            f"{part} {why}"
            for part, mask in (("before", fit_rows), ("after", held))
            if (why := count_outcomes(frame, mask, ids).short_of(self.min_churned,
                                                                 self.min_retained))
        ]  # fmt: skip
        first = None
        if not short:
            self.calibration_kind_ = "out_of_time"
            self.calibration_note_ = f"the snapshots from {cut:%Y-%m-%d} on"
            first = train_booster(
                X[fit_rows], y[fit_rows], params,
                rounds=self.n_estimators or self.max_rounds,
                valid=None if self.n_estimators else (X[held], y[held]),
                early_stopping_rounds=self.early_stopping_rounds,
            )  # fmt: skip
            rounds = self.n_estimators or max(first.best_iteration, 1)
            cal = held
            raw = np.asarray(first.predict(X[held], num_iteration=rounds), dtype=float)
        else:
            self.calibration_kind_ = "cross_fitted"
            self.calibration_note_ = (
                f"no out-of-time slice: the rows {' and '.join(short)} of {cut:%Y-%m-%d}"
            )
            raw_all, iterations, _ = out_of_fold(
                X, y, account_folds(frame, self.cv_folds, self.seed), params,
                rounds=self.n_estimators or self.max_rounds,
                early_stopping_rounds=self.early_stopping_rounds,
                stop_early=self.n_estimators is None,
            )  # fmt: skip
            rounds = self.n_estimators or max(round(float(np.mean(iterations))), 1)
            cal = ~np.isnan(raw_all)
            raw = raw_all[cal]
        return first, rounds, cal, raw, cut

    def _calibrate(
        self,
        frame: pd.DataFrame,
        y: np.ndarray,
        cal: np.ndarray,
        raw: np.ndarray,
        cut: pd.Timestamp,
    ) -> None:
        """Choose (``"auto"``) and fit the calibrator on the calibration rows ``cal``, and
        keep their held-out calibrated probabilities."""
        weight = recency_weights(frame["label_known_at"][cal], self.calibration_half_life_days)
        method: str = self.calibration
        if method == "auto":
            method, held_out = choose_calibration(raw, y[cal], weight)
        else:
            held_out = blocked_predictions(raw, y[cal], method, weight)
        self.calibration_ = method
        self.calibrator_ = fit_calibrator(raw, y[cal], method, weight)
        self.calibration_cutoff_ = cut
        self.calibration_rows_ = frame.index[cal]
        self.calibration_probability_ = held_out
        self.calibration_label_ = y[cal]

    def _check(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not hasattr(self, "booster_"):
            raise ValueError("this ChurnModel is not fitted yet: call fit(frame, features) first")
        check_columns(frame, list(self.feature_names_in_), at_fit=False)
        return matrix(frame, self.features_, self.categories_)

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """The trees' uncalibrated churn probability for each row of ``frame``."""
        X = self._check(frame)
        return np.asarray(self.booster_.predict(X, num_iteration=self.n_estimators_), float)

    def predict_risk(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probability for each row of ``frame`` (1-D)."""
        raw = self.predict_raw(frame)
        return np.clip(self.calibrator_.predict(raw), 0.0, 1.0)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """scikit-learn's shape: column 0 the probability of renewal, column 1 of churn."""
        p = self.predict_risk(frame)
        return np.column_stack([1 - p, p])

    @property
    def model_string(self) -> str:
        """The trees as LightGBM's text format (identical for identical models)."""
        return self.booster_.model_to_string(num_iteration=self.n_estimators_)
