"""Cohort-labelled training sets and scoring sets: snapshots, labels and features together.

This is the one place that turns Ibis expressions into pandas: the final frame is what the
model reads. ``train`` and ``backtest`` call :func:`build_training_set`; ``score`` and
``features`` call :func:`build_scoring_set`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from features.build import feature_table
from features.catalog import Feature, dictionary
from features.config import FeatureConfig, LabelConfig
from features.errors import ContractError
from features.progress import Progress
from features.snapshots import (
    calendar_days,
    day_number,
    epoch_day,
    inactivity_snapshots,
    open_term_snapshots,
    renewal_snapshots,
)
from features.usage import common_events, lookback_days, rollups
from features.windows import account_splits

ID_COLUMNS = ("account_id", "contract_id", "as_of", "lead_days")
LABEL_COLUMNS = ("label", "label_known_at", "expansion")
CONTEXT_COLUMNS = (
    "renewal_date",
    "segment",
    "arr",
    "cohort_month",
    "tenure_bucket",
    "signup_quarter",
)
TENURE_BUCKETS = ((365, "<1y"), (730, "1-2y"), (1095, "2-3y"), (np.inf, "3y+"))
#: The columns of a feature expression that :func:`frame_from_raw` reads besides the features.
RAW_COLUMNS = ("account_id", "contract_id", "as_of_day", "lead_days", "label", "label_known_day",
               "expansion", "renewal_day", "segment", "arr", "tenure_days")  # fmt: skip
#: The order of the rows of every training and scoring set.
ROW_ORDER = ("as_of", "account_id", "contract_id")


@dataclass(frozen=True)
class TrainingSet:
    """One row per snapshot: ids, label, cohorts and the declared features, in that order."""

    frame: pd.DataFrame
    features: tuple[Feature, ...]
    top_events: tuple[str, ...]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


@dataclass(frozen=True)
class FeatureQuery:
    """A training or scoring set not yet run: the Ibis expression and its declarations.

    ``expr`` has one row per snapshot (``snapshot_id``, unique) with the :data:`RAW_COLUMNS`
    and the declared features; :func:`frame_from_raw` turns (any batch of) its rows into the
    frame the model reads.
    """

    expr: ir.Table
    features: tuple[Feature, ...]
    top_events: tuple[str, ...]


#: Messages of the user errors below (exit 2 at the CLI).
NO_EVENTS = (
    "events: the table has no rows with a timestamp (ts), so there is no history to learn "
    "from. Export the product events (account_id, ts, event) into events.parquet or events.csv."
)
NO_CONTRACTS = (
    "contracts: {what} (labels.label: renewal, the default) needs the contracts table, and "
    "the data directory has none. Add contracts.parquet or contracts.csv, or use "
    "--label inactivity (labels.label: inactivity in churn.yaml)."
)


def data_end_day(tables: Mapping[str, ir.Table], days: ir.Table | None = None) -> int:
    """The day after the last event: labels must be known before it to be used.

    ``days``: the events' event-days (:func:`features.usage.rollups`), when the caller holds
    them (far smaller than the events).
    """
    if days is not None:
        last = days.day.max().to_pyarrow().as_py()
    else:
        ts = tables["events"].ts.max().to_pyarrow().as_py()
        last = None if ts is None else day_number(ts.date())
    if last is None:
        raise ContractError(NO_EVENTS)
    return int(last) + 1


def training_snapshots(
    tables: Mapping[str, ir.Table], labels: LabelConfig, cutoff_day: int
) -> ir.Table:
    """Labelled snapshots whose label was known before ``cutoff_day``."""
    if labels.label == "renewal":
        if "contracts" not in tables:
            raise ContractError(NO_CONTRACTS.format(what="the renewal label"))
        return renewal_snapshots(tables["contracts"], labels, cutoff_day)
    ev = tables["events"]
    first = ev.ts.min().to_pyarrow().as_py()
    if first is None:
        raise ContractError(NO_EVENTS)
    days = calendar_days(
        day_number(first.date()) + labels.active_days,
        cutoff_day - labels.horizon_days,
        labels.snapshot_every,
    )
    if not days:
        span = cutoff_day - day_number(first.date())
        last = date.fromordinal(cutoff_day - 1 + 719_163)  # day numbers count from 1970-01-01
        raise ContractError(
            f"events: the inactivity label needs labels.active_days ({labels.active_days}) "
            f"of history before a snapshot and labels.horizon_days ({labels.horizon_days}) "
            f"after it, with a snapshot day between (labels.snapshot_every: "
            f"{labels.snapshot_every}); the events span {span:,} days ({first.date()} to "
            f"{last}), so no label is known. Give shorter windows "
            "(--active-days, --horizon), export a longer history, or train on renewals "
            "(--label renewal, with contracts.csv)."
        )
    return inactivity_snapshots(ev, tables.get("contracts"), labels, days)


#: Snapshot ids are ``as_of_day * IDS_PER_DAY`` plus the snapshot's rank within its day.
#: Above 2**31, so that every engine multiplies in 64 bits (DuckDB types a smaller literal
#: as INTEGER, and Ibis omits the cast of a column it already knows as int64).
IDS_PER_DAY = 10_000_000_000


def _with_ids(snaps: ir.Table) -> ir.Table:
    """``snaps`` with a unique ``snapshot_id``, numbered per day: a window partitioned by
    day, which Spark runs per partition (a single global numbering moved every snapshot to
    one partition, and Spark warned on every plan that read it)."""
    per_day = ibis.window(group_by=snaps.as_of_day, order_by=[snaps.account_id, snaps.contract_id])
    rank = ibis.row_number().over(per_day)
    return snaps.mutate(snapshot_id=snaps.as_of_day * IDS_PER_DAY + rank)


def _to_frame(expr: ir.Table, decl: Sequence[Feature]) -> pd.DataFrame:
    return sort_rows(frame_from_raw(expr.to_pyarrow().to_pandas(), decl))


def sort_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` in the order of every training and scoring set: :data:`ROW_ORDER`, missing
    contract ids first, with a fresh index."""
    return frame.sort_values(list(ROW_ORDER), na_position="first").reset_index(drop=True)


