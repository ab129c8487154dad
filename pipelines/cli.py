"""The ``churn`` command line: one verb per stage, bad input exits 2, internal errors exit 1.

The verbs are registered here on the one typer app, in the order ``churn --help`` lists
them; they live by what they do in :mod:`pipelines.cli_data` (validate, features),
:mod:`pipelines.cli_train` (train, backtest) and :mod:`pipelines.cli_score` (score, explain,
plays). ``simulate`` and ``demo`` stay here: they are the only verbs that may import the
simulator (the import contract in ``pyproject.toml`` names this module).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape

from features.errors import ContractError
from pipelines import stages
from pipelines.cli_data import features, validate
from pipelines.cli_options import (
    ConfigOpt,
    TrialsOpt,
    config_with_trials,
    console,
    errors,
    progress_bar,
)
from pipelines.cli_score import explain, plays, score
from pipelines.cli_train import backtest, print_train_result, train
from pipelines.startup import loading, own_process

app = typer.Typer(
    name="churn",
    help="Predictive customer health: learn the weights from history, prove them, explain them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def simulate(
    out: Annotated[Path, typer.Option("--out", help="Data directory to write.")],
    accounts: Annotated[int, typer.Option("--accounts", min=1, help="Number of accounts.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same bytes.")] = 7,
    fmt: Annotated[
        Literal["parquet", "csv"], typer.Option("--format", help="File format of the tables.")
    ] = "parquet",
) -> None:
    """Write a simulated B2B SaaS world; its ground truth goes to OUT-truth.parquet beside it."""
    with loading():
        from simulator.write import simulate_to  # test data: only this verb and the demo

    with progress_bar() as progress:
        summary = simulate_to(out, accounts=accounts, seed=seed, fmt=fmt, progress=progress)
    console.print(summary)


def demo(
    out: Annotated[Path, typer.Option("--out", help="Where the demo writes.")] = Path("data/demo"),
    accounts: Annotated[int, typer.Option("--accounts", min=50)] = 1000,
    trials: TrialsOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The whole pipeline on a simulated world: simulate, validate, train with backtest and
    champion gate, then score the renewals of the next 120 days and write the report."""
    with loading():
        from pipelines import model_stages
        from pipelines.training import run_training
        from simulator import SimConfig
        from simulator.write import simulate_to

    cfg = config_with_trials(config, trials)
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
        result = run_training(ts, cfg, progress=progress, clean=clean)
    print_train_result(result, cfg.tracking.registered_model)
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
        output = model_stages.score(data, today, scores_dir, cfg, model, progress)
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


# The order here is the order of ``churn --help``.
for verb in (simulate, validate, features, train, backtest, score, explain, plays, demo):
    app.command()(verb)


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
    own_process()
    main()
