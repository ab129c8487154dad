"""The ``churn`` commands that read a data directory: ``validate`` and ``features``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from features.errors import ContractError
from pipelines import stages
from pipelines.cli_options import (
    ActiveOpt,
    AfterEndOpt,
    AsOfOpt,
    ConfigOpt,
    DataOpt,
    EngineOpt,
    HorizonOpt,
    LabelOpt,
    WithinOpt,
    config_with_options,
    console,
    progress_bar,
)


def validate(data: DataOpt, config: ConfigOpt = None) -> None:
    """Check a data directory against the contract; exit 2 on a hard problem."""
    cfg = config_with_options(config)
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
    cfg = config_with_options(
        config, label=label, horizon=horizon, active_days=active_days, within=within, engine=engine
    )
    folder, file = stages.data_location(data, cfg), stages.output_location(out)
    with progress_bar() as progress:
        ts = stages.build_features(folder, as_of.date(), file, cfg, progress, after_end)
    console.print(
        f"{len(ts.frame):,} accounts x {len(ts.features)} features at {as_of.date()} -> {file} "
        f"(dictionary: {file.with_suffix('.features.json')})"
    )
