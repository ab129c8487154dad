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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import mlflow
import numpy as np
import numpy.typing as npt
import pandas as pd
from mlflow.data.pandas_dataset import from_pandas

from features.catalog import Feature, dictionary
from features.progress import Progress, part
from features.resources import free_cores
from models.backtest import INTERVAL_METRICS, BacktestResult, estimate_summary, estimates_on_folds
from models.backtest import backtest as run_backtest
from models.baselines import BASELINES
from models.champion import GATE_RULE, GateDecision, champion_gate, compare, first_model_gate
from models.config import ModelConfig
from models.folds import require_outcomes
from models.plays import PlayConfig
from models.plots import save_plots
from models.procedure import Trained, train_procedure
from models.train import ChurnModel
from models.tune import STUDY_SETTINGS
from pipelines.config import ChurnConfig
from pipelines.context import CONTEXT_FILE, evaluation_summary, scoring_context
from pipelines.gate import PROCEDURE_FILE, challenge, find_champion, procedure_record
from pipelines.provenance import log_provenance, provenance
from pipelines.tracking import (
    Tracking,
    log_churn_model,
    register_with_gate,
    setup_tracking,
)

#: Pooled backtest metrics logged as ``backtest_<scorer>_<metric>``.
LOGGED_METRICS = ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "lift_top_decile",
                  "recall_top_decile", "red_arr_share", "red_share", "red_precision",
                  "red_recall", "yellow_precision", "yellow_recall", "green_churn_rate",
                  "watermelon_rate")  # fmt: skip


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
    """What ``backtest`` did: the MLflow run, the full result and the model's figures."""

    run_id: str
    result: BacktestResult
    metrics: dict[str, float]
    baselines: dict[str, float]
    evaluation: dict[str, Any]


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


def _log_backtest(
    result: BacktestResult, folder: Path, evaluation: dict[str, Any]
) -> dict[str, float]:
    """The backtest table (CSV), fold table, plots, pooled metrics with intervals, per-fold
    figures, and what the evaluation rests on (tags and ``backtest/evaluation.json``).

    Returns how the confidence-based estimate of a book's outcome did on the folds
    (:func:`models.backtest.estimate_summary`), for the scoring context."""
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


def _measure_plays(
    data: Any,
    ts: TrainingSetLike,
    model: ChurnModel,
    context: dict[str, Any],
    cfg: ChurnConfig,
    folder: Path,
    progress: Progress,
) -> PlayConfig:
    """The plays with the final model's measure of each (:mod:`pipelines.plays`), logged as
    ``plays/plays.csv`` and ``play_<key>_effect`` metrics; ``cfg.plays`` unchanged when the
    data has no activities or the label is not a renewal."""
    tables = getattr(data, "tables", None)
    if tables is None or "activities" not in tables or cfg.labels.label != "renewal":
        return cfg.plays
    from models.scorer import HealthScorer
    from pipelines.plays import NO_UNITS, measure, measured_table, units_from_tables

    scorer = HealthScorer.from_model(model, context, cfg.plays, ts.top_events)
    end = data.report.end.day if data.report.end else None
    units = units_from_tables(
        tables, ts.frame, ts.top_events, scorer, cfg.labels, cfg.features, cfg.plays, end,
        seed=cfg.seed, num_threads=_threads(cfg.model),
    )  # fmt: skip
    if units.frame.empty:  # training goes on; `churn plays` exits 2 with the same words
        mlflow.set_tag(
            "plays", NO_UNITS.format(lead=cfg.plays.lead_days, snapshots=f"{len(ts.frame):,}")
        )
        return cfg.plays
    _, measured = measure(units, cfg.plays, seed=cfg.seed, progress=progress)
    pdir = folder / "plays"
    pdir.mkdir(parents=True, exist_ok=True)
    measured_table(measured).to_csv(pdir / "plays.csv", index=False)
    mlflow.log_artifacts(str(pdir), "plays")
    mlflow.log_param("plays.lead_days", cfg.plays.lead_days)
    for m in measured:
        mlflow.log_metrics(
            {f"play_{m.key}_{name}": float(v)
             for name, v in (("effect", m.effect), ("effect_lo", m.low), ("effect_hi", m.high),
                             ("naive", m.naive), ("treated", m.treated))
             if v is not None}
        )  # fmt: skip
    return cfg.plays.model_copy(update={"measured": measured})


def _baseline_auc(result: BacktestResult) -> dict[str, float]:
    return {
        s: result.summary(s)["roc_auc"]
        for s in (*BASELINES, "oracle")
        if s in result.scores.columns
    }


def _log_tuning(trained: Trained, folder: Path) -> None:
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


