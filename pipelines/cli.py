"""The ``churn`` command line: one verb per stage, bad input exits 2, internal errors exit 1."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from features.errors import ContractError
from pipelines import stages
from pipelines.config import ChurnConfig, load_config

if TYPE_CHECKING:  # the training stage imports MLflow and LightGBM: only when it runs
    from pipelines.training import TrainResult

app = typer.Typer(
    name="churn",
    help="Predictive customer health: learn the weights from history, prove them, explain them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=False, highlight=False)
errors = Console(stderr=True, highlight=False)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="YAML settings file (default: ./churn.yaml if present)."),
]
#: Text, not a Path: a Path would turn ``s3a://bucket/x`` into ``s3a:/bucket/x``.
DataOpt = Annotated[
    str, typer.Option("--data", help="Data directory or file:// URI (see DATA_CONTRACT.md).")
]


@contextmanager
def progress_bar() -> Iterator[Callable[[str, float], None]]:
    """A rich progress bar, handed to long stages as ``progress(step, fraction)``."""
    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=errors,
        transient=False,
    ) as bar:
        task = bar.add_task("starting", total=1.0)

        def update(step: str, fraction: float) -> None:
            bar.update(task, description=step, completed=min(max(fraction, 0.0), 1.0))

        yield update
        bar.update(task, description="done", completed=1.0)


LabelOpt = Annotated[
    Literal["renewal", "inactivity"] | None,
    typer.Option("--label", help="renewal (needs contracts) or inactivity."),
]
HorizonOpt = Annotated[
    int | None, typer.Option("--horizon", min=1, help="Inactivity horizon in days (default 90).")
]
ActiveOpt = Annotated[
    int | None,
    typer.Option("--active-days", min=1, help="Inactivity mode: active in this many days before."),
]
WithinOpt = Annotated[
    int | None,
    typer.Option("--within", min=0, help="Renewal mode: terms ending within DAYS (default 120)."),
]
EngineOpt = Annotated[
    Literal["duckdb", "spark"] | None, typer.Option("--engine", help="Query engine.")
]
AfterEndOpt = Annotated[
    bool,
    typer.Option(
        "--after-end",
        help="Allow an --as-of after the end of the data (the days between read as silence).",
    ),
]
AsOfOpt = Annotated[
    datetime,
    typer.Option("--as-of", formats=["%Y-%m-%d"], help="Snapshot date (midnight UTC), YYYY-MM-DD."),
]


def _config(
    path: Path | None,
    *,
    label: str | None = None,
    horizon: int | None = None,
    active_days: int | None = None,
    within: int | None = None,
    engine: str | None = None,
) -> ChurnConfig:
    """Settings from the file, overridden by the options given on the command line."""
    return load_config(
        path,
        {
            "labels": {
                "label": label,
                "horizon_days": horizon,
                "active_days": active_days,
                "within_days": within,
            },
            "engine": {"name": engine},
        },
    )


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Data directory to write.")],
    accounts: Annotated[int, typer.Option("--accounts", min=1, help="Number of accounts.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same bytes.")] = 7,
    fmt: Annotated[
        Literal["parquet", "csv"], typer.Option("--format", help="File format of the tables.")
    ] = "parquet",
) -> None:
    """Write a simulated B2B SaaS world; its ground truth goes to OUT-truth.parquet beside it."""
    from simulator.write import simulate_to  # test data: only this verb and the demo

    with progress_bar() as progress:
        summary = simulate_to(out, accounts=accounts, seed=seed, fmt=fmt, progress=progress)
    console.print(summary)


@app.command()
def validate(data: DataOpt, config: ConfigOpt = None) -> None:
    """Check a data directory against the contract; exit 2 on a hard problem."""
    cfg = _config(config)
    report = stages.validate_data(stages.data_location(data, cfg), cfg)
    table = Table(title=f"Data contract check of {data}")
    for col in ("table", "rows", "first", "last", "hard", "soft"):
        table.add_column(col, justify="right" if col in ("rows", "hard", "soft") else "left")
    for s in report.summaries:
        hard = sum(1 for p in report.hard if p.table == s.table)
        soft = sum(1 for p in report.soft if p.table == s.table)
        table.add_row(
            s.table,
            f"{s.rows:,}",
            _when(s.first),
            _when(s.last),
            f"[red]{hard}[/]" if hard else "0",
            f"[yellow]{soft}[/]" if soft else "0",
        )
    console.print(table)
    for note in report.notes:
        console.print(escape(note))
    for p in report.soft:
        console.print(f"[yellow]warning[/] {escape(p.message)}")
    if not report.ok:
        raise ContractError(report.hard)
    console.print("[green]No hard problems:[/] the data can be used.")


def _when(value: object) -> str:
    return "" if value is None else str(value)[:10]


@app.command()
def features(
    data: DataOpt,
    as_of: AsOfOpt,
    out: Annotated[str, typer.Option("--out", help="Parquet file to write.")],
    engine: EngineOpt = None,
    within: WithinOpt = None,
    label: LabelOpt = None,
    active_days: ActiveOpt = None,
    horizon: HorizonOpt = None,
    config: ConfigOpt = None,
    after_end: AfterEndOpt = False,
) -> None:
    """Write the feature row of every account eligible at --as-of (and the feature dictionary)."""
    cfg = _config(
        config, label=label, horizon=horizon, active_days=active_days, within=within, engine=engine
    )
    folder, file = stages.data_location(data, cfg), stages.output_location(out)
    with progress_bar() as progress:
        ts = stages.build_features(folder, as_of.date(), file, cfg, progress, after_end)
    console.print(
        f"{len(ts.frame):,} accounts x {len(ts.features)} features at {as_of.date()} -> {file} "
        f"(dictionary: {file.with_suffix('.features.json')})"
    )


TrialsOpt = Annotated[
    int | None,
    typer.Option("--trials", min=1, help="Optuna trials of the final model (default 20)."),
]
FoldTrialsOpt = Annotated[
    int | None,
    typer.Option("--trials", min=1, help="Optuna trials in each backtest fold (default 8)."),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="Model URI (default models:/<registered model>@champion)."),
]


def _model_config(
    config: Path | None,
    trials: int | None,
    key: str = "trials",
    **label_options: str | int | None,
) -> ChurnConfig:
    """Settings with ``--trials`` applied to ``model.<key>``."""
    cfg = _config(config, **label_options)  # type: ignore[arg-type]
    if trials is not None:
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={key: trials})})
    return cfg


FromRunOpt = Annotated[
    str | None,
    typer.Option(
        "--from-run",
        help="Retrain with the settings a churn train run recorded, on its data folder "
        "unless --data is given (says which input files changed since).",
    ),
]


@app.command()
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
    from pipelines import training

    cfg = _model_config(config, trials, label=label, horizon=horizon, active_days=active_days)
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
        result = training.train(
            ts, cfg, force=force, progress=progress, data_dir=folder, clean=clean
        )
    _print_train(result, cfg.tracking.registered_model)


def _from_run(run_id: str, cfg: ChurnConfig, data: Path | None) -> tuple[ChurnConfig, Path]:
    """The settings a run recorded (this machine's engine and store kept) and the data
    folder to retrain on: ``data``, else the run's own; says which input files changed."""
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


def _print_train(r: TrainResult, registered_model: str) -> None:
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


@app.command()
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
    from pipelines import training

    cfg = _model_config(
        config, trials, "backtest_trials", label=label, horizon=horizon, active_days=active_days
    )
    clean = stages.open_clean(stages.data_location(data, cfg), cfg)
    with progress_bar() as progress:
        ts = stages.training_set(clean, cfg, progress)
        run = training.backtest(ts, cfg, out_dir=out, progress=progress)
    _print_evaluation(run.evaluation, run.metrics, run.baselines)
    console.print(f"MLflow run {run.run_id}")


@app.command()
def score(
    data: DataOpt,
    as_of: AsOfOpt,
    out: Annotated[str, typer.Option("--out", help="Scores directory to write (atomically).")],
    within: WithinOpt = None,
    model: ModelOpt = None,
    engine: EngineOpt = None,
    active_days: ActiveOpt = None,
    config: ConfigOpt = None,
    after_end: AfterEndOpt = False,
) -> None:
    """Score every account renewing within --within days of --as-of; write scores and report."""
    cfg = _config(config, within=within, engine=engine, active_days=active_days)
    folder, scores = stages.data_location(data, cfg), stages.output_location(out)
    with progress_bar() as progress:
        output = stages.score(
            folder, as_of.date(), scores, cfg, model, progress, after_end=after_end
        )
    bands = output.scores["band"].value_counts()
    console.print(
        f"Scored {len(output.scores):,} accounts at {as_of.date()}: "
        + ", ".join(f"{b} {int(bands.get(b, 0))}" for b in ("red", "yellow", "green"))
    )
    console.print(f"Scores: {scores / 'scores.parquet'}  (and scores.csv)")
    console.print(f"Report: [bold]{scores / 'report.html'}[/]")


@app.command()
def explain(
    account_id: Annotated[str, typer.Argument(help="The account to explain.")],
    data: DataOpt,
    as_of: AsOfOpt,
    model: ModelOpt = None,
    config: ConfigOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the waterfall PNG.")] = Path("."),
    after_end: AfterEndOpt = False,
) -> None:
    """One account's score, band, drivers, play, score history and SHAP waterfall."""
    cfg = _config(config)
    folder = stages.data_location(data, cfg)
    e = stages.explain_account(
        folder, account_id, as_of.date(), cfg, model, out, after_end=after_end
    )
    r = e.row
    colour = {"red": "red", "yellow": "yellow", "green": "green"}[r["band"]]
    name = f" ({escape(str(r['name']))})" if r.get("name") else ""
    console.rule(f"{escape(account_id)}{name}")
    console.print(
        f"Health [bold]{r['health_score']}[/]  band [{colour}]{r['band']}[/]  churn probability "
        f"{r['churn_probability']:.1%}  renewal {str(r['renewal_date'])[:10]}  ARR "
        f"{r['arr']:,.0f}  CSM {escape(str(r.get('csm') or '-'))}"
    )
    console.print("[bold]Drivers[/] (associations learned from history, not causes):")
    for d in r["driver_list"]:
        console.print(f"  - {escape(d)}")
    console.print(f"[bold]Play:[/] {escape(r['play'])}")
    h = Table(title="Score history (today's model)")
    for c in ("as_of", "health", "band", "churn probability"):
        h.add_column(c)
    for _, row in e.history.iterrows():
        h.add_row(str(row["as_of"])[:10], str(row["health_score"]), row["band"],
                  f"{row['churn_probability']:.1%}")  # fmt: skip
    console.print(h)
    console.print(f"Waterfall: {e.png}")


def _points(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


@app.command()
def plays(
    data: DataOpt,
    model: ModelOpt = None,
    config: ConfigOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the table here (CSV).")
    ] = None,
    units_out: Annotated[
        Path | None,
        typer.Option("--units", help="Also write the renewals measured, for an audit (Parquet)."),
    ] = None,
) -> None:
    """Did each play work? Its effect on churn at the next renewal for accounts at similar
    risk (doubly robust, cross-fitted), beside the naive treated-minus-untreated figure."""
    from pipelines.files import write_atomically
    from pipelines.plays import measured_table, units_table

    cfg = _config(config)
    folder = stages.data_location(data, cfg)
    with progress_bar() as progress:
        units, effects, measured = stages.measure_plays(folder, cfg, model, progress)
    n = len(units.frame)
    table = Table(
        title=f"Plays run in the {cfg.plays.lead_days} days before {n:,} renewals "
        f"({int(units.frame['any_play'].sum()):,} with a play); churn change in points, "
        "negative is fewer churners"
    )
    for c in ("play", "status", "effect [90%]", "naive [90%]", "treated", "untreated", "trimmed"):
        table.add_column(c)
    for m in measured:
        table.add_row(
            escape(m.key), m.status,
            f"{_points(m.effect)} [{_points(m.low)}, {_points(m.high)}]",
            f"{_points(m.naive)} [{_points(m.naive_low)}, {_points(m.naive_high)}]",
            f"{m.treated:,}", f"{m.untreated:,}", f"{m.trimmed:,}",
        )  # fmt: skip
    console.print(table)
    for m in measured:
        for line in m.lines:
            console.print(f"  {escape(line)}")
    if units.unknown_activities:
        console.print(
            f"{units.unknown_activities:,} activities name a play that is not in the catalogue "
            "and were not measured (see churn validate)."
        )
    if out is not None:
        write_atomically(lambda p: measured_table(measured).to_csv(p, index=False), out)
        console.print(f"Table: {out}")
    if units_out is not None:
        audit = units_table(units, effects, measured)
        write_atomically(lambda p: audit.to_parquet(p, index=False), units_out)
        console.print(f"Renewals: {units_out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Where the demo writes.")] = Path("data/demo"),
    accounts: Annotated[int, typer.Option("--accounts", min=50)] = 1000,
    trials: TrialsOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The whole pipeline on a simulated world: simulate, validate, train with backtest and
    champion gate, then score the renewals of the next 120 days and write the report."""
    from pipelines import training
    from simulator import SimConfig
    from simulator.write import simulate_to

    cfg = _model_config(config, trials)
    if "history" not in cfg.scoring.model_fields_set:
        # The demo's score history beside its other output, not in the working directory.
        scoring = cfg.scoring.model_copy(update={"history": out / "score-history.parquet"})
        cfg = cfg.model_copy(update={"scoring": scoring})
    data = out / "world"
    console.rule("1. Simulate a B2B SaaS world")
    with progress_bar() as progress:
        console.print(
            simulate_to(data, accounts=accounts, seed=cfg.seed, fmt="parquet", progress=progress)
        )
    console.rule("2. Validate it against the data contract")
    validate(str(data), config)
    console.rule("3. Train: backtest the procedure against the baselines, train, gate")
    clean = stages.open_clean(data, cfg)
    with progress_bar() as progress:
        ts = stages.training_set(clean, cfg, progress, out / "training-set.parquet")
        result = training.train(ts, cfg, progress=progress, clean=clean)
    _print_train(result, cfg.tracking.registered_model)
    today = SimConfig().end
    console.rule(f"4. Score the renewals of the next {cfg.labels.within_days} days ({today})")
    scores_dir = out / "scores"
    model = f"models:/{cfg.tracking.registered_model}/{result.version}"
    if not result.is_champion:
        console.print(
            f"[yellow]Version {result.version} is not the champion (see above); the demo "
            f"scores with it anyway ({model}) to show the report.[/]"
        )
    with progress_bar() as progress:
        output = stages.score(data, today, scores_dir, cfg, model, progress)
    bands = output.scores["band"].value_counts()
    console.print(
        f"Scored {len(output.scores):,} accounts: "
        + ", ".join(f"{b} {int(bands.get(b, 0))}" for b in ("red", "yellow", "green"))
    )
    console.rule("Where to look")
    console.print(f"Report for CS ops:  [bold]{scores_dir / 'report.html'}[/]")
    console.print(f"Scores:             {scores_dir / 'scores.parquet'} (and scores.csv)")
    console.print(f"Data and truth:     {data}  {data}-truth.parquet")
    console.print(f"Training set:       {out / 'training-set.parquet'} (+ .features.json)")
    console.print(f"Score history:      {cfg.scoring.history}")
    console.print("MLflow:             mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db")


def main() -> None:
    """Entry point: map bad input to exit code 2 and anything unexpected to 1."""
    try:
        app(standalone_mode=False)
    except ContractError as err:
        errors.print(f"[red]error:[/] {escape(str(err))}", soft_wrap=True)
        sys.exit(2)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except typer.Abort:
        sys.exit(1)
    except typer.TyperException as err:
        # A usage error (unknown option, bad date): typer formats it; exit 2 like bad input.
        show = getattr(err, "show", None)
        if callable(show):
            show()
        else:
            errors.print(f"[red]error:[/] {escape(str(err))}")
        sys.exit(2)
    except Exception as err:  # the last resort of the CLI: report, exit 1
        errors.print(traceback.format_exc(), markup=False)
        errors.print(
            f"[red]internal error:[/] {escape(repr(err))}. Please report it with the trace above."
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
