"""Tuning: Optuna's seeded TPE over time-ordered folds, with early stopping in each trial.

A trial's value is the mean validation log loss of the raw trees over the folds of
:func:`models.folds.time_folds`; its best iteration per fold is kept so the final model
is boosted for the mean of those. The study lives in an Optuna storage (SQLite beside the
tracking store); re-running with the same study name resumes it up to the trial budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd

from features.catalog import Feature
from models.columns import categories_of, check_training_frame, matrix
from models.config import ModelConfig
from models.folds import time_folds
from models.train import lgb_params, train_booster

Progress = Callable[[str, float], None] | None
#: The settings that change a trial's value: a study is only resumed when they are equal.
#: The budget (``trials``) is not among them, so raising it continues the same study.
STUDY_SETTINGS = ("tune_folds", "fold_step_days", "purge_days", "learning_rate", "max_rounds",
                  "early_stopping_rounds", "seed", "monotone")  # fmt: skip


@dataclass(frozen=True)
class TuneResult:
    """The chosen tree parameters and how the study got there.

    ``n_estimators`` is the mean best iteration over the folds of the best trial;
    ``trials`` is one row per trial (number, value, state, parameters, best iterations).
    """

    params: dict[str, Any]
    n_estimators: int
    best_value: float
    study_name: str
    trials: pd.DataFrame


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


def tune(
    frame: pd.DataFrame,
    features: Sequence[Feature],
    cfg: ModelConfig,
    *,
    monotone: bool = True,
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str = "churn",
    n_trials: int | None = None,
    num_threads: int = 1,
    progress: Progress = None,
) -> TuneResult:
    """Search tree parameters on time-ordered folds of the labelled rows of ``frame``.

    Parameters
    ----------
    storage
        An Optuna storage or URL such as ``sqlite:///mlruns/optuna.db``; ``None`` keeps the
        study in memory.
    study_name
        Trials already in the storage under this name count towards ``n_trials``, so an
        interrupted tuning resumes instead of starting over. Name the study after the data
        and settings (see :func:`pipelines.training.train`) so unrelated runs do not mix.
    n_trials
        The budget; ``None``: ``cfg.trials``.
    """
    check_training_frame(frame, features)
    frame = frame.loc[frame["label"].notna()].reset_index(drop=True)
    folds = time_folds(frame, cfg.tune_folds, cfg.fold_step_days, cfg.purge_days)
    X = matrix(frame, features, categories_of(frame, features))
    y = frame["label"].to_numpy(dtype=np.int64)
    budget = cfg.trials if n_trials is None else n_trials

    def objective(trial: optuna.Trial) -> float:
        params = lgb_params(
            search_space(trial), features, monotone=monotone,
            learning_rate=cfg.learning_rate, seed=cfg.seed, num_threads=num_threads,
        )  # fmt: skip
        losses, iterations = [], []
        for fold in folds:
            booster = train_booster(
                X[fold.train], y[fold.train], params, rounds=cfg.max_rounds,
                valid=(X[fold.valid], y[fold.valid]),
                early_stopping_rounds=cfg.early_stopping_rounds,
            )  # fmt: skip
            losses.append(booster.best_score["valid_0"]["binary_logloss"])
            iterations.append(max(booster.best_iteration, 1))
        trial.set_user_attr("best_iterations", iterations)
        trial.set_user_attr("fold_log_loss", losses)
        return float(np.mean(losses))

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

        def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if progress is not None:
                finished = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
                progress(f"tuning {finished}/{budget}", finished / max(budget, 1))

        if remaining:
            study.optimize(objective, n_trials=remaining, n_jobs=1, callbacks=[report])
    finally:
        optuna.logging.set_verbosity(previous)

    best = study.best_trial
    params = search_space(optuna.trial.FixedTrial(best.params))
    return TuneResult(
        params=params,
        n_estimators=round(float(np.mean(best.user_attrs["best_iterations"]))),
        best_value=float(best.value) if best.value is not None else float("nan"),
        study_name=study_name,
        trials=trials_table(study),
    )


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
