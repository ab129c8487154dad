"""The ``churn`` commands that use a trained model: ``score``, ``explain`` and ``plays``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pipelines import stages
from pipelines.cli_options import (
    ActiveOpt,
    AfterEndOpt,
    AsOfOpt,
    ConfigOpt,
    DataOpt,
    EngineOpt,
    ModelOpt,
    WithinOpt,
    config_with_options,
    console,
    progress_bar,
)
from pipelines.startup import loading


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
    with loading():  # MLflow, LightGBM: only in the commands that need them
        from pipelines import model_stages

    cfg = config_with_options(config, within=within, engine=engine, active_days=active_days)
    folder, scores = stages.data_location(data, cfg), stages.output_location(out)
    with progress_bar() as progress:
        output = model_stages.score(
            folder, as_of.date(), scores, cfg, model, progress, after_end=after_end
        )
    bands = output.scores["band"].value_counts()
    console.print(
        f"Scored {len(output.scores):,} accounts at {as_of.date()}: "
        + ", ".join(f"{b} {int(bands.get(b, 0))}" for b in ("red", "yellow", "green"))
    )
    console.print(f"Scores: {scores / 'scores.parquet'}  (and scores.csv)")
    console.print(f"Report: [bold]{scores / 'report.html'}[/]")


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
    with loading():  # MLflow, LightGBM: only in the commands that need them
        from pipelines import model_stages

    cfg = config_with_options(config)
    folder = stages.data_location(data, cfg)
    e = model_stages.explain_account(
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
    with loading():
        from pipelines import model_stages
        from pipelines.files import write_atomically
        from pipelines.plays import measured_table, units_table

    cfg = config_with_options(config)
    folder = stages.data_location(data, cfg)
    with progress_bar() as progress:
        units, effects, measured = model_stages.measure_plays(folder, cfg, model, progress)
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
