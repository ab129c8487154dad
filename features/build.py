"""Point-in-time feature queries, written once in Ibis and run by DuckDB or Spark.

Every query of the small tables joins them to the snapshots on ``account_id`` with the strict
filter ``time < as_of``, then aggregates per snapshot. Events, by far the largest table, are
rolled up once to user-days and event-days (:mod:`features.usage`), whose rows meet the
snapshots within their look-back through range joins (:mod:`features.windows`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import ibis
import ibis.expr.types as ir

from features.attributes import Attribute, attributes, history_columns
from features.catalog import Feature, catalog
from features.config import FeatureConfig
from features.snapshots import SECONDS_PER_DAY
from features.usage import ratio, rollups
from features.windows import event_features

SENTIMENT_SCORE = {"red": 0, "yellow": 1, "green": 2}


def _sec(col: ir.Value) -> ir.IntegerValue:
    # floor(): DuckDB's epoch is fractional and its cast to BIGINT rounds (23:59:59.7 would
    # become the next day's midnight and fail a strict "< as_of"); Spark truncates already.
    return col.epoch_seconds().floor().cast("int64")


def _mark_latest(j: ir.Table, **among: ir.BooleanValue) -> ir.Table:
    """Add ``_latest_<name>``: the row is at the snapshot's last ``_sec`` among ``among[name]``.

    Used instead of ``argmax(_sec)``, which returns an arbitrary row when several share the
    last second (a survey import stamped at midnight), and DuckDB and Spark pick different
    ones; averaging the rows flagged here is deterministic on both.
    """
    return j.mutate(
        **{
            f"_latest_{name}": cond.fill_null(False)
            & (j._sec == cond.ifelse(j._sec, ibis.null("int64")).max().over(group_by=j.snapshot_id))
            for name, cond in among.items()
        }
    )


def _since(t: ir.Table, col: str, snaps: ir.Table) -> ir.Table:
    """Join on account, rows whose ``col`` is strictly before ``as_of``; adds ``as_of_sec``."""
    t = t.mutate(_sec=_sec(t[col]))
    s = snaps.select("snapshot_id", "as_of_day", _acc="account_id")
    j = t.join(s, [t.account_id == s._acc, t._sec < s.as_of_day * SECONDS_PER_DAY])
    return j.mutate(as_of_sec=j.as_of_day * SECONDS_PER_DAY)


def _known(col: ir.Value, as_of_sec: ir.IntegerValue) -> ir.IntegerValue:
    """Epoch seconds of ``col`` if it happened before the snapshot, else NULL (not yet)."""
    sec = _sec(col)
    return (sec < as_of_sec).ifelse(sec, ibis.null("int64"))


def support_features(tickets: ir.Table, snaps: ir.Table) -> ir.Table:
    """Tickets opened, open at the snapshot, response and resolution times, CSAT."""
    j = _since(tickets, "created_at", snaps)
    now = j.as_of_sec
    answered, resolved = _known(j.first_response_at, now), _known(j.resolved_at, now)
    age_days = (now - j._sec) / SECONDS_PER_DAY
    is_open = resolved.isnull()
    # Seconds as float64 before dividing: Spark reads 3600.0 as a DECIMAL literal and would
    # round bigint / decimal to 6 places; DuckDB divides in double precision either way.
    hours = 3600.0
    return j.group_by("snapshot_id").aggregate(
        tickets_30d=j._sec.count(where=age_days <= 30),
        tickets_90d=j._sec.count(where=age_days <= 90),
        urgent_open=j._sec.count(where=is_open & (j.priority == "urgent")),
        high_open=j._sec.count(where=is_open & (j.priority == "high")),
        # quantile(0.5), not median(): the same exact, interpolated percentile_cont on
        # DuckDB, but Ibis 12 compiles median(where=) for Spark as percentile(.., IF(.., 0.5))
        # which Spark rejects; quantile becomes Spark's exact percentile(IF(where, x), 0.5).
        first_response_hours_90d=((answered - j._sec).cast("float64") / hours).quantile(
            0.5, where=answered >= now - 90 * SECONDS_PER_DAY
        ),
        resolution_hours_90d=((resolved - j._sec).cast("float64") / hours).quantile(
            0.5, where=resolved >= now - 90 * SECONDS_PER_DAY
        ),
        oldest_open_ticket_days=age_days.max(where=is_open),
        ticket_csat_180d=j.csat.cast("float64").mean(where=resolved >= now - 180 * SECONDS_PER_DAY),
    )


def voice_features(surveys: ir.Table, snaps: ir.Table) -> ir.Table:
    """NPS, CSAT and CES answers before the snapshot."""
    j = _since(surveys, "ts", snaps)
    j = _mark_latest(j, nps=j.kind == "nps")
    year = j._sec >= j.as_of_sec - 365 * SECONDS_PER_DAY
    nps = j.kind == "nps"
    return j.group_by("snapshot_id").aggregate(
        nps_last=j.score.mean(where=j._latest_nps),
        nps_mean_365d=j.score.mean(where=nps & year),
        nps_detractor_share_365d=(j.score <= 6).cast("float64").mean(where=nps & year),
        nps_responses_365d=j._sec.count(where=nps & year),
        days_since_nps=(j.as_of_sec.max() - j._sec.max(where=nps)) / SECONDS_PER_DAY,
        csat_mean_365d=j.score.mean(where=(j.kind == "csat") & year),
        ces_mean_365d=j.score.mean(where=(j.kind == "ces") & year),
    )


def sentiment_features(sentiment: ir.Table, snaps: ir.Table) -> ir.Table:
    """The CSM's latest sentiment, its age, and its change over 90 days."""
    j = _since(sentiment, "ts", snaps)
    j = _mark_latest(j, last=ibis.literal(True), old=j._sec < j.as_of_sec - 90 * SECONDS_PER_DAY)
    score = j.sentiment.cases(*SENTIMENT_SCORE.items()).cast("float64")
    s = j.group_by("snapshot_id").aggregate(
        sentiment_last=score.mean(where=j._latest_last),
        _old=score.mean(where=j._latest_old),
        _last_sec=j._sec.max(),
        _as_of_sec=j.as_of_sec.max(),
    )
    return s.select(
        "snapshot_id",
        "sentiment_last",
        days_since_sentiment=(s._as_of_sec - s._last_sec) / SECONDS_PER_DAY,
        sentiment_change_90d=s.sentiment_last - s._old,
    )


