"""Typed settings of training, tuning, calibration, the backtest and the champion gate.

Parsed once at the entry point as part of :class:`pipelines.config.ChurnConfig` (key
``model:`` in ``churn.yaml``) and passed down explicitly.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from features.config import Frozen, LabelConfig


class ModelConfig(Frozen):
    """How the learned health model is tuned, calibrated, backtested and promoted.

    Time-ordered folds
    ------------------
    A fold has a cut-off ``c``. Its training rows are the snapshots whose label was known
    before the cut-off (``label_known_at < c``) and, when ``purge_days`` is a number, whose
    ``as_of`` is also at least ``purge_days`` before it. Its validation rows are the
    snapshots taken on or after ``c`` (and before the next cut-off) whose label is known by
    the end of the data. See :mod:`models.folds`.

    ``purge_days=None`` (the default) purges each snapshot by its own label window, which is
    at most the label horizon (renewal mode: the largest ``lead_days``, since a snapshot's
    label is known ``lead_days`` after it; inactivity mode: ``horizon_days``): no training
    label window reaches the validation period, and no labelled row is dropped needlessly.
    A number adds a uniform gap on ``as_of`` (``purge_days=`` the horizon is the textbook
    purge: every training snapshot is a whole horizon before the cut-off).
    """

    trials: int = Field(20, ge=1, description="Optuna trials (the tuning budget)")
    tune_folds: int = Field(3, ge=1, description="time-ordered folds each trial is scored on")
    fold_step_days: int = Field(91, ge=7, description="days between tuning cut-offs")
    purge_days: int | None = Field(None, ge=0, description="see the class docstring")
    backtest_folds: int = Field(4, ge=1, description="K: rolling-origin cut-offs")
    backtest_step_days: int = Field(91, ge=7, description="days between backtest cut-offs")
    calibration_share: float = Field(
        0.2, gt=0.0, lt=0.6, description="latest share of snapshots that fits the calibrator"
    )
    monotone: Literal["auto", "on", "off"] = "auto"
    monotone_max_auc_drop: float = Field(
        0.005, ge=0.0, description="auto keeps the constraints unless ROC AUC drops more"
    )
    calibration: Literal["auto", "isotonic", "platt"] = "auto"
    champion_max_auc_drop: float = Field(0.005, ge=0.0, description="gate: ROC AUC may drop")
    champion_max_brier_rise: float = Field(0.002, ge=0.0, description="gate: Brier may rise")
    learning_rate: float = Field(0.05, gt=0.0, le=1.0, description="fixed while tuning")
    max_rounds: int = Field(1000, ge=10, description="boosting rounds before early stopping")
    early_stopping_rounds: int = Field(50, ge=5)
    seed: int = Field(7, description="unset in churn.yaml: the run's top-level seed")
    num_threads: int | None = Field(None, ge=1, description="None: the free cores")
    bands: tuple[float, float] = Field(
        (0.10, 0.25),
        description="churn probability at which an account turns yellow, then red "
        "(placeholder until the bands are fitted to a team's capacity)",
    )
    band_lead_days: int = Field(
        90, ge=0, description="'red/green N days before renewal' metrics use this lead"
    )

    @model_validator(mode="after")
    def _bands_ordered(self) -> ModelConfig:
        low, high = self.bands
        if not 0.0 < low < high < 1.0:
            raise ValueError(
                f"bands must be two probabilities 0 < yellow < red < 1, got {self.bands}; "
                "e.g. bands: [0.10, 0.25]"
            )
        return self


def label_horizon(labels: LabelConfig) -> int:
    """The longest time, in days, between a snapshot and the moment its label is known."""
    return max(labels.lead_days) if labels.label == "renewal" else labels.horizon_days
