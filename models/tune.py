"""Tuning: Optuna's seeded TPE over the folds it is given, with early stopping in each trial.

A trial's value is the mean validation log loss of the raw trees over the folds; its best
iteration per fold is kept so the final model is boosted for the mean of those. The folds
come from the rows the caller may use (:mod:`models.procedure` passes the rows known
before a backtest cut-off, or all of history for the final model), so tuning never reads
a row it is later evaluated on.

The first trial is a known-good point: the previous fold's best parameters when given
(``warm_start``: successive backtest folds tune on nested histories, so the last answer is
a good first guess), else :data:`models.train.DEFAULT_PARAMS`. A study kept in an Optuna
storage resumes: re-running with the same study name continues up to the trial budget.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd

from features.catalog import Feature
from features.progress import Progress
from models.columns import categories_of, matrix
from models.config import ModelConfig
from models.folds import Fold, rows_of
from models.metrics import roc_auc
from models.train import DEFAULT_PARAMS, lgb_params, out_of_fold

#: The settings that change a trial's value: a study is only resumed when they are equal.
#: The budget (``trials``) is not among them, so raising it continues the same study.
STUDY_SETTINGS = ("tune_folds", "fold_step_days", "purge_days", "learning_rate", "max_rounds",
                  "early_stopping_rounds", "seed", "monotone", "min_churned", "min_retained",
                  "cv_folds")  # fmt: skip
#: The parameters a trial draws (``bagging_freq`` is fixed at 1).
SEARCHED = ("num_leaves", "min_child_samples", "feature_fraction", "bagging_fraction",
            "lambda_l2")  # fmt: skip


@dataclass(frozen=True)
class TuneResult:
    """The chosen tree parameters and how the study got there.

    ``n_estimators`` is the mean best iteration over the folds of the best trial;
    ``trials`` is one row per trial (number, value, state, parameters, best iterations);
    ``rows_used`` marks the rows of the tuned frame any trial read; ``best_raw`` holds the
    best trial's out-of-fold raw scores when that trial ran in this call (``None`` when it
    was resumed from storage).
    """

    params: dict[str, Any]
    n_estimators: int
    best_value: float
    study_name: str
    trials: pd.DataFrame
    rows_used: np.ndarray
    best_raw: np.ndarray | None = None


def search_space(trial: optuna.trial.BaseTrial) -> dict[str, Any]:
    """The tree parameters a trial draws (the learning rate stays fixed, see ModelConfig)."""
    return {
        "num_leaves": trial.suggest_int("num_leaves", 4, 64, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 10, 400, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "bagging_freq": 1,
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
    }


@dataclass(frozen=True)
class FoldResult:
    """Out-of-fold raw scores of one parameter set: per fold log loss and best iteration."""

    log_loss: list[float]
    iterations: list[int]
    raw: np.ndarray  # NaN outside the folds' validation rows


def cross_validate(
    X: pd.DataFrame,
    y: np.ndarray,
    folds: Sequence[Fold],
    params: Mapping[str, Any],
    cfg: ModelConfig,
) -> FoldResult:
    """Boost on each fold's training rows, stopping early on its validation rows."""
    raw, iterations, losses = out_of_fold(
        X, y, folds, params, cfg.max_rounds, cfg.early_stopping_rounds
    )
    return FoldResult(losses, iterations, raw)


