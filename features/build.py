"""Point-in-time features, written once in Ibis and run by DuckDB or Spark.

Each small-table family's query (:mod:`features.families`) joins its table to the snapshots
on ``account_id`` with the strict filter ``time < as_of`` (:func:`features.asof.since`),
then aggregates per snapshot; :func:`feature_table` joins every family's part. Events, by
far the largest table, are rolled up once to user-days and event-days
(:mod:`features.usage`), whose rows meet the snapshots within their look-back through
range joins (:mod:`features.windows`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import ibis
import ibis.expr.types as ir

from features.asof import SECONDS_PER_DAY, seconds, since
from features.attributes import Attribute, attributes, history_columns
from features.catalog import Feature, catalog, families, zero_when_absent
from features.config import FeatureConfig
from features.usage import ratio, rollups
from features.windows import event_features


def _attribute(col: ir.Value, a: Attribute) -> ir.Value:
    """An ``accounts`` attribute as the snapshot join carries it: a time as epoch seconds
    (turned into days since it, point in time, after the join), anything else as stored."""
    if a.kind != "days_since":
        return col
    if col.type().is_date():
        col = col.cast("timestamp('UTC')")
    return seconds(col)


def history_features(history: ir.Table, snaps: ir.Table, attrs: Sequence[Attribute]) -> ir.Table:
    """Each changing attribute's latest value with ``valid_from`` strictly before the
    snapshot; values that share the latest ``valid_from`` resolve to the greatest, so that
    DuckDB and Spark agree. Empty before the attribute's first ``valid_from``."""
    j = since(history, "valid_from", snaps)
    j = j.filter(j.column.isin([a.column for a in attrs]))
    # The window as a column, then the filter: Spark cannot resolve a window inside one.
    j = j.mutate(_last=j._sec.max().over(group_by=[j.snapshot_id, j.column]))
    j = j.filter(j._sec == j._last)
    return j.group_by("snapshot_id").aggregate(
        **{
            a.name: (j.value.try_cast("float64") if a.kind == "number" else j.value).max(
                where=j.column == a.column
            )
            for a in attrs
        }
    )


def feature_table(
    tables: Mapping[str, ir.Table],
    snaps: ir.Table,
    cfg: FeatureConfig,
    top_events: Sequence[str],
    rolled: tuple[ir.Table, ir.Table] | None = None,
    hold: Callable[[ir.Table], ir.Table] | None = None,
    splits: Sequence[str] = (),
) -> tuple[ir.Table, tuple[Feature, ...]]:
    """Every feature of every snapshot, as one Ibis expression, and their declarations.

    ``rolled``: the user-days and event-days of :func:`features.usage.rollups`, when the
    caller holds them (cached); by default the expression rolls the events up itself.
    ``hold``, when given, materialises intermediate tables (the snapshots, the roll-ups
    when not given, each part of the event features, each other family's part) and returns
    them as tables to read from; without it the result is a single expression.
    ``splits``: where the accounts are cut into groups whose per-user event part is held
    apart (:func:`features.windows.account_splits`; only with ``hold``).

    ``snaps`` needs ``snapshot_id``, ``account_id``, ``as_of_day`` and the contract context
    (``seats``, ``arr``, ``prev_arr``, ``term_number``, ``renewal_day``).
    """
    accounts = tables["accounts"]
    history = tables.get("account_history")
    decl = catalog(cfg.windows, top_events, (), tables.keys(), cfg.champion_days)
    zeros = zero_when_absent()
    attrs = attributes(accounts, history_columns(history), {f.name for f in decl}, zeros)
    decl = (*decl, *(a.feature() for a in attrs))
    keep = hold or (lambda t: t)
    snaps = keep(snaps)
    if rolled is None:
        ud, ed = (keep(t) for t in rollups(tables["events"], cfg))
    else:
        ud, ed = rolled
    parts = [event_features(ud, ed, snaps, cfg, top_events, keep, splits)]
    parts += [
        keep(fam.query(tables[fam.table], snaps))
        for fam in families()
        if fam.query is not None and fam.table is not None and fam.table in tables
    ]

    changing = [a for a in attrs if a.table == "account_history"]
    if history is not None and changing:
        parts.append(keep(history_features(history, snaps, changing)))
    acc = accounts.select(
        _acc=accounts.account_id,
        _created_sec=seconds(accounts.created_at),
        **{a.name: _attribute(accounts[a.column], a) for a in attrs if a.table == "accounts"},
    )
    base = snaps.join(acc, snaps.account_id == acc._acc, how="left").drop("_acc")
    as_of_sec = base.as_of_day * SECONDS_PER_DAY
    base = base.mutate(
        tenure_days=(as_of_sec - base._created_sec) / SECONDS_PER_DAY,
        **{
            a.name: (base[a.name] < as_of_sec).ifelse(
                (as_of_sec - base[a.name]) / SECONDS_PER_DAY, ibis.null("float64")
            )
            for a in attrs
            if a.kind == "days_since"
        },
    )
    for part in parts:
        part = part.rename(_sid="snapshot_id")
        base = base.left_join(part, base.snapshot_id == part._sid).drop("_sid")
    fills = {
        c: base[c].fill_null(0)
        for c in base.columns
        if c.startswith(zeros) and c in {f.name for f in decl}
    }
    base = base.mutate(**fills)
    extra: dict[str, ir.Value] = {}
    extra["top_user_share_30d"] = ratio(base._top_n30, base._n30)
    if "contracts" in tables or "seats" in base.columns:
        extra |= {
            f"utilisation_{w}d": ratio(base[f"active_users_{w}d"], base.seats) for w in cfg.windows
        }
        extra["days_to_renewal"] = (base.renewal_day - base.as_of_day).cast("float64")
        extra["arr_change_last_renewal"] = ratio(base.arr, base.prev_arr) - 1
    base = base.mutate(**extra).drop("_top_n30", "_n30")
    return base, decl
