"""Stages wired to their inputs and outputs; the CLI, MLflow Projects and notebooks call these.

Each function reads, calls the pure stage functions of :mod:`features` and :mod:`models`,
and writes, so I/O stays here at the edge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import pandas as pd
from ibis.backends import BaseBackend

from features.errors import ContractError
from features.read import connect, read_data
from features.training import (
    TrainingSet,
    build_scoring_set,
    build_training_set,
    write_dictionary,
)
from features.validate import CleanData, Report, load, validate
from pipelines.config import ChurnConfig
from pipelines.files import write_atomically
from pipelines.scoring import (
    ScoreOutput,
    ScoringModel,
    accounts_info,
    default_model_uri,
    load_scoring_model,
    read_history,
    score_frame,
    scoring_set,
    write_history,
    write_scores_dir,
)
from pipelines.tracking import setup_tracking

Progress = Callable[[str, float], None] | None


def simulate_world(
    out: Path,
    accounts: int,
    seed: int,
    fmt: Literal["parquet", "csv"],
    progress: Progress = None,
) -> str:
    """Simulate a world and write it to ``out`` (truth beside it); return a one-line summary."""
    from features.simulator import SimConfig, simulate, write_world

    world = simulate(SimConfig(accounts=accounts, seed=seed), progress=progress)
    write_world(world, out, fmt)
    t = world.tables
    return (
        f"Simulated {len(t['accounts']):,} accounts, {len(t['contracts']):,} terms, "
        f"{len(t['events']):,} events into {out}"
    )


def engine(cfg: ChurnConfig) -> BaseBackend:
    """A connection to the configured engine (the Spark master only matters for Spark)."""
    e = cfg.engine
    spark = {"master": e.spark_master} if e.name == "spark" else {}
    return connect(e.name, threads=e.threads, memory_limit=e.memory_limit, **spark)


def validate_data(data_dir: Path, cfg: ChurnConfig) -> Report:
    """Read and check a data directory on the configured engine."""
    return validate(read_data(data_dir, engine(cfg)))


def open_clean(data_dir: Path, cfg: ChurnConfig) -> CleanData:
    """Read and validate on the configured engine; raise on a hard problem."""
    return load(data_dir, engine(cfg))


def training_set(
    clean: CleanData, cfg: ChurnConfig, progress: Progress = None, write_to: Path | None = None
) -> TrainingSet:
    """All labelled history of ``clean`` as a training set; written too when asked."""
    ts = build_training_set(clean.tables, cfg.labels, cfg.features, progress=progress)
    if write_to is not None:
        write_atomically(lambda p: ts.frame.to_parquet(p, index=False), write_to)
        write_atomically(
            lambda p: write_dictionary(ts.features, p), write_to.with_suffix(".features.json")
        )
    return ts


def build_features(
    data_dir: Path, as_of: date, out: Path, cfg: ChurnConfig, progress: Progress = None
) -> TrainingSet:
    """Feature rows of every account eligible at ``as_of``, written to ``out`` (Parquet).

    The feature dictionary goes beside it as ``<out>.features.json``.
    """
    clean = open_clean(data_dir, cfg)
    ts = build_scoring_set(clean.tables, as_of, cfg.labels, cfg.features, progress=progress)
    write_atomically(lambda p: ts.frame.to_parquet(p, index=False), out)
    write_atomically(lambda p: write_dictionary(ts.features, p), out.with_suffix(".features.json"))
    return ts


def _scoring_model(cfg: ChurnConfig, model_uri: str | None) -> tuple[ScoringModel, ChurnConfig]:
    """Load the model (default: the champion) and the settings to score with.

    The model decides the label mode it was trained for; the run decides the horizon.
    """
    setup_tracking(cfg.tracking)
    sm = load_scoring_model(model_uri or default_model_uri(cfg.tracking.registered_model))
    trained = sm.context.get("labels", {})
    if not trained:
        return sm, cfg
    labels = cfg.labels.model_copy(
        update={k: v for k, v in trained.items() if k in ("label", "horizon_days")}
    )
    return sm, cfg.model_copy(update={"labels": labels})


def score(
    data_dir: Path,
    as_of: date,
    out: Path,
    cfg: ChurnConfig,
    model_uri: str | None = None,
    progress: Progress = None,
    crash_after: str | None = None,
) -> ScoreOutput:
    """Score every eligible account at ``as_of`` and write the scores directory atomically.

    The score history (``cfg.scoring.history``) gives each account's previous score and is
    rewritten with this run's rows once the scores directory is written.
    """
    from pipelines.report import render_report

    sm, cfg = _scoring_model(cfg, model_uri)
    if progress:
        progress("reading data", 0.05)
    history = Path(cfg.scoring.history).expanduser().absolute()
    previous = read_history(history)
    clean = open_clean(data_dir, cfg)
    write_parquet = None
    if cfg.engine.name == "spark":
        from pipelines import spark_scoring  # pyspark is an optional extra

        output = spark_scoring.score_on_spark(
            clean.con, clean.tables, as_of, sm, cfg, previous, progress,
            waterfalls=cfg.scoring.waterfalls,
        )  # fmt: skip
        write_parquet = spark_scoring.parquet_writer(clean.con)
    else:
        ts = scoring_set(clean.tables, as_of, sm, cfg, progress)
        if progress:
            progress("scoring and explaining", 0.6)
        output = score_frame(
            ts, accounts_info(clean.tables), sm, cfg.plays, previous, cfg.scoring.waterfalls
        )
    ctx = sm.context
    html = render_report(
        output.scores,
        as_of=as_of,
        model_version=sm.version,
        thresholds=ctx["thresholds"],
        band_quality=ctx["band_quality"],
        backtest=ctx["backtest"],
        evaluation=ctx["evaluation"],
        drift=output.drift,
        waterfalls=output.waterfalls,
    )
    if progress:
        progress("writing", 0.9)
    write_scores_dir(out, output, html, crash_after=crash_after, write_parquet=write_parquet)
    write_history(history, output.history)
    return output


@dataclass(frozen=True)
class AccountExplanation:
    """What ``churn explain`` shows for one account."""

    row: pd.Series
    history: pd.DataFrame
    png: Path


def explain_account(
    data_dir: Path,
    account_id: str,
    as_of: date,
    cfg: ChurnConfig,
    model_uri: str | None = None,
    out_dir: Path = Path("."),
    history_months: int = 6,
) -> AccountExplanation:
    """Score one account at ``as_of``, with its drivers, play, waterfall and score history.

    The history re-scores the account on the same day of each of the previous months
    (when it was eligible then), with today's model.
    """
    sm, cfg = _scoring_model(cfg, model_uri)
    # Wide horizon: explain any account with an open term, not only those renewing soon.
    wide = cfg.model_copy(update={"labels": cfg.labels.model_copy(update={"within_days": 3650})})
    clean = open_clean(data_dir, wide)
    info = accounts_info(clean.tables)
    if account_id not in set(info["account_id"]):
        raise ContractError(f"accounts: no account {account_id!r} in {data_dir}")
    history = []
    row = None
    png = b""
    for k in range(history_months, -1, -1):
        day = (pd.Timestamp(as_of) - pd.DateOffset(months=k)).date()
        ts = scoring_set(clean.tables, day, sm, wide)
        mine = ts.frame[ts.frame["account_id"] == account_id]
        if mine.empty:
            continue
        one = TrainingSet(mine.reset_index(drop=True), ts.features, ts.top_events)
        scored = score_frame(one, info, sm, cfg.plays, waterfalls=1 if k == 0 else 0)
        history.append(
            scored.scores.iloc[0][["as_of", "churn_probability", "health_score", "band"]]
        )
        if k == 0:
            row = scored.scores.iloc[0]
            png = scored.waterfalls.get(account_id, b"")
    if row is None:
        raise ContractError(
            f"{account_id} is not eligible at {as_of}: no open contract term then "
            "(renewal mode) or no activity in the active window (inactivity mode)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"explain-{account_id}-{as_of}.png"
    path.write_bytes(png)
    return AccountExplanation(row, pd.DataFrame(history).reset_index(drop=True), path)
