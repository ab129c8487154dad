"""Event features from range joins: each roll-up row meets the snapshots whose look-back holds it.

The same columns, values and NULLs as :func:`features.usage.usage_features` and
:func:`features.usage.concentration_features` together, computed the obvious way: every row
of a compact roll-up is joined to each snapshot of its account with
``as_of_day - L <= day < as_of_day`` (``L`` the longest look-back of the features it
feeds), and each window is an aggregate with a ``where=`` filter on the row's age
``as_of_day - day`` (1 for the day before the snapshot).

Sums over days (events, key events, user-days, active days, the trend) come from one row per
account and day. Distinct counts go through one row per snapshot and user (or event) first:
a user is active in a window when its latest day is in it, new when active in the last 30
days and not in the 60 before those, lost when its latest day is 31-60 days back. The joins:

* account-days over the windows and the 13 trend weeks;
* user-days over the longest of the windows, the new users' 90 days, the 180 days of
  ``days_since_last_event`` and the champion's ``champion_days``;
* event-days over the windows (distinct events, per-event counts).

Every join pairs a row only with snapshots of its ``BUCKET``-day bucket and the few before
(the snapshots are repeated per bucket they reach), not with all snapshots of its account,
so the engine's hash join on (account, bucket) does not test every pair of the account.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

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


def _sum_features(ud: ir.Table, snaps: ir.Table, cfg: FeatureConfig) -> ir.Table:
    """Per snapshot: everything that is a sum over days (events, key events, user-days and
    active days per window, the previous 30 days, the trend's weekly sums), from one row
    per account and day."""
    windows = sorted({*cfg.windows, MONTH})
    trend = 7 * SLOPE_WEEKS
    ad = ud.group_by(["account_id", "day"]).aggregate(
        n=_f(ud.n).sum(), k=_f(ud.k).sum(), u=_f(ud.count())
    )
    j = in_lookback(ad, snaps, max(*windows, 2 * MONTH, trend))
    a = j.age
    prev = (a > MONTH) & (a <= 2 * MONTH)
    # The week of a row is (age - 1) // 7, 0 the latest; its weight in the slope 6 - week.
    weight = (SLOPE_WEEKS // 2 - (a - 1) // 7).cast("float64")
    return j.group_by("snapshot_id").aggregate(
        **{f"events_{w}d": j.n.sum(where=a <= w) for w in cfg.windows},
        **{f"key_events_{w}d": j.k.sum(where=a <= w) for w in cfg.windows},
        **{f"user_days_{w}d": j.u.sum(where=a <= w) for w in cfg.windows},
        **{f"active_days_{w}d": _f(j.count(where=a <= w)) for w in cfg.windows},
        _n30=j.n.sum(where=a <= MONTH),
        _k30=j.k.sum(where=a <= MONTH),
        _ud30=j.u.sum(where=a <= MONTH),
        _n_prev30=j.n.sum(where=prev),
        _k_prev30=j.k.sum(where=prev),
        _slope=(weight * j.n).sum(where=a <= trend),
        _n_slope=j.n.sum(where=a <= trend),
    )


def _user_features(ud: ir.Table, snaps: ir.Table, cfg: FeatureConfig) -> ir.Table:
    """Per snapshot: active, key, new and lost users, the top user's 30-day events, the
    champion's days since active and the last active day of the 180 before.

    One row per snapshot and user holds what those need: the age of the user's latest day
    (active within ``w`` days when at most ``w``), of its latest key day, of its latest day
    more than 30 days back (new: active in the last 30 days and not in the 60 before;
    lost: latest day 31-60 days back), its events of the last 30 days and of the
    champion's look-back. The champion is the user with the most events in the
    ``champion_days`` before the snapshot (ties: the smallest ``user_id``).

    One join over the longest of those look-backs (the champion's 365 days by default)
    feeds all of them: on a 47M-event sparse world, 21 s against 25 s for a 90-day join
    for the users and a 365-day one for the champion.
    """
    champion_days = cfg.champion_days
    span = max(*cfg.windows, MONTH, NEW_GAP, LOST_SPAN, RECENT_DAYS, champion_days)
    j = in_lookback(ud, snaps, span)
    a = j.age
    in_champion = a <= champion_days if champion_days < span else None
    per = j.group_by(["snapshot_id", "user_id"]).aggregate(
        latest=a.min(), key=a.min(where=j.k > 0), older=a.min(where=a > MONTH),
        n30=_f(j.n).sum(where=a <= MONTH),
        n_champion=_f(j.n).sum(where=in_champion).fill_null(0),
        champion_age=a.min(where=in_champion),
    )  # fmt: skip
    order = ibis.window(group_by=per.snapshot_id, order_by=[ibis.desc(per.n_champion), per.user_id])
    per = per.mutate(_rank=ibis.row_number().over(order))
    active = per.latest <= MONTH
    return per.group_by("snapshot_id").aggregate(
        **{f"active_users_{w}d": _f(per.count(where=per.latest <= w)) for w in cfg.windows},
        key_users_30d=_f(per.count(where=per.key <= MONTH)),
        new_users_30d=_f(per.count(where=active & (per.older.isnull() | (per.older > NEW_GAP)))),
        lost_users_30d=_f(per.count(where=(per.latest > MONTH) & (per.latest <= 2 * MONTH))),
        _u30=_f(per.count(where=active)),
        _u_prev30=_f(per.count(where=per.older <= 2 * MONTH)),
        _top_n30=per.n30.max(),
        _recent=per.latest.min(where=per.latest <= RECENT_DAYS),
        days_since_champion=per.champion_age.min(where=per._rank == 0),
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


def _as_is(t: ir.Table) -> ir.Table:
    return t


#: User-days per group of accounts whose per-user part is materialised alone (``splits``).
CHUNK_ROWS = 5_000_000


def account_splits(accounts: Sequence[str], user_days: int) -> tuple[str, ...]:
    """Where to split the sorted ``accounts`` into one group per :data:`CHUNK_ROWS`
    user-days, for the per-user part of :func:`event_features`: the first account of each
    group but the first.

    That part's one row per snapshot and user holds the memory: on a 47M-event sparse world
    (38.7M user-days, 10M such rows) under the 3 GiB cap it took 62 s whole and 21 s in 8
    groups (the whole build 93 s and 48 s); on worlds of 10M user-days and less, splitting
    changes nothing.
    """
    n = max(1, -(-user_days // CHUNK_ROWS))
    ordered = sorted(set(accounts))
    return tuple(sorted({ordered[i * len(ordered) // n] for i in range(1, n)}))


def _groups(t: ir.Table, splits: Sequence[str]) -> list[ir.Table]:
    """``t``'s rows in the groups of accounts that ``splits`` bound."""
    if not splits:
        return [t]
    ends: list[str | None] = [None, *splits, None]
    out = []
    for lo, hi in pairwise(ends):
        keep = ibis.literal(True)
        if lo is not None:
            keep &= t.account_id >= lo
        if hi is not None:
            keep &= t.account_id < hi
        out.append(t.filter(keep))
    return out


def event_features(
    ud: ir.Table,
    ed: ir.Table,
    snaps: ir.Table,
    cfg: FeatureConfig,
    top_events: Sequence[str],
    hold: Callable[[ir.Table], ir.Table] = _as_is,
    splits: Sequence[str] = (),
) -> ir.Table:
    """Every event feature of every snapshot, from the user-days and event-days of
    :func:`features.usage.rollups`: the columns of :func:`features.usage.usage_features`
    and of :func:`features.usage.concentration_features`, one row per snapshot.

    Counts are 0 where the snapshot has no rows in their window; ``_top_n30`` and
    ``days_since_champion`` are missing where no user was active in their look-back.

    ``hold`` is applied to each of the three parts (sums, users, events): an engine that
    can materialise them (``features.training`` keeps each on DuckDB) runs three small
    queries, each with the memory to itself, instead of one query whose joins and
    aggregates all hold memory at once. ``splits`` (:func:`account_splits`) cut the
    accounts into groups whose per-user part is computed and held apart.
    """
    users = [
        hold(_user_features(u, s, cfg))
        for u, s in zip(_groups(ud, splits), _groups(snaps, splits), strict=True)
    ]
    parts = [
        hold(_sum_features(ud, snaps, cfg)),
        ibis.union(*users) if len(users) > 1 else users[0],
        hold(_event_features(ed, snaps, cfg, top_events)),
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