def billing_features(invoices: ir.Table, snaps: ir.Table) -> ir.Table:
    """Invoices overdue at the snapshot and late payments in the last year."""
    j = _since(invoices, "issued_at", snaps)
    now = j.as_of_sec
    due, paid = _sec(j.due_at), _known(j.paid_at, now)
    overdue = (due < now) & paid.isnull()
    return j.group_by("snapshot_id").aggregate(
        invoices_overdue=j._sec.count(where=overdue),
        days_overdue_max=((now - due) / SECONDS_PER_DAY).max(where=overdue),
        late_payments_365d=j._sec.count(where=(paid >= now - 365 * SECONDS_PER_DAY) & (paid > due)),
    )


def activity_features(activities: ir.Table, snaps: ir.Table) -> ir.Table:
    """The CS team's touches: activities in the last 30 and 90 days, days since the last.

    Every activity row is a touch, whatever its play or channel (an unknown play too);
    ``note`` is free text and never read. A window of W days holds the rows less than or
    exactly W days before the snapshot (as the ticket counts).
    """
    j = _since(activities, "ts", snaps)
    age_days = (j.as_of_sec - j._sec) / SECONDS_PER_DAY
    return j.group_by("snapshot_id").aggregate(
        touches_30d=j._sec.count(where=age_days <= 30),
        touches_90d=j._sec.count(where=age_days <= 90),
        # Never touched: empty, as days_since_sentiment (no number of days says "never").
        days_since_last_touch=(j.as_of_sec.max() - j._sec.max()) / SECONDS_PER_DAY,
    )


def _attribute(col: ir.Value, a: Attribute) -> ir.Value:
    """An ``accounts`` attribute as the snapshot join carries it: a time as epoch seconds
    (turned into days since it, point in time, after the join), anything else as stored."""
    if a.kind != "days_since":
        return col
    if col.type().is_date():
        col = col.cast("timestamp('UTC')")
    return _sec(col)


def history_features(history: ir.Table, snaps: ir.Table, attrs: Sequence[Attribute]) -> ir.Table:
    """Each changing attribute's latest value with ``valid_from`` strictly before the
    snapshot; values that share the latest ``valid_from`` resolve to the greatest, so that
    DuckDB and Spark agree. Empty before the attribute's first ``valid_from``."""
    j = _since(history, "valid_from", snaps)
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


#: Counts are 0, not missing, when a snapshot has no source rows.
ZERO_WHEN_ABSENT = (
    "events_",
    "user_days_",
    "active_users_",
    "key_events_",
    "active_days_",
    "distinct_events_",
    "event_",
    "key_users_",
    "new_users_",
    "lost_users_",
    "tickets_",
    "urgent_open",
    "high_open",
    "oldest_open_ticket_days",
    "nps_responses_",
    "invoices_overdue",
    "days_overdue_max",
    "late_payments_",
    "touches_",
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
    attrs = attributes(accounts, history_columns(history), {f.name for f in decl}, ZERO_WHEN_ABSENT)
    decl = (*decl, *(a.feature() for a in attrs))
    keep = hold or (lambda t: t)
    snaps = keep(snaps)
    if rolled is None:
        ud, ed = (keep(t) for t in rollups(tables["events"], cfg))
    else:
        ud, ed = rolled
    parts = [event_features(ud, ed, snaps, cfg, top_events, keep, splits)]
    makers = {
        "tickets": support_features,
        "surveys": voice_features,
        "sentiment": sentiment_features,
        "invoices": billing_features,
        "activities": activity_features,
    }
    parts += [keep(make(tables[name], snaps)) for name, make in makers.items() if name in tables]

    changing = [a for a in attrs if a.table == "account_history"]
    if history is not None and changing:
        parts.append(keep(history_features(history, snaps, changing)))
    acc = accounts.select(
        _acc=accounts.account_id,
        _created_sec=_sec(accounts.created_at),
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
        if c.startswith(ZERO_WHEN_ABSENT) and c in {f.name for f in decl}
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
