"""Typed settings of training, tuning, calibration, the backtest and the champion gate.

Parsed once at the entry point as part of :class:`pipelines.config.ChurnConfig` (key
``model:`` in ``churn.yaml``) and passed down explicitly.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from features.config import Frozen, LabelConfig
from models.calibration import Calibration


class ModelConfig(Frozen):
    """How the learned health model is tuned, calibrated, backtested and promoted.

    Time-ordered folds
    ------------------
    A fold has a cut-off ``c``. Its training rows are the snapshots whose label was known
    before the cut-off (``label_known_at < c``) and, when ``purge_days`` is a number, whose
    ``as_of`` is also at least ``purge_days`` before it. Its validation rows are the
    snapshots taken on or after ``c`` (and before the next cut-off) whose label is known by
    the end of the data. A fold is used only when both parts hold at least ``min_churned``
    churned and ``min_retained`` retained outcomes; when no cut-off qualifies, ``cv_folds``
    folds of held-out accounts stand in (not out of time, and said so). See
    :mod:`models.folds`.

    ``purge_days=None`` (the default) purges each snapshot by its own label window, which is
    at most the label horizon (renewal mode: the largest ``lead_days``, since a snapshot's
    label is known ``lead_days`` after it; inactivity mode: ``horizon_days``): no training
    label window reaches the validation period, and no labelled row is dropped needlessly.
    A number adds a uniform gap on ``as_of`` (``purge_days=`` the horizon is the textbook
    purge: every training snapshot is a whole horizon before the cut-off).

    Nested evaluation
    -----------------
    Each backtest fold re-runs the whole training procedure (:mod:`models.procedure`) on the
    rows known before its cut-off: tuning with ``backtest_trials`` trials (warm-started from
    the previous fold), the number of rounds, the monotone choice, the calibrator and the
    band thresholds. The final model runs the same procedure on all history with
    ``trials``.
    """

    trials: int = Field(20, ge=1, description="Optuna trials of the final model")
    backtest_trials: int = Field(
        8, ge=1, description="Optuna trials per backtest fold (1: the warm start only)"
    )
    tune_folds: int = Field(3, ge=1, description="time-ordered folds each trial is scored on")
    fold_step_days: int = Field(91, ge=7, description="days between tuning cut-offs")
    purge_days: int | None = Field(None, ge=0, description="see the class docstring")
    backtest_folds: int = Field(4, ge=1, description="K: rolling-origin cut-offs")
    backtest_step_days: int = Field(91, ge=7, description="days between backtest cut-offs")
    min_churned: int = Field(
        30, ge=5, description="churned outcomes each part of a fold must hold to be used"
    )
    min_retained: int = Field(
        30, ge=5, description="retained outcomes each part of a fold must hold to be used"
    )
    cv_folds: int = Field(
        4, ge=2, le=20, description="folds of held-out accounts when no time fold qualifies"
    )
    calibration_share: float = Field(
        0.2, gt=0.0, lt=0.6, description="latest share of snapshots that fits the calibrator"
    )
    calibration_half_life_days: int | None = Field(
        180,
        ge=7,
        description="calibration rows weigh half as much per this many days before the latest "
        "outcome, so the probabilities follow a drifting churn rate; null: equal weights",
    )
    monotone: Literal["auto", "on", "off"] = "auto"
    monotone_max_auc_drop: float = Field(
        0.005, ge=0.0, description="auto keeps the constraints unless ROC AUC drops more"
    )
    calibration: Calibration = "auto"
    learning_rate: float = Field(0.05, gt=0.0, le=1.0, description="fixed while tuning")
    max_rounds: int = Field(1000, ge=10, description="boosting rounds before early stopping")
    early_stopping_rounds: int = Field(50, ge=5)
    seed: int = Field(7, description="unset in churn.yaml: the run's top-level seed")
    num_threads: int | None = Field(None, ge=1, description="None: the free cores")
    band_lead_days: int = Field(
        90, ge=0, description="'red/green N days before renewal' metrics use this lead"
    )
    bootstrap: int = Field(
        500, ge=0, description="bootstrap replicates (resampling accounts) per interval"
    )
    interval_level: float = Field(0.95, gt=0.5, lt=1.0, description="coverage of intervals")


def label_horizon(labels: LabelConfig) -> int:
    """The longest time, in days, between a snapshot and the moment its label is known."""
    return max(labels.lead_days) if labels.label == "renewal" else labels.horizon_days
