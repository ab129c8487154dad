"""The training procedure: every choice a model needs, made from the rows it is given.

:func:`train_procedure` is what ``churn train`` does to the whole history, and what each
backtest fold does to the rows known before its cut-off (:mod:`models.backtest`), so that
a backtest measures the procedure as it would have run then, not a model whose settings
were chosen with a look at the rows it is scored on. From the rows it is given, and only
from them, it

1. lays the tuning folds: out-of-time folds when the rows allow
   (:func:`models.folds.plan_folds`), else folds of held-out accounts;
2. tunes the tree parameters and the number of rounds with Optuna on those folds
   (:func:`models.tune.tune`, warm-started from a previous answer when given);
3. decides whether to keep the monotone constraints (``monotone: auto``) on the same folds;
4. fits the trees and the calibrator, choosing isotonic or Platt on held-out calibration
   rows (:class:`models.train.ChurnModel`: an out-of-time slice, or cross-fitted);
5. chooses the band thresholds from the calibration rows' held-out probabilities
   (:func:`models.bands.thresholds_for`).

:attr:`Trained.rows_used` lists every row any of these steps read, which is what lets a
test prove that no backtest fold's choices saw its validation period.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd

from features.catalog import Feature
from features.progress import Progress
from models.bands import BandConfig, thresholds_for
from models.columns import check_training_frame
from models.config import ModelConfig
from models.folds import FoldPlan, plan_folds
from models.train import ChurnModel, model_from_config
from models.tune import TuneResult, choose_monotone, tune


@dataclass(frozen=True)
class Trained:
    """A fitted model and what the procedure chose for it, from which rows.

    ``thresholds`` are (yellow, red); ``monotone_auc`` holds the out-of-fold ROC AUC of
    both variants when ``monotone`` was decided ("auto"), else is empty; ``rows_used``
    holds the index labels of every row a choice read.
    """

    model: ChurnModel
    tuned: TuneResult
    plan: FoldPlan
    monotone: bool
    monotone_auc: dict[str, float]
    thresholds: tuple[float, float]
    rows_used: pd.Index

    @property
    def choices(self) -> dict[str, Any]:
        """The choices as plain values (for fold tables and MLflow)."""
        yellow, red = self.thresholds
        return {
            "params": dict(self.tuned.params),
            "n_estimators": int(self.model.n_estimators_),
            "monotone": bool(self.monotone),
            "calibration": self.model.calibration_,
            "calibration_kind": self.model.calibration_kind_,
            "tuning_kind": self.plan.kind,
            "tuning_folds": len(self.plan.folds),
            "yellow": float(yellow),
            "red": float(red),
        }


def train_procedure(
    frame: pd.DataFrame,
    features: Sequence[Feature],
    cfg: ModelConfig,
    bands: BandConfig,
    *,
    trials: int,
    warm_start: Mapping[str, Any] | None = None,
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str = "churn",
    num_threads: int = 1,
    progress: Progress = None,
) -> Trained:
    """Tune, decide the constraints, fit, calibrate and band, from the labelled rows of
    ``frame`` alone (see the module docstring). Index labels of ``frame`` are kept in
    :attr:`Trained.rows_used`.

    Raises :class:`models.folds.TooFewLabels` (a user error: exit 2 at the CLI) when the
    rows hold fewer churned or retained outcomes than ``cfg.min_churned`` /
    ``cfg.min_retained``.
    """
    check_training_frame(frame, features)
    rows = frame.loc[frame["label"].notna()]
    flat = rows.reset_index(drop=True)  # the folds' masks number these rows from 0
    plan = plan_folds(
        flat, cfg.tune_folds, cfg.fold_step_days, cfg.purge_days,
        min_churned=cfg.min_churned, min_retained=cfg.min_retained, cv_folds=cfg.cv_folds,
        seed=cfg.seed,
    )  # fmt: skip
    tuned = tune(
        flat, features, cfg, plan.folds, monotone=cfg.monotone != "off",
        storage=storage, study_name=study_name, n_trials=trials, warm_start=warm_start,
        num_threads=num_threads, progress=progress,
    )  # fmt: skip
    monotone_auc: dict[str, float] = {}
    if cfg.monotone == "auto":
        if progress is not None:
            progress("monotone constraints", 0.9)
        monotone, monotone_auc = choose_monotone(
            flat, features, cfg, plan.folds, tuned.params, num_threads, tuned.best_raw
        )
    else:
        monotone = cfg.monotone == "on"
    if progress is not None:
        progress("fitting and calibrating", 0.95)
    model = model_from_config(
        cfg, params=tuned.params, n_estimators=tuned.n_estimators, monotone=monotone,
        num_threads=num_threads,
    ).fit(rows, features)  # fmt: skip
    thresholds = thresholds_for(model.calibration_probability_, model.calibration_label_, bands)
    # The trees are refitted on every given row; tuning and calibration read subsets of them.
    used = rows.index.union(rows.index[tuned.rows_used]).union(model.calibration_rows_)
    return Trained(
        model=model,
        tuned=tuned,
        plan=plan,
        monotone=monotone,
        monotone_auc=monotone_auc,
        thresholds=thresholds,
        rows_used=used,
    )
