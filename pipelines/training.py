"""The ``train`` and ``backtest`` stages: tune, backtest, fit, log to MLflow, gate the champion.

Both take validated data (:class:`features.validate.CleanData`, whose training set is built
here with :func:`features.training.build_training_set`) or a ready
:class:`features.training.TrainingSet`, and the run's :class:`ChurnConfig`. They write only
through MLflow (and to ``out_dir`` when one is given) and return a small result object.

What they log is in :mod:`pipelines.training_log`, the plays measured at training in
:mod:`pipelines.training_plays`, the champion gate in :mod:`pipelines.gate`.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy.typing as npt
import pandas as pd

from features.progress import Progress, part
from models.backtest import BacktestResult
from models.backtest import backtest as nested_backtest
from models.champion import GateDecision
from models.config import ModelConfig
from models.folds import require_outcomes
from models.procedure import Trained, train_procedure
from models.scorers import MODEL, scorers_in
from models.tune import STUDY_SETTINGS
from pipelines.config import ChurnConfig
from pipelines.context import CONTEXT_FILE, evaluation_summary, scoring_context
from pipelines.gate import PROCEDURE_FILE, gate_decision, procedure_record
from pipelines.provenance import log_provenance, provenance
from pipelines.tracking import (
    Registration,
    Tracking,
    log_churn_model,
    register_with_gate,
    setup_tracking,
)
from pipelines.training_inputs import TrainingSetLike, as_training_set, worker_threads
from pipelines.training_log import log_backtest, log_gate, log_training_set, log_tuning, stage_run
from pipelines.training_plays import measure_plays


@dataclass(frozen=True)
class TrainResult:
    """What :func:`run_training` did: the MLflow run, the registered version, and the key figures.

    ``metrics`` are the model's pooled backtest metrics (``roc_auc``, ``brier``, ... and
    ``<metric>_lo``/``_hi`` intervals); ``baselines`` the ROC AUC of each baseline on the
    same rows; ``evaluation`` what the backtest rests on
    (:func:`pipelines.context.evaluation_summary`); ``comparisons`` the gate's paired
    comparisons, one line each.
    """

    run_id: str
    #: The registry's URI of this version, ``models:/<registered model>/<version>``.
    model_uri: str
    #: MLflow's id of the logged model (``m-...``; ``models:/<model_id>`` loads it too).
    model_id: str
    version: str
    is_champion: bool
    forced: bool
    decision: str
    comparisons: tuple[str, ...]
    metrics: dict[str, float]
    baselines: dict[str, float]
    evaluation: dict[str, Any]
    monotone: bool
    calibration: str
    calibration_kind: str
    params: dict[str, Any]
    n_estimators: int
    #: Each measured play's plain words (empty when the data has no activities).
    plays: tuple[str, ...] = ()


@dataclass(frozen=True)
class BacktestRun:
    """What :func:`run_backtest` did: the MLflow run, the full result and the model's figures."""

    run_id: str
    result: BacktestResult
    metrics: dict[str, float]
    baselines: dict[str, float]
    evaluation: dict[str, Any]


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


@contextmanager
def _folder(out_dir: Path | None) -> Iterator[Path]:
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        yield out_dir
    else:
        with tempfile.TemporaryDirectory(prefix="churn-") as tmp:
            yield Path(tmp)


def _baseline_auc(result: BacktestResult) -> dict[str, float]:
    """The backtest's ROC AUC of every registered scorer but the model (baselines, oracle)."""
    return {
        s.name: result.summary(s.name)["roc_auc"]
        for s in scorers_in(result.scores.columns)
        if s is not MODEL
    }


