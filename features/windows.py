"""Event features from range joins: each roll-up row meets the snapshots whose look-back holds it.

The same columns, values and NULLs as :func:`features.usage.usage_features` and
:func:`features.usage.concentration_features` together, computed the obvious way: every row
of a compact roll-up is joined to each snapshot of its account with
``as_of_day - L <= day < as_of_day`` (``L`` the longest look-back of the features it
feeds), and each window is an aggregate with a ``where=`` filter on the row's age
``as_of_day - day`` (1 for the day before the snapshot).

Distinct counts go through one row per snapshot and user (or event) first: a user is active
in a window when its row has a user-day there, new when active in the last 30 days and not
in the 60 before those, lost when active 31-60 days ago and not since. The joins:

* user-days over the windows, the 13 trend weeks and the new users' 90 days;
* event-days over the windows (distinct events, per-event counts);
* account-days over the windows and the 180 days of ``days_since_last_event``;
* user-days over the champion's ``champion_days``.

Every join pairs a row only with snapshots of its ``BUCKET``-day bucket and the few before
(the snapshots are repeated per bucket they reach), not with all snapshots of its account,
so the engine's hash join on (account, bucket) does not test every pair of the account.
"""

from __future__ import annotations

from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

from features.catalog import event_slugs
from features.config import FeatureConfig
from features.usage import (
    LOST_SPAN,
    MONTH,
    NEW_GAP,
    RECENT_DAYS,
    SLOPE_WEEKS,
    in_lookback,
    ratio,
)


def _f(v: ir.NumericValue) -> ir.FloatingValue:
    # Sums as float64, as in features.usage: DuckDB widens integer sums to 128 bits.
    return v.cast("float64")


