"""The events' roll-ups, and a second implementation of the event features: running sums.

:func:`rollups` feeds the feature build. The build computes the event features with range
joins (:mod:`features.windows`), 2 to 2.5 times faster on sparse and dense data alike;
:func:`usage_features` and :func:`concentration_features` below compute the same columns
another way and stay as the reference the range joins are checked against, value for value
(``tests/test_windows.py``).

Events are rolled up to user-days and event-days (:func:`rollups`). A window count such as
"events in the 30 days before ``as_of``" is then ``F(as_of) - F(as_of - 30)``, where
``F(x)`` is the account's sum of a column over the days before ``x``; each snapshot needs
``F`` at a few fixed offsets from its ``as_of`` (:func:`_lookups`). This replaces joining
every user-day to every snapshot within its look-back, which on a large world multiplies
the rows several times.

Distinct counts (active users, distinct events, new, lost and key users) become sums too:
a user-day ``d`` whose user is next active on day ``nxt`` counts the user as active in
``[t - w, t)`` exactly for ``d < t <= min(nxt, d + w)``, an interval that starts and ends
on days fixed by ``d``, ``nxt`` and the previous active day. Each end is a +1 or -1 added on
a day derived from one row, and ``F`` of those is the count.

The two concentration features need per-user sums and are joined per snapshot and user on
(account, look-back bucket), so that only user-days inside the look-back meet a snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ibis
import ibis.expr.types as ir

from features.catalog import event_slugs
from features.config import FeatureConfig
from features.snapshots import epoch_day

#: ``days_since_last_event`` when the account had no event in this many days: this + 1.
RECENT_DAYS = 180
SLOPE_WEEKS = 13
#: "New" users were not active in the 60 days before the last 30; "lost" users were active
#: 31-60 days ago. Fixed spans, whatever the configured windows.
MONTH = 30
#: Days per bucket of the two-level prefix sums (``_lookups``) and of the look-back join.
BUCKET = 32
NEW_GAP = 90
LOST_SPAN = 60

Lookup = Callable[[str, int], ir.IntegerValue]


def lookback_days(cfg: FeatureConfig) -> int:
    """Days of events before ``as_of`` that decide every event feature of a snapshot.

    Events older than this leave every value unchanged, so scoring at one as-of reads only
    these days (a property test checks it): the longest window; the new users' 90 days (the
    last 30 and 60 quiet ones before); the 13 trend weeks; the 180 days after which
    ``days_since_last_event`` is capped; the champion's look-back. A distinct count over
    ``[t - w, t)`` needs nothing before ``t - w``.
    """
    return max(
        *cfg.windows,
        NEW_GAP,
        LOST_SPAN,
        7 * SLOPE_WEEKS,
        RECENT_DAYS + 1,
        cfg.champion_days,
    )


#: Contribution columns that count the rows of the day, and the day itself (1).
ROWS = ibis.literal(1, "int64")
DAY = ibis.literal(1, "int8")


def _daily_sum(t: ir.Table, v: ir.Value) -> ir.FloatingScalar:
    """The day's total of one contribution, as float64: flags are counted, and DuckDB's
    integer sums widen to 128 bits, several times slower than summing doubles (exact here,
    far below 2**53)."""
    if v is ROWS:
        total = t.count()
    elif v is DAY:
        total = (t.count() > 0).cast("int64")
    elif v.type().is_boolean():
        total = t.count(where=v)
    else:
        return v.cast("float64").sum()
    return total.cast("float64")


def rollups(events: ir.Table, cfg: FeatureConfig) -> tuple[ir.Table, ir.Table]:
    """User-days (``n`` events, ``k`` key events) and event-days (``n``), each straight
    from the events: every event feature reads these two (engines that can keep them,
    ``.cache()``, read the events twice per build).

    No finer roll-up (per account, user, event and day) comes in between: on sparse data,
    about one event per user-day, it is nearly as large as the events, and on a 47M-event
    world keeping it took most of the 3 GiB memory cap.
    """
    ev = events.select("account_id", "user_id", "event", day=epoch_day(events.ts))
    key = ev.event.isin(list(cfg.key_events)) if cfg.key_events else ibis.literal(False)
    ud = ev.group_by(["account_id", "user_id", "day"]).aggregate(
        n=ev.count(), k=ev.count(where=key)
    )
    ed = ev.group_by(["account_id", "event", "day"]).aggregate(n=ev.count())
    return ud, ed


def common_events(days: ir.Table, n: int, before_day: int) -> tuple[str, ...]:
    """The ``n`` most frequent event names before ``before_day`` (ties broken by name), from
    the event-days of :func:`rollups`."""
    if n == 0:
        return ()
    d = days.filter(days.day < before_day)
    top = d.group_by("event").aggregate(c=d.n.sum()).order_by([ibis.desc("c"), "event"]).limit(n)
    return tuple(top.to_pyarrow()["event"].to_pylist())


def _gaps(t: ir.Table, by: Sequence[str]) -> ir.Table:
    """Adds ``gp`` and ``gn``: days since the previous and until the next row of ``by``.

    One window per account (``by[0]``), ordered by the rest of ``by`` and the day, with the
    neighbours of another key blanked. (A window per full key is faster alone on DuckDB,
    but not in the whole feature query: see the benchmarks README.)
    """
    w = ibis.window(group_by=by[0], order_by=[*by[1:], "day"])
    key = t[by[-1]]
    same_prev, same_next = key.lag().over(w) == key, key.lead().over(w) == key
    return t.mutate(
        gp=same_prev.ifelse(t.day - t.day.lag().over(w), ibis.null("int64")),
        gn=same_next.ifelse(t.day.lead().over(w) - t.day, ibis.null("int64")),
    )


def _between(gap: ir.IntegerValue, lo: int, hi: int) -> ir.BooleanValue:
    return gap.notnull() & (gap > lo) & (gap < hi)


def _ends(t: ir.Table, prefix: str, windows: Sequence[int]) -> dict[str, ir.BooleanValue]:
    """Rows that close the "active in the last w days" interval of each row.

    ``{prefix}a{w}``: rows whose previous row is at most ``w`` days back (the previous row's
    interval ends here); ``{prefix}b{w}``: rows with no next row within ``w`` days (the
    interval ends ``w`` days later, read at offset ``+w``).
    """
    out: dict[str, ir.BooleanValue] = {}
    for w in windows:
        out[f"{prefix}a{w}"] = t.gp.notnull() & (t.gp <= w)
        out[f"{prefix}b{w}"] = t.gn.isnull() | (t.gn > w)
    return out


def _contributions(
    ud: ir.Table, ed: ir.Table, cfg: FeatureConfig, top_events: Sequence[str]
) -> list[ir.Table]:
    """Per account and day, every column whose running sum the features read, as float64:
    one table from user-days, one from key user-days, one from event-days."""
    windows = sorted({*cfg.windows, MONTH})
    u = _gaps(ud, ["account_id", "user_id"])
    user_cols = {
        "n": u.n,
        "k": u.k,
        "users": ROWS,
        "days": DAY,
        **_ends(u, "u", windows),
        # New users (see the module docstring): a user-day is new when the user was quiet
        # for NEW_GAP days before it (new_after_quiet); a user whose previous gap was 60-90
        # days is new for the part of the window the gap spans (new_gap_start at the day
        # the gap closes, new_gap_end where it opened).
        "new_after_quiet": u.gp.isnull() | (u.gp >= NEW_GAP),
        "new_gap_start": _between(u.gn, NEW_GAP - MONTH, NEW_GAP),
        "new_gap_end": _between(u.gp, NEW_GAP - MONTH, NEW_GAP),
        # Lost users: active 31-60 days before the snapshot and not since. lost_quiet_since
        # marks a user-day with no next one for LOST_SPAN days; lost_gap_start and
        # lost_gap_end mark both ends of a gap of MONTH to LOST_SPAN days.
        "lost_quiet_since": u.gn.isnull() | (u.gn >= LOST_SPAN),
        "lost_gap_start": _between(u.gn, MONTH, LOST_SPAN),
        "lost_gap_end": _between(u.gp, MONTH, LOST_SPAN),
    }
    kd = _gaps(ud.filter(ud.k > 0), ["account_id", "user_id"])
    key_cols = {"kusers": ROWS, **_ends(kd, "k", [MONTH])}
    e = _gaps(ed, ["account_id", "event"])
    event_cols = {
        "evs": ROWS,
        **_ends(e, "e", cfg.windows),
        **{
            f"ev_{slug}": (e.event == x).ifelse(e.n, 0)
            for x, slug in zip(top_events, event_slugs(top_events), strict=True)
        },
    }
    parts = [(u, user_cols), (kd, key_cols), (e, event_cols)]
    return [
        t.group_by(["account_id", "day"]).aggregate(
            **{c: _daily_sum(t, v) for c, v in cols.items()}
        )
        for t, cols in parts
    ]


def _lookups(contrib: ir.Table, snaps: ir.Table, need: set[tuple[str, int]]) -> ir.Table:
    """Per snapshot, ``<col>@<offset>``: the account's sum of ``col`` over days before
    ``as_of - offset``, for every pair in ``need``; and ``last_day``, the last active day.

    Prefix sums in two levels, with joins and group-bys only (engines run framed window
    sums over many columns slowly): the running totals of whole ``BUCKET``-day buckets
    up to the one before the lookup day's, plus the rows of its own bucket before it.
    """
    cols = sorted({c for c, _ in need})
    sums = lambda t: {c: t[c].sum() for c in cols}  # noqa: E731
    rows = contrib.select("account_id", "day", *cols).mutate(_b=ibis._.day // BUCKET)
    offs = ibis.memtable({"_off": sorted({o for _, o in need})}, schema={"_off": "int64"})
    m = snaps.select("snapshot_id", "account_id", "as_of_day").cross_join(offs)
    m = m.mutate(_p=m.as_of_day - m._off).mutate(_b=ibis._._p // BUCKET)

    whole = rows.group_by(["account_id", "_b"]).aggregate(**sums(rows), _last=rows.day.max())
    lo = whole.group_by("account_id").aggregate(lo=whole._b.min())
    hi = m.group_by("account_id").aggregate(hi=m._b.max())
    grid = lo.join(hi, "account_id")
    grid = grid.select("account_id", _g=ibis.range(grid.lo, grid.hi).unnest())
    grid = grid.view()
    g = grid.join(whole, ["account_id", grid._g >= whole._b])
    before = g.group_by(["account_id", "_g"]).aggregate(**sums(g), _last=g._last.max())

    p = m.join(rows, [m.account_id == rows.account_id, m._b == rows._b, rows.day < m._p])
    own = p.group_by(["snapshot_id", "_off"]).aggregate(**sums(p), _last=p.day.max())

    f = m.left_join(before, [m.account_id == before.account_id, before._g == m._b - 1]).select(
        "snapshot_id", "_off", *cols, "_last"
    )
    f = f.mutate(**{c: f[c].fill_null(0) for c in cols})
    f = f.left_join(own, [f.snapshot_id == own.snapshot_id, f._off == own._off]).select(
        "snapshot_id",
        "_off",
        **{c: f[c] + own[c].fill_null(0) for c in cols},
        _last=ibis.greatest(f._last, own._last),
    )
    return f.group_by("snapshot_id").aggregate(
        **{f"{c}@{o}": f[c].max(where=f._off == o) for c, o in sorted(need)},
        last_day=f._last.max(where=f._off == 0),
    )


def _formulas(
    running_sum: Lookup, cfg: FeatureConfig, top_events: Sequence[str]
) -> dict[str, ir.Value]:
    """The features (and ``_`` helpers) from running sums: ``running_sum(col, offset)`` is
    the account's sum of ``col`` over the days before ``as_of - offset`` (``F`` of the
    module docstring)."""
    F = running_sum  # the module docstring's name, kept short: the formulas read like it

    def window(col: str, w: int, start: int = 0) -> ir.IntegerValue:
        return F(col, start) - F(col, start + w)

    def active(prefix: str, start_col: str, w: int, at: int = 0) -> ir.IntegerValue:
        """Distinct users (or events) active in [t - at - w, t - at)."""
        return F(start_col, at) - F(f"{prefix}a{w}", at) - F(f"{prefix}b{w}", at + w)

    out: dict[str, ir.Value] = {}
    for w in cfg.windows:
        out[f"events_{w}d"] = window("n", w)
        out[f"key_events_{w}d"] = window("k", w)
        out[f"user_days_{w}d"] = window("users", w)
        out[f"active_days_{w}d"] = window("days", w)
        out[f"active_users_{w}d"] = active("u", "users", w)
        out[f"distinct_events_{w}d"] = active("e", "evs", w)
    out["_n30"], out["_k30"] = window("n", MONTH), window("k", MONTH)
    out["_ud30"], out["_u30"] = window("users", MONTH), active("u", "users", MONTH)
    out["_n_prev30"], out["_k_prev30"] = window("n", MONTH, MONTH), window("k", MONTH, MONTH)
    out["_u_prev30"] = active("u", "users", MONTH, at=MONTH)
    out["key_users_30d"] = active("k", "kusers", MONTH)
    out["new_users_30d"] = (
        window("new_after_quiet", MONTH) + F("new_gap_start", NEW_GAP) - F("new_gap_end", MONTH)
    )
    out["lost_users_30d"] = (
        window("lost_quiet_since", MONTH, MONTH) + F("lost_gap_start", MONTH) - F("lost_gap_end", 0)
    )
    weeks = [window("n", 7, 7 * j) for j in range(SLOPE_WEEKS)]
    out["_slope"] = sum(((SLOPE_WEEKS // 2 - j) * c for j, c in enumerate(weeks)), ibis.literal(0))
    out["_n_slope"] = window("n", 7 * SLOPE_WEEKS)
    for slug in event_slugs(top_events):
        out[f"event_{slug}_30d"] = window(f"ev_{slug}", MONTH)
    return out


def ratio(num: ir.NumericValue, den: ir.NumericValue) -> ir.FloatingValue:
    """``num / den`` as float64, missing where ``den`` is 0."""
    return (den > 0).ifelse(num.cast("float64") / den.nullif(0), ibis.null("float64"))


def usage_features(
    ud: ir.Table,
    ed: ir.Table,
    snaps: ir.Table,
    cfg: FeatureConfig,
    top_events: Sequence[str],
) -> ir.Table:
    """Frequency, breadth, depth and trends of every snapshot, from the two roll-ups."""
    need: set[tuple[str, int]] = set()

    def record(col: str, offset: int) -> ir.IntegerValue:
        need.add((col, offset))
        return ibis.literal(0, "int64")

    _formulas(record, cfg, top_events)
    s = snaps.select("snapshot_id", "as_of_day")
    for i, part in enumerate(_contributions(ud, ed, cfg, top_events)):
        cols = set(part.columns)
        found = _lookups(part, snaps, {(c, o) for c, o in need if c in cols})
        # Every part is dated on active days: the first one's last_day is the account's.
        found = found.rename(_sid="snapshot_id").drop(*(["last_day"] if i else []))
        s = s.join(found, s.snapshot_id == found._sid).drop("_sid")
    f = _formulas(lambda c, o: s[f"{c}@{o}"], cfg, top_events)
    age = s.as_of_day - s.last_day
    derived = {
        **{f"key_share_{w}d": ratio(f[f"key_events_{w}d"], f[f"events_{w}d"]) for w in cfg.windows},
        "stickiness_30d": ratio(f["_ud30"], f["_u30"] * MONTH),
        "events_change_30d": (f["_n30"] + 1).cast("float64") / (f["_n_prev30"] + 1) - 1,
        "active_users_change_30d": (f["_u30"] + 1).cast("float64") / (f["_u_prev30"] + 1) - 1,
        "key_events_change_30d": (f["_k30"] + 1).cast("float64") / (f["_k_prev30"] + 1) - 1,
        # Least-squares slope of 13 weekly counts: sum((6 - j) * c_j) / sum((j - 6)^2), with
        # sum((j - 6)^2) = 182. The cast matters on Spark, where 182.0 is a DECIMAL literal
        # and int / decimal is rounded.
        "events_slope_90d": (f["_slope"].cast("float64") / 182.0)
        / (f["_n_slope"].cast("float64") / SLOPE_WEEKS + 1),
        "days_since_last_event": (age.isnull() | (age > RECENT_DAYS)).ifelse(RECENT_DAYS + 1, age),
        "_n30": f["_n30"],
    }
    keep = {k: v for k, v in f.items() if not k.startswith("_")}
    return s.select("snapshot_id", **keep, **derived)


def in_lookback(rows: ir.Table, snaps: ir.Table, lookback: int) -> ir.Table:
    """``rows`` (``account_id``, ``day``, ...) joined to the snapshots of their account with
    ``as_of_day - lookback <= day < as_of_day``; adds ``snapshot_id``, ``as_of_day`` and
    ``age`` (``as_of_day - day``, from 1 to ``lookback``).

    The snapshots are repeated for each ``BUCKET``-day bucket their look-back touches and
    the join's equality is (account, bucket), so only rows of those buckets are compared.
    """
    reach = ibis.memtable({"_j": list(range(lookback // BUCKET + 2))}, schema={"_j": "int64"})
    s = snaps.select("snapshot_id", "as_of_day", _acc="account_id").cross_join(reach)
    s = s.mutate(_b=(s.as_of_day - 1) // BUCKET - s._j).drop("_j")
    r = rows.mutate(_rb=rows.day // BUCKET)
    j = r.join(
        s,
        [
            r.account_id == s._acc,
            r._rb == s._b,
            r.day < s.as_of_day,
            r.day >= s.as_of_day - lookback,
        ],
    )
    return j.mutate(age=j.as_of_day - j.day).drop("_rb", "_acc", "_b")


def concentration_features(ud: ir.Table, snaps: ir.Table, champion_days: int) -> ir.Table:
    """Top user's share of the last 30 days' events; days since the champion was active.

    The champion is the user with the most events in the ``champion_days`` before the
    snapshot (ties: the smallest ``user_id``). User-days meet the snapshots of their account
    through ``BUCKET``-day buckets, each snapshot listing the buckets its look-back
    touches, so the join pairs a user-day only with snapshots at most a look-back and a
    bucket away.
    """
    span = max(champion_days, MONTH)  # the look-back of both features
    j = in_lookback(ud, snaps, span)
    # Every row is inside the champion's look-back unless it is the shorter of the two.
    champion = j.age <= champion_days if champion_days < span else None
    per = j.group_by(["snapshot_id", "user_id"]).aggregate(
        n30=j.n.sum(where=j.age <= MONTH),
        n_all=j.n.sum(where=champion),
        last_age=j.age.min(where=champion),
    )
    per = per.mutate(n_all=per.n_all.fill_null(0))
    order = ibis.window(group_by=per.snapshot_id, order_by=[ibis.desc(per.n_all), per.user_id])
    per = per.mutate(_rank=ibis.row_number().over(order))
    return per.group_by("snapshot_id").aggregate(
        _top_n30=per.n30.max(),
        days_since_champion=per.last_age.min(where=per._rank == 0),
    )