def run_training(
    data: Any,
    cfg: ChurnConfig,
    *,
    trials: int | None = None,
    force: bool = False,
    out_dir: Path | None = None,
    oracle: npt.ArrayLike | None = None,
    cwd: Path | None = None,
    progress: Progress = None,
    data_dir: Path | None = None,
    clean: Any = None,
) -> TrainResult:
    """Backtest the training procedure, run it on all history, log, register, gate.

    1. The nested backtest (:func:`models.backtest.backtest`): at every fold the whole
       procedure (tuning, rounds, monotone choice, calibrator, band thresholds) runs on the
       rows known before the fold's cut-off, and scores the fold's later rows.
    2. The procedure on all labelled history (:func:`models.procedure.train_procedure`),
       with the full tuning budget, warm-started from the last fold's parameters.
    3. MLflow: parameters, the backtest with intervals, plots, the Optuna study, the model,
       ``scoring.json`` and ``procedure.json``; a new registry version.
    4. The champion gate (:mod:`models.champion`): the ``champion`` alias moves only for a
       model that is better on identical rows (or, for a first model, beats the baselines).

    Parameters
    ----------
    data
        ``CleanData`` (the training set is built from all its history) or a ``TrainingSet``.
    cfg
        The run's settings; ``cfg.model`` steers tuning, the backtest and the gate,
        ``cfg.bands`` the band thresholds, ``cfg.tracking`` where MLflow writes.
    trials
        Optuna budget of the final model (default ``cfg.model.trials``). Trials already
        stored for the same data and settings count, so an interrupted run resumes.
    force
        Move the ``champion`` alias whatever the gate says; the decision says "FORCED" and
        the run and version are tagged ``champion_forced=true``.
    out_dir
        Keep the backtest table, plots and tuning summary here as well (default: only in
        MLflow).
    oracle
        True probabilities aligned with the training set's rows (simulations only).
    cwd
        Base of the default ``mlruns/`` store (default: the working directory).
    data_dir
        The data folder ``data`` was read from: the run then records what rebuilds its
        model (``reproduce.json``: code version, resolved settings, a digest of every input
        file, package versions; :mod:`pipelines.provenance`), which ``churn train
        --from-run`` reads back.
    clean
        The validated data a ready training set ``data`` was built from (``CleanData``),
        when ``data`` is not itself ``CleanData``: its ``activities`` table, if any, is
        what the plays are measured from (:mod:`pipelines.plays`).

    Raises :class:`models.folds.TooFewLabels` (exit 2 at the CLI) before any run starts
    when the history holds too few churned or retained outcomes.
    """
    mc = model_settings(cfg)
    if trials is not None:
        mc = mc.model_copy(update={"trials": trials})
    ts = as_training_set(data, cfg, progress)
    require_outcomes(ts.frame, mc.min_churned, mc.min_retained)
    tracking = setup_tracking(cfg.tracking, cwd)
    threads = worker_threads(mc)
    with _folder(out_dir) as folder, stage_run(tracking, "train") as run:
        plays_data = clean if clean is not None else data
        return _train_in_run(
            ts, plays_data, cfg, mc, tracking, threads, run, folder, force, oracle, progress,
            data_dir,
        )  # fmt: skip


def _train_in_run(
    ts: TrainingSetLike,
    plays_data: Any,
    cfg: ChurnConfig,
    mc: ModelConfig,
    tracking: Tracking,
    threads: int,
    run: Any,
    folder: Path,
    force: bool,
    oracle: npt.ArrayLike | None,
    progress: Progress,
    data_dir: Path | None,
) -> TrainResult:
    """The steps of :func:`run_training` inside its MLflow ``run``, in order: settings and
    rows, backtest, final model, scoring context, plays, model, gate, registration."""
    mlflow.log_params({f"model.{k}": v for k, v in mc.model_dump(mode="json").items()})
    mlflow.log_params({f"bands.{k}": v for k, v in cfg.bands.model_dump(mode="json").items()})
    mlflow.log_param("num_threads_used", threads)
    if data_dir is not None:
        log_provenance(provenance(data_dir, cfg.model_copy(update={"model": mc})))
    log_training_set(ts, cfg, "training-set")
    result = nested_backtest(
        ts.frame, ts.features, mc, cfg.bands, oracle=oracle, num_threads=threads,
        progress=part(progress, 0.0, 0.7),
    )  # fmt: skip
    evaluation = evaluation_summary(result, ts.frame, mc)
    on_folds = log_backtest(result, folder, evaluation)
    final = _final_procedure(ts, mc, cfg, result, tracking, threads, folder, progress)
    model = final.model
    record = procedure_record(ts.features, ts.frame, cfg, mc)
    mlflow.log_dict(record, PROCEDURE_FILE)
    context = scoring_context(ts, final, result, mc, cfg.bands.per_segment, on_folds)  # type: ignore[arg-type]
    context["labels"] = {"label": cfg.labels.label, "horizon_days": cfg.labels.horizon_days}
    mlflow.log_dict(context, CONTEXT_FILE)
    plays = measure_plays(
        plays_data, ts, model, context, cfg, folder, part(progress, 0.9, 0.93, "plays")
    )
    # The model carries its scoring context and plays: it scores and serves on its own.
    info = log_churn_model(model, ts.frame, context, ts.top_events, plays)
    summary = result.summary("model")
    decision, previous = gate_decision(result, ts, record, mc, tracking, force, threads, progress)
    log_gate(decision, mc.interval_level)
    reg = _register(info.model_uri, run.info.run_id, summary, tracking, decision, previous,
                    final, result.kind)  # fmt: skip
    return TrainResult(
        run_id=run.info.run_id,
        model_uri=f"models:/{tracking.registered_model}/{reg.version}",
        model_id=str(info.model_id),
        version=reg.version,
        is_champion=reg.is_champion,
        forced=decision.forced,
        decision=decision.reason,
        comparisons=tuple(c.text() for c in decision.comparisons),
        metrics=summary,
        baselines=_baseline_auc(result),
        evaluation=evaluation,
        monotone=final.monotone,
        calibration=model.calibration_,
        calibration_kind=model.calibration_kind_,
        params=final.tuned.params,
        n_estimators=final.tuned.n_estimators,
        plays=tuple(line for m in plays.measured for line in m.lines),
    )


