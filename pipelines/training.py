"""The ``train`` and ``backtest`` stages: tune, backtest, fit, log to MLflow, gate the champion.

Both take validated data (:class:`features.validate.CleanData`, whose training set is built
here with :func:`features.training.build_training_set`) or a ready
:class:`features.training.TrainingSet`, and the run's :class:`ChurnConfig`. They write only
through MLflow (and to ``out_dir`` when one is given) and return a small result object.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import mlflow
import numpy as np
import numpy.typing as npt
import pandas as pd
from mlflow import MlflowClient
from mlflow.data.pandas_dataset import from_pandas

from features.catalog import Feature, dictionary
from features.resources import free_cores
from models.backtest import BacktestResult
from models.backtest import backtest as run_backtest
from models.config import ModelConfig
from models.plots import save_plots
from models.train import ChurnModel
from models.tune import STUDY_SETTINGS, TuneResult, tune
from pipelines.config import ChurnConfig
from pipelines.context import CONTEXT_FILE, scoring_context
from pipelines.tracking import (
    CHAMPION,
    Tracking,
    log_churn_model,
    register_with_gate,
    setup_tracking,
)

Progress = Callable[[str, float], None] | None
#: Pooled backtest metrics logged as ``backtest_<scorer>_<metric>``.
LOGGED_METRICS = ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "lift_top_decile",
                  "recall_top_decile", "red_arr_share", "watermelon_rate")  # fmt: skip


class TrainingSetLike(Protocol):
    """What the stages read: ``features.training.TrainingSet`` or anything shaped like it."""

    @property
    def frame(self) -> pd.DataFrame: ...

    @property
    def features(self) -> tuple[Feature, ...]: ...

    @property
    def top_events(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class TrainResult:
    """What ``train`` did: the MLflow run, the registered version, and the key figures.

    ``metrics`` are the model's pooled backtest metrics (``roc_auc``, ``brier``, ...);
    ``baselines`` the ROC AUC of each baseline on the same rows.
    """

    run_id: str
    model_uri: str
    version: str
    is_champion: bool
    decision: str
    metrics: dict[str, float]
    baselines: dict[str, float]
    monotone: bool
    calibration: str
    params: dict[str, Any]
    n_estimators: int


@dataclass(frozen=True)
class BacktestRun:
    """What ``backtest`` did: the MLflow run, the full result and the model's figures."""

    run_id: str
    result: BacktestResult
    metrics: dict[str, float]
    baselines: dict[str, float]
    params: dict[str, Any]


def training_set(data: Any, cfg: ChurnConfig, progress: Progress = None) -> TrainingSetLike:
    """``data`` itself if it is a training set, else the one built from ``CleanData``."""
    if hasattr(data, "frame") and hasattr(data, "features"):
        return data
    if hasattr(data, "tables"):
        from features.training import build_training_set

        return build_training_set(data.tables, cfg.labels, cfg.features, progress=progress)
    raise TypeError(
        f"expected features.validate.CleanData or features.training.TrainingSet, "
        f"got {type(data).__name__}"
    )