def frame_from_raw(raw: pd.DataFrame, decl: Sequence[Feature]) -> pd.DataFrame:
    """Rows of a feature expression (as pandas) in the shape the model reads; order kept.

    ``raw`` holds the :data:`RAW_COLUMNS` of :func:`features.build.feature_table`'s output
    (``segment`` may be absent) and the declared features. Whole sets go through this and
    then :func:`sort_rows`; on Spark each partition's batch goes through it on its own, so it
    must treat a row the same whatever batch it is in.
    """
    day = lambda c: pd.to_datetime(raw[c].astype("float64"), unit="D", utc=True).astype(  # noqa: E731
        "datetime64[us, UTC]"
    )
    tenure = raw["tenure_days"].astype("float64")
    created = pd.to_datetime(raw["as_of_day"] - tenure, unit="D", utc=True)
    segment = raw["segment"] if "segment" in raw else pd.Series(None, index=raw.index, dtype="str")
    out = pd.DataFrame(
        {
            "account_id": raw["account_id"].astype("str"),
            "contract_id": raw["contract_id"].astype("str").where(raw["contract_id"].notna(), None),
            "as_of": day("as_of_day"),
            "lead_days": raw["lead_days"].astype("int64"),
            "label": raw["label"].astype("Int8"),
            "label_known_at": day("label_known_day"),
            "expansion": raw["expansion"].astype("Int8"),
            "renewal_date": day("renewal_day"),
            "segment": segment.astype("str").where(segment.notna(), None),
            "arr": raw["arr"].astype("float64"),
        }
    )
    out["cohort_month"] = out["as_of"].dt.strftime("%Y-%m")
    out["tenure_bucket"] = pd.cut(
        tenure, [-np.inf, *(b for b, _ in TENURE_BUCKETS)], labels=[n for _, n in TENURE_BUCKETS]
    ).astype("str")
    out["signup_quarter"] = (
        created.dt.year.astype("Int64").astype("str")
        + "Q"
        + created.dt.quarter.astype("Int64").astype("str")
    )
    for f in decl:
        col = raw[f.name]
        out[f.name] = (
            pd.Categorical(col.astype("str").where(col.notna(), None))
            if f.categorical
            else col.astype("float64")
        )
    return out