def _user_features(ud: ir.Table, snaps: ir.Table, cfg: FeatureConfig) -> ir.Table:
    """Per snapshot: event, key-event and user-day counts, active, new, lost and key users,
    the previous 30 days, the trend's weekly sums and the top user's 30-day events."""
    windows = sorted({*cfg.windows, MONTH})
    trend = 7 * SLOPE_WEEKS
    lookback = max(*windows, NEW_GAP, LOST_SPAN, trend)
    j = in_lookback(ud.mutate(n=_f(ud.n), k=_f(ud.k)), snaps, lookback)
    a = j.age
    prev = (a > MONTH) & (a <= 2 * MONTH)
    # The week of a row is (age - 1) // 7, 0 the latest; its weight in the slope 6 - week.
    weight = (SLOPE_WEEKS // 2 - (a - 1) // 7).cast("float64")
    per = j.group_by(["snapshot_id", "user_id"]).aggregate(
        **{f"n{w}": j.n.sum(where=a <= w) for w in windows},
        **{f"k{w}": j.k.sum(where=a <= w) for w in windows},
        **{f"d{w}": j.count(where=a <= w) for w in windows},
        kd30=j.count(where=(a <= MONTH) & (j.k > 0)),
        n_prev=j.n.sum(where=prev),
        k_prev=j.k.sum(where=prev),
        d_prev=j.count(where=prev),
        d_quiet=j.count(where=(a > MONTH) & (a <= NEW_GAP)),
        slope=(weight * j.n).sum(where=a <= trend),
        n_trend=j.n.sum(where=a <= trend),
    )
    return per.group_by("snapshot_id").aggregate(
        **{f"events_{w}d": per[f"n{w}"].sum() for w in cfg.windows},
        **{f"key_events_{w}d": per[f"k{w}"].sum() for w in cfg.windows},
        **{f"user_days_{w}d": _f(per[f"d{w}"].sum()) for w in cfg.windows},
        **{f"active_users_{w}d": _f(per.count(where=per[f"d{w}"] > 0)) for w in cfg.windows},
        key_users_30d=_f(per.count(where=per.kd30 > 0)),
        new_users_30d=_f(per.count(where=(per[f"d{MONTH}"] > 0) & (per.d_quiet == 0))),
        lost_users_30d=_f(per.count(where=(per.d_prev > 0) & (per[f"d{MONTH}"] == 0))),
        _n30=per[f"n{MONTH}"].sum(),
        _k30=per[f"k{MONTH}"].sum(),
        _ud30=_f(per[f"d{MONTH}"].sum()),
        _u30=_f(per.count(where=per[f"d{MONTH}"] > 0)),
        _n_prev30=per.n_prev.sum(),
        _k_prev30=per.k_prev.sum(),
        _u_prev30=_f(per.count(where=per.d_prev > 0)),
        _slope=per.slope.sum(),
        _n_slope=per.n_trend.sum(),
        _top_n30=per[f"n{MONTH}"].max(),
    )


def _event_features(
    ed: ir.Table, snaps: ir.Table, cfg: FeatureConfig, top_events: Sequence[str]
) -> ir.Table:
    """Per snapshot: distinct events per window and the 30-day count of each top event."""
    windows = sorted({*cfg.windows, MONTH})
    j = in_lookback(ed.mutate(n=_f(ed.n)), snaps, max(windows))
    per = j.group_by(["snapshot_id", "event"]).aggregate(
        n30=j.n.sum(where=j.age <= MONTH), **{f"d{w}": j.count(where=j.age <= w) for w in windows}
    )
    return per.group_by("snapshot_id").aggregate(
        **{f"distinct_events_{w}d": _f(per.count(where=per[f"d{w}"] > 0)) for w in cfg.windows},
        **{
            f"event_{slug}_30d": per.n30.sum(where=per.event == x)
            for x, slug in zip(top_events, event_slugs(top_events), strict=True)
        },
    )


def _day_features(ud: ir.Table, snaps: ir.Table, cfg: FeatureConfig) -> ir.Table:
    """Per snapshot: active days per window and the last active day of the 180 before."""
    ad = ud.select("account_id", "day").distinct()
    j = in_lookback(ad, snaps, max(*cfg.windows, RECENT_DAYS))
    return j.group_by("snapshot_id").aggregate(
        **{f"active_days_{w}d": _f(j.count(where=j.age <= w)) for w in cfg.windows},
        _recent=j.age.min(where=j.age <= RECENT_DAYS),
    )


def _champion(ud: ir.Table, snaps: ir.Table, champion_days: int) -> ir.Table:
    """Per snapshot, days since the champion was active: the user with the most events in
    the ``champion_days`` before it (ties: the smallest ``user_id``).

    User-days joined over the whole look-back: on the sparse world (1.2 events per
    user-day) this took 2.0 s against 2.5-3.5 s for per-user totals of whole 16- to 128-day
    buckets plus the user-days of the two partial buckets at the ends (two joins and a
    union, which cost more than the rows they save).
    """
    j = in_lookback(ud.mutate(n=_f(ud.n)), snaps, champion_days)
    per = j.group_by(["snapshot_id", "user_id"]).aggregate(n=j.n.sum(), age=j.age.min())
    order = ibis.window(group_by=per.snapshot_id, order_by=[ibis.desc(per.n), per.user_id])
    per = per.mutate(_rank=ibis.row_number().over(order))
    return per.group_by("snapshot_id").aggregate(
        days_since_champion=per.age.min(where=per._rank == 0)
    )


def event_features(
    ud: ir.Table,
    ed: ir.Table,
    snaps: ir.Table,
    cfg: FeatureConfig,
    top_events: Sequence[str],
) -> ir.Table:
    """Every event feature of every snapshot, from the user-days and event-days of
    :func:`features.usage.rollups`: the columns of :func:`features.usage.usage_features`
    and of :func:`features.usage.concentration_features`, one row per snapshot.

    Counts are 0 where the snapshot has no rows in their window; ``_top_n30`` and
    ``days_since_champion`` are missing where no user was active in their look-back.
    """
    parts = [
        _user_features(ud, snaps, cfg),
        _event_features(ed, snaps, cfg, top_events),
        _day_features(ud, snaps, cfg),
        _champion(ud, snaps, cfg.champion_days),
    ]
    s = snaps.select("snapshot_id")
    for part in parts:
        part = part.rename(_sid="snapshot_id")
        s = s.left_join(part, s.snapshot_id == part._sid).drop("_sid")
    keep_null = {"_top_n30", "days_since_champion", "_recent"}
    s = s.mutate(
        **{c: s[c].fill_null(0) for c in s.columns if c not in keep_null | {"snapshot_id"}}
    )
    age = s._recent
    derived = {
        **{f"key_share_{w}d": ratio(s[f"key_events_{w}d"], s[f"events_{w}d"]) for w in cfg.windows},
        "stickiness_30d": ratio(s._ud30, s._u30 * MONTH),
        "events_change_30d": (s._n30 + 1) / (s._n_prev30 + 1) - 1,
        "active_users_change_30d": (s._u30 + 1) / (s._u_prev30 + 1) - 1,
        "key_events_change_30d": (s._k30 + 1) / (s._k_prev30 + 1) - 1,
        # as in features.usage: the least-squares slope of the 13 weekly counts over
        # sum((j - 6)^2) = 182, relative to the weekly mean + 1
        "events_slope_90d": (s._slope / 182.0) / (s._n_slope / SLOPE_WEEKS + 1),
        "days_since_last_event": age.isnull().ifelse(RECENT_DAYS + 1, age),
    }
    stems = ("events", "key_events", "user_days", "active_days", "active_users", "distinct_events")
    counts = [
        *(f"{stem}_{w}d" for w in cfg.windows for stem in stems),
        "key_users_30d",
        "new_users_30d",
        "lost_users_30d",
        *(f"event_{slug}_30d" for slug in event_slugs(top_events)),
    ]
    return s.select(
        "snapshot_id",
        *counts,
        **derived,
        _n30=s._n30,
        _top_n30=s._top_n30,
        days_since_champion=s.days_since_champion,
    )