def fingerprint(ts: TrainingSetLike, model_cfg: ModelConfig) -> str:
    """A short hash of the rows, the declared features and the settings a trial depends on.

    Names the Optuna study, so a re-run on the same data and settings resumes its trials
    (:data:`models.tune.STUDY_SETTINGS`; a larger ``--trials`` continues the same study).
    """
    names = [f.name for f in ts.features]
    cols = ["as_of", "label", "label_known_at", *names]
    rows = pd.util.hash_pandas_object(ts.frame[cols], index=False).to_numpy()
    h = hashlib.sha256(rows.tobytes())
    settings = {k: getattr(model_cfg, k) for k in STUDY_SETTINGS}
    h.update(json.dumps([names, settings], sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def model_settings(cfg: ChurnConfig) -> ModelConfig:
    """``cfg.model``, with the run's ``seed`` unless ``model.seed`` was set explicitly."""
    if "seed" in cfg.model.model_fields_set:
        return cfg.model
    return cfg.model.model_copy(update={"seed": cfg.seed})


def _threads(cfg: ModelConfig) -> int:
    return cfg.num_threads or free_cores()


@contextmanager
def _folder(out_dir: Path | None) -> Iterator[Path]:
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        yield out_dir
    else:
        with tempfile.TemporaryDirectory(prefix="churn-") as tmp:
            yield Path(tmp)


def _log_training_set(ts: TrainingSetLike, cfg: ChurnConfig, name: str) -> None:
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


def _log_backtest(result: BacktestResult, folder: Path) -> None:
    """The backtest table (CSV), fold table, plots, and pooled metrics of every scorer."""
    bt = folder / "backtest"
    bt.mkdir(parents=True, exist_ok=True)
    result.metrics.to_csv(bt / "metrics.csv", index=False)
    result.folds.to_csv(bt / "folds.csv", index=False)
    result.scores.to_csv(bt / "scores.csv.gz", index=False)
    save_plots(result, bt / "plots")
    mlflow.log_artifacts(str(bt), "backtest")
    t = result.metrics
    pooled = t[(t.fold == "all") & t.lead_days.isna() & (t.segment == "all")]
    for _, row in pooled.iterrows():
        mlflow.log_metrics(
            {f"backtest_{row.scorer}_{k}": float(row[k]) for k in LOGGED_METRICS
             if np.isfinite(row[k])}
        )  # fmt: skip
    per_fold = t[(t.fold != "all") & t.lead_days.isna() & (t.segment == "all")]
    for step, (_, rows) in enumerate(per_fold.groupby("fold", sort=True)):
        for _, row in rows.iterrows():
            mlflow.log_metric(f"fold_{row.scorer}_roc_auc", float(row.roc_auc), step=step)
    mlflow.log_param("monotone_decision", "on" if result.monotone else "off")


def _baseline_auc(result: BacktestResult) -> dict[str, float]:
    return {
        s: result.summary(s)["roc_auc"]
        for s in ("health_score", "engagement_score", "logistic", "oracle")
        if s in result.scores.columns
    }


def _log_tuning(tuned: TuneResult, folder: Path) -> None:
    tdir = folder / "tuning"
    tdir.mkdir(parents=True, exist_ok=True)
    tuned.trials.to_csv(tdir / "trials.csv", index=False)
    summary = {
        "study_name": tuned.study_name,
        "best_value_mean_log_loss": tuned.best_value,
        "best_params": tuned.params,
        "n_estimators": tuned.n_estimators,
        "trials": len(tuned.trials),
    }
    (tdir / "study.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    mlflow.log_artifacts(str(tdir), "tuning")
    mlflow.log_params({f"lgb_{k}": v for k, v in tuned.params.items()})
    mlflow.log_params({"n_estimators": tuned.n_estimators, "optuna_study": tuned.study_name})
    mlflow.log_metric("tuning_best_log_loss", tuned.best_value)


def train(
    data: Any,
    cfg: ChurnConfig,
    *,
    trials: int | None = None,
    force: bool = False,
    out_dir: Path | None = None,
    oracle: npt.ArrayLike | None = None,
    cwd: Path | None = None,
    progress: Progress = None,
) -> TrainResult:
    """Tune, backtest, fit on all labelled history, log and register; gate the champion.

    The backtest reuses the parameters tuned on folds of the same history, so its figures
    are slightly optimistic about the parameters (not about the trees or the calibrators,
    which each fold fits on its own past only).

    Parameters
    ----------
    data
        ``CleanData`` (the training set is built from all its history) or a ``TrainingSet``.
    cfg
        The run's settings; ``cfg.model`` steers tuning, the backtest and the gate,
        ``cfg.tracking`` where MLflow writes.
    trials
        Optuna budget (default ``cfg.model.trials``). Trials already stored for the same data
        and settings count, so an interrupted run resumes.
    force
        Move the ``champion`` alias even if the backtest is worse than the champion's; the
        run is tagged ``champion_forced=true``.
    out_dir
        Keep the backtest table, plots and tuning summary here as well (default: only in
        MLflow).
    oracle
        True probabilities aligned with the training set's rows (simulations only).
    cwd
        Base of the default ``mlruns/`` store (default: the working directory).
    """
    mc = model_settings(cfg)
    tracking = setup_tracking(cfg.tracking, cwd)
    ts = training_set(data, cfg, progress)
    threads = _threads(mc)
    monotone_tuning = mc.monotone != "off"
    with _folder(out_dir) as folder, _run(tracking, "train") as run:
        mlflow.log_params({f"model.{k}": v for k, v in mc.model_dump(mode="json").items()})
        mlflow.log_param("num_threads_used", threads)
        _log_training_set(ts, cfg, "training-set")
        tuned = tune(
            ts.frame, ts.features, mc, monotone=monotone_tuning,
            storage=tracking.optuna_storage, study_name=f"churn-{fingerprint(ts, mc)}",
            n_trials=trials, num_threads=threads, progress=progress,
        )  # fmt: skip
        _log_tuning(tuned, folder)
        result = run_backtest(
            ts.frame, ts.features, mc, params=tuned.params, n_estimators=tuned.n_estimators,
            oracle=oracle, num_threads=threads, progress=progress,
        )  # fmt: skip
        _log_backtest(result, folder)
        if progress is not None:
            progress("fitting the final model", 0.97)
        model = ChurnModel(
            params=tuned.params, n_estimators=tuned.n_estimators, monotone=result.monotone,
            calibration=mc.calibration, calibration_share=mc.calibration_share,
            purge_days=mc.purge_days, learning_rate=mc.learning_rate, seed=mc.seed,
            num_threads=threads,
        ).fit(ts.frame, ts.features)  # fmt: skip
        mlflow.log_params({"calibration": model.calibration_, "final_rounds": model.n_estimators_})
        info = log_churn_model(model, ts.frame, ts.top_events)
        # What scoring needs besides the trees: bands from this backtest, references, drift.
        context = scoring_context(
            ts, model, result.scores, cfg.bands,  # type: ignore[arg-type]
            hand_weighted_auc=_baseline_auc(result).get("health_score"),
            band_lead_days=mc.band_lead_days,
        )  # fmt: skip
        context["labels"] = {"label": cfg.labels.label, "horizon_days": cfg.labels.horizon_days}
        mlflow.log_dict(context, CONTEXT_FILE)
        summary = result.summary("model")
        reg = register_with_gate(
            info.model_uri, run.info.run_id, summary, tracking.registered_model, mc,
            force=force,
            extra_tags={"tuned_params": json.dumps(tuned.params),
                        "n_estimators": str(tuned.n_estimators),
                        "monotone": str(result.monotone).lower()},
        )  # fmt: skip
    return TrainResult(
        run_id=run.info.run_id,
        model_uri=info.model_uri,
        version=reg.version,
        is_champion=reg.is_champion,
        decision=reg.decision.reason,
        metrics=summary,
        baselines=_baseline_auc(result),
        monotone=result.monotone,
        calibration=model.calibration_,
        params=tuned.params,
        n_estimators=tuned.n_estimators,
    )


def backtest(
    data: Any,
    cfg: ChurnConfig,
    *,
    params: Mapping[str, Any] | None = None,
    n_estimators: int | None = None,
    out_dir: Path | None = None,
    oracle: npt.ArrayLike | None = None,
    cwd: Path | None = None,
    progress: Progress = None,
) -> BacktestRun:
    """Backtest without tuning or registering, logged as its own MLflow run.

    ``params``/``n_estimators`` default to the current champion's (recorded on its
    registered version), else to the defaults of :class:`models.train.ChurnModel` with
    early stopping.
    """
    mc = model_settings(cfg)
    tracking = setup_tracking(cfg.tracking, cwd)
    ts = training_set(data, cfg, progress)
    if params is None:
        params, n_estimators = champion_params(tracking)
    with _folder(out_dir) as folder, _run(tracking, "backtest") as run:
        mlflow.log_params({f"model.{k}": v for k, v in mc.model_dump(mode="json").items()})
        _log_training_set(ts, cfg, "training-set")
        mlflow.log_params({f"lgb_{k}": v for k, v in (params or {}).items()})
        mlflow.log_param("n_estimators", n_estimators)
        result = run_backtest(
            ts.frame, ts.features, mc, params=params, n_estimators=n_estimators,
            oracle=oracle, num_threads=_threads(mc), progress=progress,
        )  # fmt: skip
        _log_backtest(result, folder)
    return BacktestRun(
        run_id=run.info.run_id,
        result=result,
        metrics=result.summary("model"),
        baselines=_baseline_auc(result),
        params=dict(params or {}),
    )


def champion_params(tracking: Tracking) -> tuple[dict[str, Any] | None, int | None]:
    """The tuned parameters and rounds recorded on the champion version, if there is one."""
    try:
        mv = MlflowClient().get_model_version_by_alias(tracking.registered_model, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None, None
    params = json.loads(mv.tags["tuned_params"]) if "tuned_params" in mv.tags else None
    rounds = int(mv.tags["n_estimators"]) if "n_estimators" in mv.tags else None
    return params, rounds


@contextmanager
def _run(tracking: Tracking, stage: str) -> Iterator[Any]:
    with mlflow.start_run(
        experiment_id=tracking.experiment_id, run_name=stage, tags={"stage": stage}
    ) as run:
        yield run
