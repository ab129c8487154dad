"""The stages that need a trained model: score a book, explain one account, measure plays.

They load the model through MLflow, so the CLI imports this module only in the commands
that run them, and ``churn validate``, ``churn features`` or ``--help`` start without
MLflow and LightGBM. The data stages they build on are in :mod:`pipelines.stages`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import pandas as pd

from features.errors import ContractError
from features.progress import Progress, part
from features.resources import free_cores
from features.scoring_set import ScoringSet, build_scoring_set
from features.training import build_training_set
from models.play_effects import PlayEffect
from models.plays import MeasuredPlay
from pipelines.config import ChurnConfig, with_known_plays
from pipelines.outlook import outlook
from pipelines.plays import (
    PlayUnits,
    check_measurable,
    check_units,
    measure,
    units_from_tables,
)
from pipelines.scores_dir import read_history, write_history, write_scores_dir
from pipelines.scoring import (
    ScoreOutput,
    accounts_info,
    check_features_match,
    score_frame,
    scoring_set,
)
from pipelines.scoring_checks import check_eligible, check_model_tables, check_within_data
from pipelines.scoring_model import ScoringModel, default_model_uri, load_scoring_model
from pipelines.stages import open_clean
from pipelines.tracking import check_model_uri, open_tracking


def _scoring_model(cfg: ChurnConfig, model_uri: str | None) -> tuple[ScoringModel, ChurnConfig]:
    """Load the model (default: the champion) and the settings to score with.

    The model decides the label mode it was trained for; the run decides the horizon. The
    plays are the model's own (those of the settings it was trained with, what the served
    model answers), unless the settings name plays (``plays:`` in ``churn.yaml``).
    Reading a model creates nothing: no store, no experiment, no ``mlruns/`` folder.
    """
    tracking_uri = open_tracking(cfg.tracking)
    if model_uri is not None:
        check_model_uri(model_uri, tracking_uri)
    sm = load_scoring_model(model_uri or default_model_uri(cfg.tracking.registered_model))
    if "plays" not in cfg.model_fields_set:
        cfg = cfg.model_copy(update={"plays": sm.plays})
    elif not cfg.plays.measured:
        # The team's own plays, with the effects training measured (routing reads them).
        cfg = cfg.model_copy(
            update={"plays": cfg.plays.model_copy(update={"measured": sm.plays.measured})}
        )
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
    after_end: bool = False,
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
    check_model_tables(sm, clean.tables, data_dir)
    check_within_data(clean, as_of, after_end)
    check_eligible(clean.tables, as_of, cfg)
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
    contracts = (
        clean.tables["contracts"].select("account_id", "end_date", "outcome").to_pandas()
        if "contracts" in clean.tables
        else None
    )
    output = replace(
        output,
        outlook=outlook(output.scores, previous, contracts, as_of, ctx.get("expected_on_folds")),
    )
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
        outlook=output.outlook,
        plays=cfg.plays.measured,
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
    after_end: bool = False,
) -> AccountExplanation:
    """Score one account at ``as_of``, with its drivers, play, waterfall and score history.

    The history re-scores the account on the same day of each of the previous months
    (when it was eligible then), with today's model.
    """
    sm, cfg = _scoring_model(cfg, model_uri)
    # Wide horizon: explain any account with an open term, not only those renewing soon.
    wide = cfg.model_copy(update={"labels": cfg.labels.model_copy(update={"within_days": 3650})})
    clean = open_clean(data_dir, wide)
    check_model_tables(sm, clean.tables, data_dir)
    check_within_data(clean, as_of, after_end)
    info = accounts_info(clean.tables)
    if account_id not in set(info["account_id"]):
        raise ContractError(f"accounts: no account {account_id!r} in {data_dir}")
    # One build for the account alone at every day of its history: the rows are those of
    # a whole-book build (the features of an account read only its own data).
    days = [
        (pd.Timestamp(as_of) - pd.DateOffset(months=k)).date() for k in range(history_months + 1)
    ]
    ts = build_scoring_set(
        clean.tables, days, wide.labels, wide.features, sm.top_events, accounts=[account_id]
    )
    scored = score_frame(ts, info, sm, cfg.plays, waterfalls=0).scores.sort_values("as_of")
    history = scored[["as_of", "churn_probability", "health_score", "band"]]
    today = ts.frame["as_of"].dt.date == as_of
    row, png = None, b""
    if today.any():
        one = ScoringSet(ts.frame[today].reset_index(drop=True), ts.features, ts.top_events)
        now = score_frame(one, info, sm, cfg.plays, waterfalls=1)
        row, png = now.scores.iloc[0], now.waterfalls.get(account_id, b"")
    if row is None:
        raise ContractError(
            f"{account_id} is not eligible at {as_of}: no open contract term then "
            "(renewal mode) or no activity in the active window (inactivity mode)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"explain-{account_id}-{as_of}.png"
    path.write_bytes(png)
    return AccountExplanation(row, history.reset_index(drop=True), path)


def measure_plays(
    data_dir: Path, cfg: ChurnConfig, model_uri: str | None = None, progress: Progress = None
) -> tuple[PlayUnits, list[PlayEffect], tuple[MeasuredPlay, ...]]:
    """Each play's effect on churn at the next renewal, measured with the model's
    point-in-time probability and drivers (:mod:`pipelines.plays`)."""
    sm, cfg = _scoring_model(cfg, model_uri)
    cfg = with_known_plays(cfg)
    clean = open_clean(data_dir, cfg)
    check_measurable(clean.tables, cfg.labels.label)
    check_model_tables(sm, clean.tables, data_dir)
    end = clean.report.end.day if clean.report.end else None
    build = part(progress, 0.0, 0.5, "features")
    ts = build_training_set(clean.tables, cfg.labels, cfg.features, end, build, sm.top_events)
    check_features_match(sm, ts)
    if progress:
        progress("refitting the model by account", 0.55)
    units = units_from_tables(
        clean.tables, ts.frame, sm.top_events, sm.scorer, cfg.labels, cfg.features, cfg.plays,
        end, seed=cfg.seed, num_threads=free_cores(),
    )  # fmt: skip
    check_units(units, ts.frame, cfg.plays)
    effects, measured = measure(
        units, cfg.plays, seed=cfg.seed, progress=part(progress, 0.7, 1.0, "plays")
    )
    return units, effects, measured
