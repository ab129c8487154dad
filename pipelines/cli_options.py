"""What every ``churn`` command shares: the consoles, the options, the progress bar, settings.

The commands themselves live in :mod:`pipelines.cli_data`, :mod:`pipelines.cli_train` and
:mod:`pipelines.cli_score`; :mod:`pipelines.cli` registers them on the one typer app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from pipelines.config import ChurnConfig, load_config

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


def config_with_options(
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


def config_with_trials(
    config: Path | None,
    trials: int | None,
    key: str = "trials",
    **label_options: str | int | None,
) -> ChurnConfig:
    """Settings with ``--trials`` applied to ``model.<key>``."""
    cfg = config_with_options(config, **label_options)  # type: ignore[arg-type]
    if trials is not None:
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={key: trials})})
    return cfg