def _final_procedure(
    ts: TrainingSetLike,
    mc: ModelConfig,
    cfg: ChurnConfig,
    result: BacktestResult,
    tracking: Tracking,
    threads: int,
    folder: Path,
    progress: Progress,
) -> Trained:
    """The procedure on all labelled history, warm-started from the last fold's parameters,
    with its tuning and final model's settings logged."""
    final = train_procedure(
        ts.frame, ts.features, mc, cfg.bands, trials=mc.trials,
        warm_start=json.loads(result.folds["params"].iloc[-1]),
        storage=tracking.optuna_storage, study_name=f"churn-{fingerprint(ts, mc)}",
        num_threads=threads, progress=part(progress, 0.7, 0.9, "final model"),
    )  # fmt: skip
    model = final.model
    log_tuning(final, folder)
    mlflow.log_params(
        {"calibration": model.calibration_, "calibration_kind": model.calibration_kind_,
         "final_rounds": model.n_estimators_, "monotone_decision":
         "on" if final.monotone else "off"}
    )  # fmt: skip
    return final


def _register(
    model_uri: str,
    run_id: str,
    summary: dict[str, float],
    tracking: Tracking,
    decision: GateDecision,
    previous: str | None,
    final: Trained,
    evaluation_kind: str,
) -> Registration:
    """A new registry version of the logged model, tagged with its procedure, the
    ``champion`` alias moved by ``decision``."""
    return register_with_gate(
        model_uri, run_id, summary, tracking.registered_model, decision,
        previous_champion=previous,
        extra_tags={"tuned_params": json.dumps(final.tuned.params),
                    "n_estimators": str(final.tuned.n_estimators),
                    "monotone": str(final.monotone).lower(),
                    "evaluation_kind": evaluation_kind},
    )  # fmt: skip


def run_backtest(
    data: Any,
    cfg: ChurnConfig,
    *,
    out_dir: Path | None = None,
    oracle: npt.ArrayLike | None = None,
    cwd: Path | None = None,
    progress: Progress = None,
) -> BacktestRun:
    """The nested backtest of the configured procedure, logged as its own MLflow run (no
    final model, no registration)."""
    mc = model_settings(cfg)
    ts = as_training_set(data, cfg, progress)
    require_outcomes(ts.frame, mc.min_churned, mc.min_retained)
    tracking = setup_tracking(cfg.tracking, cwd)
    with _folder(out_dir) as folder, stage_run(tracking, "backtest") as run:
        mlflow.log_params({f"model.{k}": v for k, v in mc.model_dump(mode="json").items()})
        log_training_set(ts, cfg, "training-set")
        result = nested_backtest(
            ts.frame, ts.features, mc, cfg.bands, oracle=oracle, num_threads=worker_threads(mc),
            progress=progress,
        )  # fmt: skip
        evaluation = evaluation_summary(result, ts.frame, mc)
        log_backtest(result, folder, evaluation)
    return BacktestRun(
        run_id=run.info.run_id,
        result=result,
        metrics=result.summary("model"),
        baselines=_baseline_auc(result),
        evaluation=evaluation,
    )
