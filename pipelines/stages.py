"""Stages wired to their inputs and outputs; the CLI, MLflow Projects and notebooks call these.

Each function reads, calls the pure stage functions of :mod:`features` and :mod:`models`,
and writes, so I/O stays here at the edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import ibis.expr.types as ir
import pandas as pd
from ibis.backends import BaseBackend

from features.errors import ContractError
from features.progress import Progress, part
from features.read import connect, file_uri_path, read_data, uri_scheme
from features.resources import free_cores
from features.snapshots import day_number, terms
from features.training import (
    TrainingSet,
    build_scoring_set,
    build_training_set,
    scoring_snapshots,
    write_dictionary,
)
from features.validate import CleanData, Report, load, validate
from models.play_effects import PlayEffect
from models.plays import MeasuredPlay
from pipelines.config import ChurnConfig, with_known_plays
from pipelines.files import write_atomically
from pipelines.outlook import outlook
from pipelines.plays import (
    PlayUnits,
    check_measurable,
    check_units,
    measure,
    units_from_tables,
)
from pipelines.scoring import (
    ScoreOutput,
    ScoringModel,
    accounts_info,
    check_features_match,
    default_model_uri,
    load_scoring_model,
    read_history,
    score_frame,
    scoring_set,
    write_history,
    write_scores_dir,
)
from pipelines.tracking import check_model_uri, open_tracking


def engine(cfg: ChurnConfig) -> BaseBackend:
    """A connection to the configured engine (the Spark master only matters for Spark)."""
    e = cfg.engine
    spark = {"master": e.spark_master} if e.name == "spark" else {}
    return connect(e.name, threads=e.threads, memory_limit=e.memory_limit, **spark)


def data_location(location: str | Path, cfg: ChurnConfig, setting: str = "--data") -> Path:
    """The folder that ``--data`` names, given as a path or a URI (typed as given).

    ``file://`` URIs are local paths (Spark reads every local file as a ``file:`` URI).
    Object-store URIs (``s3a://``, ``abfss://``, ``gs://``) exit 2 with what to do: DuckDB
    reads local files only; on Spark the message says first whether Spark's Hadoop has a
    connector for the scheme, and with one, that the driver must read the files too.
    """
    local = _local_path(location, setting)
    if local is not None:
        return local
    scheme, text = uri_scheme(location), str(location)
    if cfg.engine.name != "spark":
        raise ContractError(
            f"{setting} {text}: an object-store URI ({scheme}://), and engine.name is "
            f"{cfg.engine.name}, which reads local files only here (DuckDB would need an "
            "extension downloaded at run time, which churn does not do). Run with --engine "
            f"spark and the Hadoop connector for {scheme}:// (README, 'Object stores'), or "
            "copy or mount the export to a local path and give that path."
        )
    from features.spark import hadoop_connector  # pyspark is an optional extra

    found, fix = hadoop_connector(engine(cfg), text)
    # Spark alone could read the bucket; churn's driver reads the files too.
    driver = (
        "churn also reads the export on the driver (CSV dialects, Parquet time zones, the "
        "training data's fingerprint), which it does not do through Hadoop yet: mount the "
        "bucket at the same path on the driver and every executor (a FUSE mount, a "
        "Databricks volume) and give that path."
    )
    if found is None:
        raise ContractError(f"{setting} {text}: {fix}. Even so, {driver}")
    raise ContractError(f"{setting} {text}: Spark reads {scheme}:// with {found}, but {driver}")


def _local_path(location: str | Path, setting: str) -> Path | None:
    """The local path a plain path or a ``file://`` URI names; ``None`` for any other URI."""
    scheme = uri_scheme(location)
    if scheme is None:
        return Path(location)
    if scheme == "file":
        return file_uri_path(str(location), setting)
    return None


def output_location(location: str | Path, setting: str = "--out") -> Path:
    """The local path that an output option names; object-store URIs exit 2: the driver
    writes the output itself (atomically, by renaming a finished folder)."""
    local = _local_path(location, setting)
    if local is not None:
        return local
    raise ContractError(
        f"{setting} {location}: an object-store URI ({uri_scheme(location)}://). The driver "
        "writes this output itself and replaces it in one rename, which object stores do not "
        "offer. "
        "Write to a local or mounted path and copy the folder to the bucket afterwards."
    )


def validate_data(data_dir: Path, cfg: ChurnConfig) -> Report:
    """Read and check a data directory on the configured engine."""
    return validate(read_data(data_dir, engine(cfg), cfg.data), cfg.data)


def open_clean(data_dir: Path, cfg: ChurnConfig) -> CleanData:
    """Read and validate on the configured engine; raise on a hard problem."""
    return load(data_dir, engine(cfg), cfg.data)


def training_set(
    clean: CleanData, cfg: ChurnConfig, progress: Progress = None, write_to: Path | None = None
) -> TrainingSet:
    """All labelled history of ``clean`` as a training set; written too when asked."""
    end = clean.report.end.day if clean.report.end else None
    ts = build_training_set(clean.tables, cfg.labels, cfg.features, end, progress)
    if write_to is not None:
        write_atomically(lambda p: ts.frame.to_parquet(p, index=False), write_to)
        write_atomically(
            lambda p: write_dictionary(ts.features, p), write_to.with_suffix(".features.json")
        )
    return ts


def build_features(
    data_dir: Path,
    as_of: date,
    out: Path,
    cfg: ChurnConfig,
    progress: Progress = None,
    after_end: bool = False,
) -> TrainingSet:
    """Feature rows of every account eligible at ``as_of``, written to ``out`` (Parquet).

    The feature dictionary goes beside it as ``<out>.features.json``.
    """
    clean = open_clean(data_dir, cfg)
    check_within_data(clean, as_of, after_end)
    check_eligible(clean.tables, as_of, cfg)
    ts = build_scoring_set(clean.tables, as_of, cfg.labels, cfg.features, progress=progress)
    write_atomically(lambda p: ts.frame.to_parquet(p, index=False), out)
    write_atomically(lambda p: write_dictionary(ts.features, p), out.with_suffix(".features.json"))
    return ts


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


def check_within_data(clean: CleanData, as_of: date, after_end: bool) -> None:
    """Refuse an ``as_of`` after the end of the data unless asked for (``--after-end``):
    the days between would read as silence, every account as inactive."""
    end = clean.report.end
    if end is None or as_of <= end.day or after_end:
        return
    raise ContractError(
        f"--as-of {as_of} is after the end of the data, {end.day} ({end.how}): the "
        f"{(as_of - end.day).days} days between would read as days without any activity. "
        f"Score at --as-of {end.day} or earlier, export newer data, or pass --after-end "
        "to score at that date anyway."
    )


def check_model_tables(sm: ScoringModel, tables: Mapping[str, object], data_dir: Path) -> None:
    """Refuse data that lacks a table the model was trained with (naming it), before any
    feature is built."""
    missing: dict[str, list[str]] = {}
    for f in sm.features:
        if f.source not in tables:
            missing.setdefault(f.source, []).append(f.name)
    if missing:
        raise ContractError(
            "\n".join(
                f"{table}: the model {sm.uri} (version {sm.version}) was trained with the "
                f"{table} table ({len(names)} features: {', '.join(names[:3])}"
                f"{', ...' if len(names) > 3 else ''}), and {data_dir} has no {table}.parquet "
                f"or {table}.csv. Add the {table} export, or score with a model trained "
                f"without it (churn train --data DIR on the same tables)."
                for table, names in missing.items()
            )
        )


def check_eligible(tables: Mapping[str, ir.Table], as_of: date, cfg: ChurnConfig) -> None:
    """Refuse an ``as_of`` at which no account is eligible, saying why and what to change.

    Scoring zero rows would write an empty scores directory (and ``features`` an empty
    file): a wrong ``--as-of`` or ``labels.within_days`` far more often than a fact.
    """
    if scoring_snapshots(tables, as_of, cfg.labels).count().to_pyarrow().as_py():
        return
    raise ContractError(
        f"no account is eligible at --as-of {as_of}: {_why_none(tables, as_of, cfg)}"
    )


def _why_none(tables: Mapping[str, ir.Table], as_of: date, cfg: ChurnConfig) -> str:
    """What the data hold around ``as_of`` when no account is eligible then."""
    labels, day = cfg.labels, day_number(as_of)
    on = lambda d: date(1970, 1, 1) + timedelta(days=int(d))  # noqa: E731  (a day number)
    if labels.label == "inactivity":
        ev = tables["events"]
        row = ev.aggregate(first=ev.ts.min(), last=ev.ts.max()).to_pyarrow().to_pylist()[0]
        if row["first"] is None:
            return "the events table has no rows."
        first, last = row["first"].date(), row["last"].date()
        if as_of <= first:
            return (
                f"it is not after the first event ({first}). Choose an --as-of between "
                f"{first + timedelta(days=1)} and {last + timedelta(days=1)}."
            )
        return (
            f"no account has an event in the labels.active_days ({labels.active_days}) days "
            f"before it ({as_of - timedelta(days=labels.active_days)} to "
            f"{as_of - timedelta(days=1)}); the events run from {first} to {last}. Choose an "
            "--as-of with events in the days before it, or raise --active-days "
            "(labels.active_days)."
        )
    t = terms(tables["contracts"])
    is_open = (t.start_day < day) & (t.end_day > day)
    row = (
        t.aggregate(
            first=t.start_day.min(), last=t.end_day.max(), next=t.end_day.min(where=is_open)
        )
        .to_pyarrow()
        .to_pylist()[0]
    )
    if row["first"] is None:
        return "the contracts table has no terms."
    span = f"the contract terms run from {on(row['first'])} to {on(row['last'])}"
    if row["next"] is None:
        return (
            f"no contract term is open then (started before it, ending after it); {span}. "
            f"Choose an --as-of between {on(row['first'] + 1)} and {on(row['last'] - 1)}."
        )
    lead = int(row["next"]) - day
    return (
        f"no open contract term ends within labels.within_days ({labels.within_days}) days "
        f"of it; the next renewal is on {on(row['next'])}, {lead} days later ({span}). "
        f"Raise --within (labels.within_days) to at least {lead}, or choose a later --as-of."
    )


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
        one = TrainingSet(ts.frame[today].reset_index(drop=True), ts.features, ts.top_events)
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
