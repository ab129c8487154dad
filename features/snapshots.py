"""Snapshots and labels: the point-in-time skeleton every feature row hangs on.

A snapshot is an (account, ``as_of``) pair, ``as_of`` being midnight UTC of a day. Features
use only data strictly before ``as_of``. Times are handled as integer day numbers since
1970-01-01 (``*_day``) and epoch seconds (``*_sec``), which DuckDB and Spark compute alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from features.asof import SECONDS_PER_DAY
from features.config import LabelConfig


def day_number(d: date) -> int:
    """Days since 1970-01-01 of a calendar day."""
    return (d - date(1970, 1, 1)).days


@ibis.udf.scalar.builtin(name="epoch_us")
def _epoch_us(ts: dt.Timestamp(timezone="UTC")) -> dt.int64:  # type: ignore[valid-type]
    """DuckDB's microseconds since the epoch of an instant, with no time-zone lookup."""


@ibis.udf.scalar.builtin(name="unix_micros")
def _unix_micros(ts: dt.Timestamp(timezone="UTC")) -> dt.int64:  # type: ignore[valid-type]
    """Spark's microseconds since the epoch."""


MICROS = {"duckdb": _epoch_us, "pyspark": _unix_micros}


def epoch_day(col: ir.Value) -> ir.IntegerValue:
    """The UTC day number of a timestamp or date column.

    Ibis compiles ``epoch_seconds`` for DuckDB through a cast that looks up the time zone
    of every row (five times the cost of reading events); both engines have a builtin that
    does not, used where the column's engine is known.
    """
    if col.type().is_date():
        col = col.cast("timestamp('UTC')")
    micros = MICROS.get(col._find_backend(use_default=True).name)
    if micros is None:
        return (col.epoch_seconds() // SECONDS_PER_DAY).cast("int64")
    return (micros(col) // (SECONDS_PER_DAY * 1_000_000)).cast("int64")


def renewal_days(contracts: ir.Table, return_grace_days: int = 0) -> ir.Table:
    """The renewal days of each account: one row per (``account_id``, ``end_day``).

    Terms of one account that end on the same day are one renewal (an add-on co-termed with
    its main contract). Columns: ``day_arr`` (their ARR summed), ``all_churned`` (every one
    of them churned), ``returned`` (a term of the account starts within
    ``return_grace_days`` on or after the day, with a grace above 0) and ``history_end``.

    A renewal day ends the account's history when every term of it churned, no other term of
    the account runs across it (started before and ends after it: the customer stayed) and
    the account did not return within the grace. The next term after it is a re-signup and
    starts a new history. Every input is known at ``end_day + return_grace_days``.
    """
    c = contracts.mutate(
        start_day=epoch_day(contracts.start_date), end_day=epoch_day(contracts.end_date)
    )
    churned = (c.outcome == "churned").fill_null(False).cast("int8")
    days = c.group_by(["account_id", "end_day"]).aggregate(
        day_arr=c.arr.sum(), all_churned=churned.min() == 1
    )
    other = c.select(_acc="account_id", _start="start_day", _end="end_day")
    spans = days.join(
        other,
        [
            days.account_id == other._acc,
            other._start < days.end_day,
            other._end > days.end_day,
        ],
    )
    spans = spans.group_by(["account_id", "end_day"]).aggregate(_spans=spans._start.count())
    flags = [spans.rename(_sacc="account_id", _sday="end_day")]
    if return_grace_days > 0:
        back = days.join(
            other,
            [
                days.account_id == other._acc,
                other._start >= days.end_day,
                other._start <= days.end_day + return_grace_days,
            ],
        )
        back = back.group_by(["account_id", "end_day"]).aggregate(_back=back._start.count())
        flags.append(back.rename(_sacc="account_id", _sday="end_day"))
    out = days
    for f in flags:
        out = out.left_join(f, [out.account_id == f._sacc, out.end_day == f._sday]).drop(
            "_sacc", "_sday"
        )
    returned = out._back.notnull() if return_grace_days > 0 else ibis.literal(False)
    out = out.mutate(returned=returned)
    return out.select(
        "account_id",
        "end_day",
        "day_arr",
        "all_churned",
        "returned",
        history_end=out.all_churned & out._spans.isnull() & ~out.returned,
    )


def terms(contracts: ir.Table, return_grace_days: int = 0) -> ir.Table:
    """Contract terms with their place in the account's current history.

    Adds ``start_day``, ``end_day``, ``term_number`` and ``prev_arr``, from the account's
    renewal days (:func:`renewal_days`) on or before the term's ``start_day``, so that both
    are known during the term and parallel contracts are not mixed:

    - ``term_number``: 1 + the number of distinct renewal days of the account on or before
      the term's start, since its history last ended. Terms renewing together count once;
      an add-on signed mid-term has the main contract's term number.
    - ``prev_arr``: the summed ARR of the account's terms that ended on the latest such day;
      empty for a term that starts a history (the first term, or a re-signup).

    History ends on a renewal day whose terms all churned, with no other term of the account
    running across it and no return within ``return_grace_days`` (then the return continues
    the history: ``term_number`` goes on and ``prev_arr`` is the churned ARR). The outcome
    is read only for terms that ended on or before the term's start.
    """
    c = contracts.mutate(
        start_day=epoch_day(contracts.start_date), end_day=epoch_day(contracts.end_date)
    )
    days = renewal_days(contracts, return_grace_days)
    d = days.select(_acc="account_id", _day="end_day", _arr="day_arr", _stop="history_end")
    key = c.select(_cid="contract_id", _ka="account_id", _ks="start_day")
    j = key.join(d, [key._ka == d._acc, d._day <= key._ks])
    per_term = ibis.window(group_by=j._cid)
    j = j.mutate(
        _cut=j._stop.ifelse(j._day, ibis.null("int64")).max().over(per_term),
        _last=j._day.max().over(per_term),
    )
    in_history = j._cut.isnull() | (j._day > j._cut)
    h = j.group_by("_cid").aggregate(
        _renewals=j._day.count(where=in_history),
        _prev=j._arr.max(where=in_history & (j._day == j._last)),
    )
    t = c.left_join(h, c.contract_id == h._cid).drop("_cid")
    return t.mutate(
        term_number=(t._renewals.fill_null(0) + 1).cast("int64"),
        prev_arr=t._prev.cast("float64"),
    ).drop("_renewals", "_prev")


#: Columns of every renewal-mode snapshot table, in order.
SNAPSHOT_COLUMNS = (
    "account_id", "contract_id", "as_of_day", "lead_days", "term_number", "seats", "arr",
    "prev_arr", "renewal_day", "label", "expansion", "label_known_day",
)  # fmt: skip


def _first_of(s: ir.Table, col: str, first: ir.BooleanValue) -> ir.Value:
    """The value of ``col`` on the group's row flagged ``first`` (an aggregate)."""
    return s[col].max(where=first)


def renewal_snapshots(
    contracts: ir.Table, cfg: LabelConfig, cutoff_day: int | None = None
) -> ir.Table:
    """Training snapshots of renewal mode: ``lead_days`` before each decided renewal.

    One row per account, renewal day and lead: the account's decided terms (outcome known)
    that end that day and started before the snapshot (``start < as_of``, the same rule as
    at scoring) are rolled up as :func:`open_term_snapshots` rolls up an account's open
    terms: ARR and seats summed; ``contract_id``, ``term_number`` and ``prev_arr`` of the
    earliest-started of them (then the smallest ``contract_id``).

    Label: 1 when every term of the row churned and the account did not come back within
    ``cfg.return_grace_days`` of the end (a quick return counts as renewed); ``expansion``:
    1 when any term expanded. A churned row's label is known at ``end + return_grace_days``
    (only then is it certain there was no return), any other at the end. Only rows whose
    label was known before ``cutoff_day`` are returned: an outcome entered early on a term
    ending on or after the cut-off is not a label. Features never read term length: the only
    date of the term they see is its end (``days_to_renewal``, equal to the lead here), so a
    churned term whose ``end_date`` the CRM moved back to the cancellation gives the same
    contract features as a renewed one at the same lead.
    """
    grace = cfg.return_grace_days
    t = terms(contracts, grace)
    decided = t.filter(t.outcome.notnull())
    leads = ibis.memtable({"lead_days": list(cfg.lead_days)}, schema={"lead_days": "int64"})
    s = decided.cross_join(leads)
    s = s.mutate(as_of_day=s.end_day - s.lead_days)
    s = s.filter(s.as_of_day > s.start_day)
    row = [s.account_id, s.end_day, s.lead_days]
    s = s.mutate(
        _first=ibis.row_number().over(group_by=row, order_by=[s.start_day, s.contract_id]) == 0
    )
    r = s.group_by(["account_id", "end_day", "lead_days", "as_of_day"]).aggregate(
        contract_id=_first_of(s, "contract_id", s._first),
        term_number=_first_of(s, "term_number", s._first),
        prev_arr=_first_of(s, "prev_arr", s._first),
        seats=s.seats.sum(),
        arr=s.arr.sum(),
        _churned=(s.outcome == "churned").cast("int8").min() == 1,
        expansion=(s.outcome == "expanded").cast("int8").max(),
    )
    days = renewal_days(contracts, grace).select(
        _acc="account_id", _day="end_day", _back="returned"
    )
    r = r.left_join(days, [r.account_id == days._acc, r.end_day == days._day])
    r = r.mutate(
        label=(r._churned & ~r._back.fill_null(False)).cast("int8"),
        label_known_day=r._churned.ifelse(r.end_day + grace, r.end_day).cast("int64"),
        renewal_day=r.end_day,
    )
    if cutoff_day is not None:
        r = r.filter(r.label_known_day < cutoff_day)
    return r.select(*SNAPSHOT_COLUMNS)


def _on_days(t: ir.Table, as_of_days: Sequence[int]) -> ir.Table:
    """``t``'s rows once per snapshot day, with the day as ``as_of_day``. One day (every
    ``churn score``) stays a constant, as before several days were one expression: no table
    to register, and the engine folds it into the filters."""
    if len(as_of_days) == 1:
        return t.mutate(as_of_day=ibis.literal(as_of_days[0], "int64"))
    days = ibis.memtable({"as_of_day": list(as_of_days)}, schema={"as_of_day": "int64"})
    return t.cross_join(days)


def _overdue(td: ir.Table) -> ir.Table:
    """The rows of ``td`` (terms on snapshot days, :func:`_on_days`) overdue on their
    ``as_of_day``, with ``days_overdue`` (see :func:`overdue_terms`)."""
    ended = td.filter((td.end_day <= td.as_of_day) & td.outcome.isnull())
    later = td.select(_acc="account_id", _start="start_day", _day="as_of_day")
    later = later.filter(later._start < later._day)
    overdue = ended.anti_join(
        later,
        [ended.account_id == later._acc, ended.as_of_day == later._day,
         later._start >= ended.end_day],
    )  # fmt: skip
    return overdue.mutate(days_overdue=(overdue.as_of_day - overdue.end_day).cast("int64"))


def overdue_terms(contracts: ir.Table, as_of_day: int, return_grace_days: int = 0) -> ir.Table:
    """Overdue renewals at ``as_of_day``: terms past their end with no outcome recorded.

    A term is overdue when ``end_day <= as_of_day``, its ``outcome`` is empty and no later
    term of the same account started on or after its end and before ``as_of_day`` (that
    term would be its renewal). The outcome is read only for terms that ended by
    ``as_of_day``: it is known from ``end_date`` on. Returns the columns of :func:`terms`
    plus ``days_overdue`` (``as_of_day - end_day``, 0 on the renewal day itself); count
    them with ``overdue_terms(...).count()``.
    """
    td = _on_days(terms(contracts, return_grace_days), [as_of_day])
    return _overdue(td).drop("as_of_day")


def open_term_snapshots(
    contracts: ir.Table,
    as_of_day: int | Sequence[int],
    within_days: int,
    return_grace_days: int = 0,
) -> ir.Table:
    """Scoring snapshots of renewal mode: one row per account with a renewal to score, on
    ``as_of_day`` (or on each of several days, in one expression).

    An account is scored when it has an open term ending within the horizon (started before
    the snapshot day, not yet ended: ``start < as_of < end <= as_of + within_days``; a term
    starting on the snapshot day is not yet known, by the same strict rule as every other
    row) or an overdue renewal (:func:`overdue_terms`, whatever its age: the renewal most at
    risk). These terms are rolled up: ARR and seats summed, ``renewal_day`` the earliest
    end, and ``contract_id``, ``term_number`` and ``prev_arr`` of the earliest-ending term
    (then the earliest-started, then the smallest ``contract_id``). ``lead_days`` is
    ``renewal_day - as_of_day``: zero or negative (the days overdue) for an account whose
    next renewal is overdue, which is how scoring flags it (``overdue``). The outcome of a
    term ending after the snapshot day is not read: in a replay of history it would be the
    future.

    Training rolls up only the terms that end on one day (:func:`renewal_snapshots`); an
    account holding terms that end on different days within the horizon has them all in
    its ARR and seats here, since all of them are at stake.

    Several days are one expression over the terms and a table of the days, not a union of
    one expression per day: an account's explanation (seven months) compiled and ran in
    1.1-1.3 s against 1.8-1.9 s.
    """
    days = [as_of_day] if isinstance(as_of_day, int) else list(as_of_day)
    td = _on_days(terms(contracts, return_grace_days), days)
    open_ = td.filter(
        (td.start_day < td.as_of_day)
        & (td.end_day > td.as_of_day)
        & (td.end_day <= td.as_of_day + within_days)
    )
    cols = ["account_id", "as_of_day", "contract_id", "start_day", "end_day", "term_number",
            "seats", "arr", "prev_arr"]  # fmt: skip
    s = open_.select(*cols).union(_overdue(td).select(*cols))
    order = [s.end_day, s.start_day, s.contract_id]
    first = ibis.row_number().over(group_by=[s.account_id, s.as_of_day], order_by=order) == 0
    s = s.mutate(_first=first)
    r = s.group_by(["account_id", "as_of_day"]).aggregate(
        contract_id=_first_of(s, "contract_id", s._first),
        term_number=_first_of(s, "term_number", s._first),
        prev_arr=_first_of(s, "prev_arr", s._first),
        seats=s.seats.sum(),
        arr=s.arr.sum(),
        renewal_day=s.end_day.min(),
    )
    return r.mutate(
        lead_days=(r.renewal_day - r.as_of_day).cast("int64"),
        label=ibis.null("int8"),
        expansion=ibis.null("int8"),
        label_known_day=r.renewal_day,
    ).select(*SNAPSHOT_COLUMNS)


def calendar_days(first_day: int, last_day: int, every: str) -> list[int]:
    """Snapshot days from ``first_day`` to ``last_day``: first of each month, or Mondays."""
    first, last = date.fromordinal(first_day + 719_163), date.fromordinal(last_day + 719_163)
    out: list[int] = []
    if every == "week":
        d = first_day + (-(first_day + 3)) % 7  # day 0 (1970-01-01) was a Thursday
        out = list(range(d, last_day + 1, 7))
    else:
        y, m = first.year, first.month
        while True:
            d = day_number(date(y, m, 1))
            if d > last_day:
                break
            if d >= first_day:
                out.append(d)
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    del last
    return out


def active_accounts(events: ir.Table, days: list[int], active_days: int) -> ir.Table:
    """(account, as_of) pairs where the account had an event in the ``active_days`` before."""
    ev = events.select("account_id", day=epoch_day(events.ts)).distinct()
    cal = ibis.memtable({"as_of_day": days}, schema={"as_of_day": "int64"})
    j = ev.join(cal, [(ev.day < cal.as_of_day) & (ev.day >= cal.as_of_day - active_days)])
    return j.select("account_id", "as_of_day").distinct()


def inactivity_snapshots(
    events: ir.Table,
    contracts: ir.Table | None,
    cfg: LabelConfig,
    days: list[int],
    labelled: bool = True,
) -> ir.Table:
    """Snapshots of inactivity mode for the calendar ``days``.

    Label: 1 if the account has no event in ``[as_of, as_of + horizon)``; it is known at
    ``as_of + horizon``. With ``labelled=False`` (scoring) no label is computed.
    """
    base = active_accounts(events, days, cfg.active_days)
    if labelled:
        ev = events.select("account_id", day=epoch_day(events.ts))
        after = ev.join(base, "account_id").filter(
            lambda j: (j.day >= j.as_of_day) & (j.day < j.as_of_day + cfg.horizon_days)
        )
        seen = after.select("account_id", "as_of_day").distinct().mutate(seen=ibis.literal(1))
        base = base.left_join(seen, ["account_id", "as_of_day"]).select(
            "account_id", "as_of_day", label=(ibis._.seen.isnull()).cast("int8")
        )
    else:
        base = base.mutate(label=ibis.null("int8"))
    base = base.mutate(
        contract_id=ibis.null("string"),
        lead_days=ibis.literal(0, "int64"),
        renewal_day=ibis.null("int64"),
        expansion=ibis.null("int8"),
        label_known_day=base.as_of_day + cfg.horizon_days,
    )
    if contracts is None:
        return base.mutate(
            term_number=ibis.null("int64"),
            seats=ibis.null("int64"),
            arr=ibis.null("float64"),
            prev_arr=ibis.null("float64"),
        )
    # The latest term started before the snapshot gives seats and ARR, when there is one.
    t = terms(contracts, cfg.return_grace_days)
    j = base.left_join(t, [base.account_id == t.account_id, t.start_day < base.as_of_day])
    # term_number breaks ties between terms starting the same day, so that DuckDB and Spark
    # (whose row_number order among ties is arbitrary) pick the same term.
    latest = ibis.window(
        group_by=[j.account_id, j.as_of_day],
        order_by=[ibis.desc(j.start_day), ibis.desc(j.term_number)],
    )
    j = j.mutate(_rank=ibis.row_number().over(latest)).filter(lambda x: x._rank == 0)
    return j.select(
        "account_id",
        "as_of_day",
        "label",
        "contract_id",
        "lead_days",
        "renewal_day",
        "expansion",
        "label_known_day",
        "term_number",
        "seats",
        "arr",
        "prev_arr",
    ).mutate(contract_id=ibis.null("string"))
