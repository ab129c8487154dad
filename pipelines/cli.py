"""The ``churn`` command line: one verb per stage, bad input exits 2, internal errors exit 1."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from features.errors import ContractError
from pipelines import stages
from pipelines.config import ChurnConfig, load_config

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
    Path | None, typer.Option("--config", help="YAML settings file (default: ./churn.yaml if present).")
]
DataOpt = Annotated[Path, typer.Option("--data", help="Data directory (see DATA_CONTRACT.md).")]


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
    with progress_bar() as progress:
        summary = stages.simulate_world(out, accounts=accounts, seed=seed, fmt=fmt, progress=progress)
    console.print(summary)


@app.command()
def validate(data: DataOpt, config: ConfigOpt = None) -> None:
    """Check a data directory against the contract; exit 2 on a hard problem."""
    cfg = _config(config)
    report = stages.validate_data(data, cfg)
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
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write.")],
    engine: EngineOpt = None,
    within: WithinOpt = None,
    label: LabelOpt = None,
    active_days: ActiveOpt = None,
    horizon: HorizonOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write the feature row of every account eligible at --as-of (and the feature dictionary)."""
    cfg = _config(
        config, label=label, horizon=horizon, active_days=active_days, within=within, engine=engine
    )
    with progress_bar() as progress:
        ts = stages.build_features(data, as_of.date(), out, cfg, progress)
    console.print(
        f"{len(ts.frame):,} accounts x {len(ts.features)} features at {as_of.date()} -> {out} "
        f"(dictionary: {out.with_suffix('.features.json')})"
    )


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Where the demo writes.")] = Path("data/demo"),
    accounts: Annotated[int, typer.Option("--accounts", min=50)] = 1000,
    config: ConfigOpt = None,
) -> None:
    """Run the whole pipeline on a simulated world: simulate, validate, and the later stages."""
    cfg = _config(config)
    data = out / "world"
    with progress_bar() as progress:
        console.print(
            stages.simulate_world(data, accounts=accounts, seed=cfg.seed, fmt="parquet", progress=progress)
        )
    validate(data, config)
    console.print(f"\nDemo data: [bold]{data}[/]  ground truth: [bold]{data}-truth.parquet[/]")


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
        errors.print(f"[red]internal error:[/] {escape(repr(err))}. Please report it with the trace above.")
        sys.exit(1)


if __name__ == "__main__":
    main()