def _build(
    tables: Mapping[str, ir.Table],
    plan: Callable[[ir.Table], tuple[ir.Table, int]],
    features: FeatureConfig,
    progress: Progress,
    top_events: Sequence[str] | None = None,
) -> TrainingSet:
    """Run the training set's feature query, with the events rolled up to user-days and
    event-days once and kept (cached) for its duration.

    ``plan`` gives, from the event-days, the snapshots and the day before which the most
    common events (the per-event columns) are counted. On DuckDB the other intermediate tables of
    :func:`features.build.feature_table` (the snapshots, each part of the event features)
    are materialised one after another and released at the end: each query then has the
    memory cap to itself (on a sparse 10.9M-event world 7.6 s instead of 9.1 s for the
    event features under the default cap), and the final query, small, compiles quickly.
    The per-user part is held per group of accounts (one per
    :data:`features.windows.CHUNK_ROWS` user-days, :func:`features.windows.account_splits`).
    On Spark the same tables are cached under temporary views
    (:func:`features.spark.held_on_spark`): each is planned alone, and no part is computed
    twice; there, the accounts are not split.
    """
    with ExitStack() as held:
        # In-memory tables (pandas frames in tests, notebooks) run on Ibis' default: DuckDB.
        backend = tables["events"]._find_backend(use_default=True)
        duckdb = backend.name == "duckdb"
        if duckdb:
            cache: Callable[[ir.Table], ir.Table] = lambda t: held.enter_context(t.cache())  # noqa: E731
        else:
            # Spark's Ibis backend caches an expression without registering the in-memory
            # tables it reads (the lead days, the look-back buckets): temporary views do.
            from features.spark import held_on_spark  # pyspark is an optional extra

            cache = held.enter_context(held_on_spark(backend))
        ud, ed = (cache(t) for t in rollups(tables["events"], features))
        if progress:
            progress("events rolled up", 0.3)
        snaps, top_before_day = plan(ed)
        top = (
            tuple(top_events)
            if top_events is not None
            else common_events(ed, features.top_events, top_before_day)
        )
        steps = iter((0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9))

        def hold(t: ir.Table) -> ir.Table:
            kept = cache(t)
            if progress:
                progress("features", next(steps, 0.9))
            return kept

        splits: tuple[str, ...] = ()
        if duckdb:
            accounts = snaps.select("account_id").distinct().to_pyarrow()["account_id"]
            splits = account_splits(accounts.to_pylist(), ud.count().to_pyarrow().as_py())
        query = _query(tables, snaps, features, top, (ud, ed), hold, splits)
        frame = _to_frame(query.expr, query.features)
    if progress:
        progress("features built", 1.0)
    return TrainingSet(frame, query.features, query.top_events)


def _query(
    tables: Mapping[str, ir.Table],
    snaps: ir.Table,
    features: FeatureConfig,
    top_events: Sequence[str],
    rolled: tuple[ir.Table, ir.Table] | None = None,
    hold: Callable[[ir.Table], ir.Table] | None = None,
    splits: Sequence[str] = (),
) -> FeatureQuery:
    expr, decl = feature_table(tables, _with_ids(snaps), features, top_events, rolled, hold, splits)
    return FeatureQuery(expr, decl, tuple(top_events))


def build_training_set(
    tables: Mapping[str, ir.Table],
    labels: LabelConfig,
    features: FeatureConfig,
    cutoff: date | None = None,
    progress: Progress = None,
    top_events: Sequence[str] | None = None,
) -> TrainingSet:
    """Labelled, cohort-tagged feature rows from all history known before ``cutoff``.

    ``cutoff`` defaults to the day after the last event. A row is included only if its
    label was known before the cut-off (renewal: the term ended; inactivity: the horizon
    passed); its features use only data strictly before its own ``as_of``. ``top_events``
    fixes the per-event columns (a trained model's own list, to score its training rows);
    by default they are the most common events before the cut-off.
    """

    def plan(days: ir.Table) -> tuple[ir.Table, int]:
        cutoff_day = day_number(cutoff) if cutoff else data_end_day(tables, days)
        return training_snapshots(tables, labels, cutoff_day), cutoff_day

    return _build(tables, plan, features, progress, top_events)


