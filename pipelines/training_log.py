"""What the training stages write to MLflow: their run, the rows, the backtest, the tuning,
the gate's comparisons.

Each function logs to the active run; :func:`stage_run` starts it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.data.pandas_dataset import from_pandas

from features.catalog import dictionary
from models.backtest import INTERVAL_METRICS, BacktestResult
from models.champion import GATE_RULE, GateDecision
from models.fold_estimates import estimate_summary, estimates_on_folds
from models.plots import save_plots
from models.procedure import Trained
from pipelines.config import ChurnConfig
from pipelines.tracking import Tracking
from pipelines.training_inputs import TrainingSetLike

#: Pooled backtest metrics logged as ``backtest_<scorer>_<metric>``.
LOGGED_METRICS = ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "lift_top_decile",
                  "recall_top_decile", "red_arr_share", "red_share", "red_precision",
                  "red_recall", "yellow_precision", "yellow_recall", "green_churn_rate",
                  "watermelon_rate")  # fmt: skip


@contextmanager
def stage_run(tracking: Tracking, stage: str) -> Iterator[Any]:
    """The MLflow run of one stage (``train`` or ``backtest``), named and tagged by it."""
    with mlflow.start_run(
        experiment_id=tracking.experiment_id, run_name=stage, tags={"stage": stage}
    ) as run:
        yield run


def log_training_set(ts: TrainingSetLike, cfg: ChurnConfig, name: str) -> None:
    """Parameters describing the rows, and the data set's fingerprint (``log_input``)."""
    frame = ts.frame
    labelled = frame["label"].notna()
    mlflow.log_params(
        {
            "label": cfg.labels.label,
            "lead_days": ",".join(map(str, cfg.labels.lead_days)),
            "rows": int(labelled.sum()),
            "churned": int(frame.loc[labelled, "label"].sum()),
            "accounts": int(frame.loc[labelled, "account_id"].nunique()),
            "features": len(ts.features),
            "first_snapshot": str(frame["as_of"].min())[:10],
            "last_outcome": str(frame.loc[labelled, "label_known_at"].max())[:10],
        }
    )
    # A digest of the rows; the frame itself is not copied into the store.
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold NaN; the ids and labels never do.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        dataset = from_pandas(frame, targets="label", name=name)
        mlflow.log_input(dataset, context="training")
    mlflow.log_dict(
        {"features": dictionary(ts.features), "top_events": list(ts.top_events)},
        "feature_dictionary.json",
    )


def log_backtest(
    result: BacktestResult, folder: Path, evaluation: dict[str, Any]
) -> dict[str, float]:
    """The backtest table (CSV), fold table, plots, pooled metrics with intervals, per-fold
    figures, and what the evaluation rests on (tags and ``backtest/evaluation.json``).

    Returns how the confidence-based estimate of a book's outcome did on the folds
    (:func:`models.fold_estimates.estimate_summary`), for the scoring context."""
    bt = folder / "backtest"
    bt.mkdir(parents=True, exist_ok=True)
    result.metrics.to_csv(bt / "metrics.csv", index=False)
    result.folds.to_csv(bt / "folds.csv", index=False)
    result.scores.to_csv(bt / "scores.csv.gz", index=False)
    (bt / "evaluation.json").write_text(json.dumps(evaluation, indent=2), encoding="utf-8")
    # The confidence-based estimator replayed on the folds: each fold's later renewals at
    # one lead, estimated from the fold model's probabilities, against what happened.
    estimates = estimates_on_folds(result, evaluation.get("interval_level", 0.9))
    estimates.to_csv(bt / "expected_vs_realized.csv", index=False)
    on_folds = estimate_summary(estimates)
    mlflow.log_metrics({f"cbpe_{k}": v for k, v in on_folds.items() if np.isfinite(v)})
    save_plots(result, bt / "plots")
    mlflow.log_artifacts(str(bt), "backtest")
    _log_backtest_metrics(result)
    skipped = "; ".join(f"{s['cutoff']}: {s['reason']}" for s in evaluation["skipped"])
    mlflow.set_tags(
        {
            "evaluation_kind": evaluation["kind"],
            "folds_used": ", ".join(evaluation["folds_used"]),
            "folds_skipped": skipped[:4900] or "none",
            "evaluation": evaluation["statement"][:4900],
        }
    )
    return on_folds


def _log_backtest_metrics(result: BacktestResult) -> None:
    """Each scorer's pooled metrics with intervals, and the per-fold ROC AUC and ECE."""
    pooled = result.pooled()
    names = [*LOGGED_METRICS, *(f"{k}_{e}" for k in INTERVAL_METRICS for e in ("lo", "hi"))]
    for _, row in pooled.iterrows():
        mlflow.log_metrics(
            {f"backtest_{row.scorer}_{k}": float(row[k]) for k in names
             if k in row and np.isfinite(row[k])}
        )  # fmt: skip
    per_fold = result.pooled(per_fold=True)
    for step, (_, rows) in enumerate(per_fold.groupby("fold", sort=True)):
        for _, row in rows.iterrows():
            mlflow.log_metric(f"fold_{row.scorer}_roc_auc", float(row.roc_auc), step=step)
            if row.scorer == "model" and np.isfinite(row.ece):
                mlflow.log_metric("fold_model_ece", float(row.ece), step=step)


def log_tuning(trained: Trained, folder: Path) -> None:
    """The final model's Optuna study (``tuning/``), its best parameters and log loss."""
    tuned = trained.tuned
    tdir = folder / "tuning"
    tdir.mkdir(parents=True, exist_ok=True)
    tuned.trials.to_csv(tdir / "trials.csv", index=False)
    summary = {
        "study_name": tuned.study_name,
        "best_value_mean_log_loss": tuned.best_value,
        "best_params": tuned.params,
        "n_estimators": tuned.n_estimators,
        "trials": len(tuned.trials),
        "folds": trained.plan.describe(),
        "monotone": trained.monotone,
        "monotone_auc": trained.monotone_auc,
    }
    (tdir / "study.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    mlflow.log_artifacts(str(tdir), "tuning")
    mlflow.log_params({f"lgb_{k}": v for k, v in tuned.params.items()})
    mlflow.log_params({"n_estimators": tuned.n_estimators, "optuna_study": tuned.study_name,
                       "tuning_folds": trained.plan.kind})  # fmt: skip
    mlflow.log_metric("tuning_best_log_loss", tuned.best_value)


def log_gate(decision: GateDecision, interval_level: float) -> None:
    """The gate's rule (a tag) and each paired comparison's deltas with their intervals."""
    mlflow.set_tag("gate_rule", GATE_RULE.format(level=interval_level))
    for i, comp in enumerate(decision.comparisons):
        mlflow.log_metrics(
            {f"gate_{i}_delta_roc_auc": comp.auc.estimate,
             f"gate_{i}_delta_roc_auc_lo": comp.auc.low,
             f"gate_{i}_delta_roc_auc_hi": comp.auc.high}
            | ({f"gate_{i}_delta_brier": comp.brier.estimate,
                f"gate_{i}_delta_brier_lo": comp.brier.low,
                f"gate_{i}_delta_brier_hi": comp.brier.high} if comp.brier else {})
        )  # fmt: skip