def _gate(
    result: BacktestResult,
    ts: TrainingSetLike,
    record: dict[str, Any],
    mc: ModelConfig,
    tracking: Tracking,
    force: bool,
    threads: int,
    progress: Progress,
) -> tuple[GateDecision, str | None]:
    """The champion gate's decision for this run's model, and the champion it faced."""
    scores = result.scores
    champion = find_champion(tracking.registered_model)
    if champion is None:
        versus = [
            compare(
                name, scores["label"], scores["model"], scores[scorer], scores["account_id"],
                probabilities=False, n_boot=mc.bootstrap, level=mc.interval_level,
                seed=mc.seed,
            )
            for scorer, name in (("health_score", "hand-weighted health score"),
                                 ("logistic", "logistic baseline"))
        ]  # fmt: skip
        return first_model_gate(versus, force), None
    comparisons, missing = challenge(
        champion, result, ts.frame, ts.features, record, mc, threads,
        part(progress, 0.9, 0.97, f"champion v{champion.version} on the same folds"),
    )  # fmt: skip
    decision = champion_gate(comparisons, champion.version, force, "; ".join(missing))
    return decision, champion.version


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
    ts = training_set(data, cfg, progress)
    require_outcomes(ts.frame, mc.min_churned, mc.min_retained)
    tracking = setup_tracking(cfg.tracking, cwd)
    threads = _threads(mc)
    with _folder(out_dir) as folder, _run(tracking, "train") as run:
        mlflow.log_params({f"model.{k}": v for k, v in mc.model_dump(mode="json").items()})
        mlflow.log_params({f"bands.{k}": v for k, v in cfg.bands.model_dump(mode="json").items()})
        mlflow.log_param("num_threads_used", threads)
        if data_dir is not None:
            log_provenance(provenance(data_dir, cfg.model_copy(update={"model": mc})))
        _log_training_set(ts, cfg, "training-set")
        result = run_backtest(
            ts.frame, ts.features, mc, cfg.bands, oracle=oracle, num_threads=threads,
            progress=part(progress, 0.0, 0.7),
        )  # fmt: skip
        evaluation = evaluation_summary(result, ts.frame, mc)
        on_folds = _log_backtest(result, folder, evaluation)
        final = train_procedure(
            ts.frame, ts.features, mc, cfg.bands, trials=mc.trials,
            warm_start=json.loads(result.folds["params"].iloc[-1]),
            storage=tracking.optuna_storage, study_name=f"churn-{fingerprint(ts, mc)}",
            num_threads=threads, progress=part(progress, 0.7, 0.9, "final model"),
        )  # fmt: skip
        model = final.model
        _log_tuning(final, folder)
        mlflow.log_params(
            {"calibration": model.calibration_, "calibration_kind": model.calibration_kind_,
             "final_rounds": model.n_estimators_, "monotone_decision":
             "on" if final.monotone else "off"}
        )  # fmt: skip
        record = procedure_record(ts.features, ts.frame, cfg, mc)
        mlflow.log_dict(record, PROCEDURE_FILE)
        context = scoring_context(ts, final, result, mc, cfg.bands.per_segment, on_folds)  # type: ignore[arg-type]
        context["labels"] = {"label": cfg.labels.label, "horizon_days": cfg.labels.horizon_days}
        mlflow.log_dict(context, CONTEXT_FILE)
        plays = _measure_plays(
            clean if clean is not None else data, ts, model, context, cfg, folder,
            part(progress, 0.9, 0.93, "plays"),
        )  # fmt: skip
        # The model carries its scoring context and plays: it scores and serves on its own.
        info = log_churn_model(model, ts.frame, context, ts.top_events, plays)
        summary = result.summary("model")
        decision, previous = _gate(result, ts, record, mc, tracking, force, threads, progress)
        mlflow.set_tag("gate_rule", GATE_RULE.format(level=mc.interval_level))
        for i, comp in enumerate(decision.comparisons):
            mlflow.log_metrics(
                {f"gate_{i}_delta_roc_auc": comp.auc.estimate,
                 f"gate_{i}_delta_roc_auc_lo": comp.auc.low,
                 f"gate_{i}_delta_roc_auc_hi": comp.auc.high}
                | ({f"gate_{i}_delta_brier": comp.brier.estimate,
                    f"gate_{i}_delta_brier_lo": comp.brier.low,
                    f"gate_{i}_delta_brier_hi": comp.brier.high} if comp.brier else {})
            )  # fmt: skip
        reg = register_with_gate(
            info.model_uri, run.info.run_id, summary, tracking.registered_model, decision,
            previous_champion=previous,
            extra_tags={"tuned_params": json.dumps(final.tuned.params),
                        "n_estimators": str(final.tuned.n_estimators),
                        "monotone": str(final.monotone).lower(),
                        "evaluation_kind": result.kind},
        )  # fmt: skip
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


def backtest(
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
    ts = training_set(data, cfg, progress)
    require_outcomes(ts.frame, mc.min_churned, mc.min_retained)
    tracking = setup_tracking(cfg.tracking, cwd)
    with _folder(out_dir) as folder, _run(tracking, "backtest") as run:
        mlflow.log_params({f"model.{k}": v for k, v in mc.model_dump(mode="json").items()})
        _log_training_set(ts, cfg, "training-set")
        result = run_backtest(
            ts.frame, ts.features, mc, cfg.bands, oracle=oracle, num_threads=_threads(mc),
            progress=progress,
        )  # fmt: skip
        evaluation = evaluation_summary(result, ts.frame, mc)
        _log_backtest(result, folder, evaluation)
    return BacktestRun(
        run_id=run.info.run_id,
        result=result,
        metrics=result.summary("model"),
        baselines=_baseline_auc(result),
        evaluation=evaluation,
    )


@contextmanager
def _run(tracking: Tracking, stage: str) -> Iterator[Any]:
    with mlflow.start_run(
        experiment_id=tracking.experiment_id, run_name=stage, tags={"stage": stage}
    ) as run:
        yield run