def tune(
    frame: pd.DataFrame,
    features: Sequence[Feature],
    cfg: ModelConfig,
    folds: Sequence[Fold],
    *,
    monotone: bool = True,
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str = "churn",
    n_trials: int | None = None,
    warm_start: Mapping[str, Any] | None = None,
    num_threads: int = 1,
    progress: Progress = None,
) -> TuneResult:
    """Search tree parameters on ``folds`` (boolean masks over the rows of ``frame``).

    Parameters
    ----------
    storage
        An Optuna storage or URL such as ``sqlite:///mlruns/optuna.db``; ``None`` keeps the
        study in memory.
    study_name
        Trials already in the storage under this name count towards ``n_trials``, so an
        interrupted tuning resumes instead of starting over. Name the study after the data
        and settings (see :func:`pipelines.training.run_training`) so unrelated runs do not mix.
    n_trials
        The budget; ``None``: ``cfg.trials``. At least one trial (the warm start) runs.
    warm_start
        Parameters to try first (e.g. the previous fold's best).
    """
    X = matrix(frame, features, categories_of(frame, features))
    y = frame["label"].to_numpy(dtype=np.int64)
    budget = max(cfg.trials if n_trials is None else n_trials, 1)
    raw_of: dict[int, np.ndarray] = {}  # out-of-fold scores of this call's trials

    def objective(trial: optuna.Trial) -> float:
        params = lgb_params(
            search_space(trial), features, monotone=monotone,
            learning_rate=cfg.learning_rate, seed=cfg.seed, num_threads=num_threads,
        )  # fmt: skip
        result = cross_validate(X, y, folds, params, cfg)
        raw_of[trial.number] = result.raw
        trial.set_user_attr("best_iterations", result.iterations)
        trial.set_user_attr("fold_log_loss", result.log_loss)
        return float(np.mean(result.log_loss))

    study = _run_study(objective, cfg, storage, study_name, budget, warm_start, progress)
    best = study.best_trial
    params = search_space(optuna.trial.FixedTrial(best.params))
    return TuneResult(
        params=params,
        n_estimators=round(float(np.mean(best.user_attrs["best_iterations"]))),
        best_value=float(best.value) if best.value is not None else float("nan"),
        study_name=study_name,
        trials=trials_table(study),
        rows_used=rows_of(folds),
        best_raw=raw_of.get(best.number),
    )


def _run_study(
    objective: Callable[[optuna.Trial], float],
    cfg: ModelConfig,
    storage: str | optuna.storages.BaseStorage | None,
    study_name: str,
    budget: int,
    warm_start: Mapping[str, Any] | None,
    progress: Progress,
) -> optuna.Study:
    """Create or resume the study and run the trials it lacks up to ``budget``; a new study
    tries ``warm_start`` (else :data:`models.train.DEFAULT_PARAMS`) first."""
    previous = optuna.logging.get_verbosity()
    # Optuna logs every trial at INFO; the caller shows progress instead.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            direction="minimize",
            sampler=optuna.samplers.TPESampler(seed=cfg.seed),
            load_if_exists=True,
        )
        done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        remaining = max(budget - done, 0)
        if not study.trials:
            first = warm_start or DEFAULT_PARAMS
            study.enqueue_trial({k: first[k] for k in SEARCHED})

        def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if progress is not None:
                finished = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
                progress(f"tuning {finished}/{budget}", finished / budget)

        if remaining:
            study.optimize(objective, n_trials=remaining, n_jobs=1, callbacks=[report])
    finally:
        optuna.logging.set_verbosity(previous)
    return study


def choose_monotone(
    frame: pd.DataFrame,
    features: Sequence[Feature],
    cfg: ModelConfig,
    folds: Sequence[Fold],
    params: Mapping[str, Any],
    num_threads: int = 1,
    monotone_raw: np.ndarray | None = None,
) -> tuple[bool, dict[str, float]]:
    """Keep the healthy-direction constraints unless they cost more than the allowed ROC AUC.

    Both variants are boosted with ``params`` on the same ``folds`` and their out-of-fold
    raw scores pooled; returns the decision and the two ROC AUCs. ``monotone_raw``: the
    constrained variant's out-of-fold scores when the tuning already has them.
    """
    X = matrix(frame, features, categories_of(frame, features))
    y = frame["label"].to_numpy(dtype=np.int64)
    auc = {}
    for name, monotone in (("monotone", True), ("free", False)):
        full = lgb_params(
            params, features, monotone=monotone, learning_rate=cfg.learning_rate,
            seed=cfg.seed, num_threads=num_threads,
        )  # fmt: skip
        raw = monotone_raw if monotone and monotone_raw is not None else None
        if raw is None:
            raw = cross_validate(X, y, folds, full, cfg).raw
        seen = ~np.isnan(raw)
        auc[name] = float(roc_auc(y[seen], raw[seen]))
    keep = not auc["free"] - auc["monotone"] > cfg.monotone_max_auc_drop
    return keep, auc


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value (mean log loss), parameters, iterations."""
    rows = []
    for t in study.trials:
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                **{f"param_{k}": v for k, v in t.params.items()},
                "best_iterations": t.user_attrs.get("best_iterations"),
            }
        )
    return pd.DataFrame(rows)
