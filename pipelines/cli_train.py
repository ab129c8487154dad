"""The ``churn`` commands that learn: ``train`` and ``backtest``, and how they print results."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from features.errors import ContractError
from pipelines import stages
from pipelines.cli_options import (
    ActiveOpt,
    ConfigOpt,
    DataOpt,
    FoldTrialsOpt,
    HorizonOpt,
    LabelOpt,
    TrialsOpt,
    config_with_trials,
    console,
    progress_bar,
)
from pipelines.config import ChurnConfig
from pipelines.startup import loading

if TYPE_CHECKING:  # the training stage imports MLflow and LightGBM: only when it runs
    from pipelines.training import TrainResult

FromRunOpt = Annotated[
    str | None,
    typer.Option(
        "--from-run",
        help="Retrain with the settings a churn train run recorded, on its data folder "
        "unless --data is given (says which input files changed since).",
    ),
]


def train(
    data: Annotated[
        str | None,
        typer.Option("--data", help="Data directory or file:// URI (see DATA_CONTRACT.md)."),
    ] = None,
    label: LabelOpt = None,
    horizon: HorizonOpt = None,
    active_days: ActiveOpt = None,
    trials: TrialsOpt = None,
    config: ConfigOpt = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Make it the champion whatever the gate says (recorded)."),
    ] = False,
    training_set: Annotated[
        Path | None,
        typer.Option(
            "--training-set",
            help="Also write the training set (Parquet) and its feature dictionary here.",
        ),
    ] = None,
    from_run: FromRunOpt = None,
) -> None:
    """Backtest the procedure against the baselines, train, log to MLflow, gate the champion."""
    with loading():
        from pipelines.training import run_training

    cfg = config_with_trials(config, trials, label=label, horizon=horizon, active_days=active_days)
    folder = None if data is None else stages.data_location(data, cfg)
    if from_run is not None:
        given = {"--label": label, "--horizon": horizon, "--active-days": active_days,
                 "--trials": trials}  # fmt: skip
        if clash := [k for k, v in given.items() if v is not None]:
            raise ContractError(
                f"--from-run {from_run}: retrains with the settings that run recorded, so "
                f"{', '.join(clash)} cannot change them; drop {', '.join(clash)}, or train "
                "anew with churn train --data DIR and the settings you want."
            )
        cfg, folder = _from_run(from_run, cfg, folder)
    elif folder is None:
        raise ContractError(
            "--data: no data directory given. Pass the folder of your export (churn train "
            "--data DIR), or --from-run RUN_ID to retrain a run on the data it recorded."
        )
    clean = stages.open_clean(folder, cfg)
    with progress_bar() as progress:
        ts = stages.training_set(clean, cfg, progress, training_set)
        result = run_training(ts, cfg, force=force, progress=progress, data_dir=folder, clean=clean)
    print_train_result(result, cfg.tracking.registered_model)


def _from_run(run_id: str, cfg: ChurnConfig, data: Path | None) -> tuple[ChurnConfig, Path]:
    """The settings a run recorded (this machine's engine and store kept) and the data
    folder to retrain on: ``data``, else the run's own; says which input files changed."""
    with loading():
        from pipelines.provenance import data_differences, run_record, settings_from_run
        from pipelines.tracking import open_tracking

    record = run_record(run_id, open_tracking(cfg.tracking))
    folder = data if data is not None else Path(record["data"]["path"])
    changed = data_differences(record, folder)
    console.print(
        f"Retraining with the settings and data of run {run_id} ({folder})", soft_wrap=True
    )
    if changed:
        shown = ", ".join(changed[:10]) + (
            f" and {len(changed) - 10} more" if len(changed) > 10 else ""
        )
        console.print(
            f"[yellow]The data differ from that run's:[/] {escape(shown)}. The model will "
            "differ as the data do.",
            soft_wrap=True,
        )
    return settings_from_run(record, cfg), folder


def _print_evaluation(evaluation: dict, metrics: dict[str, float], baselines: dict) -> None:
    """What the backtest rests on, and the model beside the baselines, with intervals."""
    console.print(f"[bold]How this was checked:[/] {escape(evaluation['kind_text'])}")
    console.print(escape(evaluation["statement"]))
    for skipped in evaluation["skipped"]:
        reason = escape(skipped["reason"])
        console.print(f"[yellow]skipped cut-off[/] {skipped['cutoff']}: {reason}")
    level = f"{evaluation['interval_level']:.0%}"
    t = Table(title=f"Backtest (pooled over folds, lead times and segments; {level} intervals)")
    t.add_column("scorer")
    t.add_column("ROC AUC", justify="right")
    t.add_row("learned model", _interval(metrics, "roc_auc"))
    for name, auc in baselines.items():
        t.add_row(name, f"{auc:.3f}")
    console.print(t)
    console.print(
        f"Brier {_interval(metrics, 'brier', 4)}  ECE {metrics['ece']:.4f}  "
        f"lift@10% {_interval(metrics, 'lift_top_decile', 2)}  red precision "
        f"{_interval(metrics, 'red_precision')}  red recall {_interval(metrics, 'red_recall')}"
    )


def _interval(metrics: dict[str, float], key: str, digits: int = 3) -> str:
    """A pooled backtest figure with its interval, e.g. "0.781 [0.752, 0.807]"."""
    from models.uncertainty import Interval

    nan = float("nan")
    iv = Interval(metrics.get(key, nan), metrics.get(f"{key}_lo", nan),
                  metrics.get(f"{key}_hi", nan), 0.95)  # fmt: skip
    return iv.text(f"{{:.{digits}f}}")


def print_train_result(r: TrainResult, registered_model: str) -> None:
    """The backtest, the plays measured, the calibration and the gate's decision of a run."""
    _print_evaluation(r.evaluation, r.metrics, r.baselines)
    if r.plays:
        console.print("[bold]Plays[/] (effect at the next renewal, against comparable accounts "
                      "without a play):")  # fmt: skip
        for line in r.plays:
            console.print(f"  {escape(line)}")
    console.print(
        f"calibration: {r.calibration} ({r.calibration_kind.replace('_', ' ')})  "
        f"monotone: {r.monotone}"
    )
    colour = "bold red" if r.forced else "green" if r.is_champion else "yellow"
    head = "champion" if r.is_champion else "not champion"
    console.print(
        f"[{colour}]Registered version {r.version} ({head}):[/] {escape(r.decision)}",
        soft_wrap=True,
    )
    alias = f"  (and models:/{registered_model}@champion)" if r.is_champion else ""
    console.print(
        f"MLflow run {r.run_id}  model {r.model_uri}{alias}  logged model {r.model_id}",
        soft_wrap=True,
    )


def backtest(
    data: DataOpt,
    label: LabelOpt = None,
    horizon: HorizonOpt = None,
    active_days: ActiveOpt = None,
    trials: FoldTrialsOpt = None,
    config: ConfigOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also keep the backtest table and plots here.")
    ] = None,
) -> None:
    """Nested backtest of the training procedure against the baselines, logged to MLflow."""
    with loading():
        from pipelines.training import run_backtest

    cfg = config_with_trials(
        config, trials, "backtest_trials", label=label, horizon=horizon, active_days=active_days
    )
    clean = stages.open_clean(stages.data_location(data, cfg), cfg)
    with progress_bar() as progress:
        ts = stages.training_set(clean, cfg, progress)
        run = run_backtest(ts, cfg, out_dir=out, progress=progress)
    _print_evaluation(run.evaluation, run.metrics, run.baselines)
    console.print(f"MLflow run {run.run_id}")