def build_scoring_set(
    tables: Mapping[str, ir.Table],
    as_of: date | Sequence[date],
    labels: LabelConfig,
    features: FeatureConfig,
    top_events: Sequence[str] | None = None,
    progress: Progress = None,
    accounts: Sequence[str] | None = None,
) -> TrainingSet:
    """Feature rows of every account eligible at ``as_of`` (no label).

    Renewal mode: an open term ending within ``labels.within_days``. Inactivity mode: an
    event in the ``labels.active_days`` before ``as_of``. ``top_events`` must be the model's
    own list so that the columns match; by default they are the most common events before
    the (last) as-of.

    Several ``as_of`` days give one row per eligible account and day, built in one query.
    ``accounts`` restricts every table to those accounts first (one account's explanation);
    the rows are the ones a whole-book build gives for them. Only the events of the accounts
    scored and of :func:`features.usage.lookback_days` before the first as-of are read.
    """
    days = [as_of] if isinstance(as_of, date) else sorted(set(as_of))
    if accounts is not None:
        tables = only_accounts(tables, accounts)
    snaps = ibis.union(*(scoring_snapshots(tables, day, labels) for day in days))
    if top_events is None:
        top_events = common_events(
            rollups(tables["events"], features)[1], features.top_events, day_number(days[-1])
        )
    # One query, nothing materialised: a scoring set reads a year of the scored accounts'
    # events, and compiling and running the parts one by one cost more than they save
    # (demo world, 178 renewals: 1.25 s against 1.5 s; a 10,000-account book, 1,914
    # renewals: 4.7 s against 6.1 s; one account's seven months: 1.4 s against 3.0 s).
    query = _query(scored_events(tables, snaps, days[0], features), snaps, features, top_events)
    frame = _to_frame(query.expr, query.features)
    if progress:
        progress("features built", 1.0)
    return TrainingSet(frame, query.features, query.top_events)


def only_accounts(tables: Mapping[str, ir.Table], accounts: Sequence[str]) -> dict[str, ir.Table]:
    """Every table restricted to the rows of ``accounts`` (all contract tables carry
    ``account_id``)."""
    ids = [str(a) for a in accounts]
    return {name: t.filter(t.account_id.cast("string").isin(ids)) for name, t in tables.items()}


def scored_events(
    tables: Mapping[str, ir.Table], snaps: ir.Table, first: date, features: FeatureConfig
) -> dict[str, ir.Table]:
    """``tables`` with the events that can move a scoring feature: those of the snapshots'
    accounts, in the look-back of the first as-of. Scoring then costs what it scores, not
    the whole history (the point-in-time property test checks the rows are unchanged)."""
    ev = tables["events"]
    start = day_number(first) - lookback_days(features)
    recent = ev.filter(epoch_day(ev.ts) >= start, ev.account_id.isin(snaps.account_id))
    return {**tables, "events": recent}


def scoring_query(
    tables: Mapping[str, ir.Table],
    as_of: date,
    labels: LabelConfig,
    features: FeatureConfig,
    top_events: Sequence[str] | None = None,
    hold: Callable[[ir.Table], ir.Table] | None = None,
) -> FeatureQuery:
    """:func:`build_scoring_set` without running it: the expression stays on the engine.

    For engines whose results are too large to collect (Spark): run ``query.expr`` there
    and turn each batch of its rows into model rows with :func:`frame_from_raw`. ``hold``
    (:func:`features.spark.held_on_spark`) materialises the snapshots, the roll-ups and
    each part of the features on the way, so that the final expression reads them by name.
    """
    snaps = scoring_snapshots(tables, as_of, labels)
    if hold is not None:
        snaps = hold(snaps)
    if top_events is None:
        events = rollups(tables["events"], features)[1]
        top_events = common_events(events, features.top_events, day_number(as_of))
    scored = scored_events(tables, snaps, as_of, features)
    return _query(scored, snaps, features, top_events, hold=hold)


def scoring_snapshots(tables: Mapping[str, ir.Table], as_of: date, labels: LabelConfig) -> ir.Table:
    """The snapshots :func:`build_scoring_set` builds features for (one per eligible
    account at ``as_of``), as an expression: counted before building to refuse an empty run."""
    day = day_number(as_of)
    if labels.label == "renewal":
        if "contracts" not in tables:
            raise ContractError(NO_CONTRACTS.format(what="renewal scoring"))
        return open_term_snapshots(
            tables["contracts"], day, labels.within_days, labels.return_grace_days
        )
    return inactivity_snapshots(
        tables["events"], tables.get("contracts"), labels, [day], labelled=False
    )


def write_training_set(ts: TrainingSet, path: Path) -> None:
    """The frame as Parquet, and the feature dictionary beside it (``.features.json``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ts.frame.to_parquet(path, index=False)
    write_dictionary(ts.features, path.with_suffix(".features.json"))


def write_dictionary(decl: Sequence[Feature], path: Path) -> None:
    """The feature dictionary as JSON (``.json``) or CSV (any other suffix)."""
    records = dictionary(decl)
    if path.suffix == ".json":
        path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    else:
        pd.DataFrame(records).to_csv(path, index=False)
