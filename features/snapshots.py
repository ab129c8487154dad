"""Snapshots and labels: the point-in-time skeleton every feature row hangs on.

A snapshot is an (account, ``as_of``) pair, ``as_of`` being midnight UTC of a day. Features
use only data strictly before ``as_of``. Times are handled as integer day numbers since
1970-01-01 (``*_day``) and epoch seconds (``*_sec``), which DuckDB and Spark compute alike.
"""

from __future__ import annotations

from datetime import date

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from features.config import LabelConfig

SECONDS_PER_DAY = 86_400


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


def terms(contracts: ir.Table) -> ir.Table:
    """Contract terms with their position in the account's history.

    ``term_number`` counts terms by start date; ``prev_arr`` is the ARR of the term before.
    Both depend only on terms that started earlier, so they are known during the term.
    """
    order = ibis.window(
        group_by=contracts.account_id, order_by=[contracts.start_date, contracts.contract_id]
    )
    return contracts.mutate(
        start_day=epoch_day(contracts.start_date),
        end_day=epoch_day(contracts.end_date),
        term_number=(ibis.row_number().over(order) + 1).cast("int64"),
        prev_arr=contracts.arr.lag().over(order),
    )


def renewal_snapshots(
    contracts: ir.Table, cfg: LabelConfig, cutoff_day: int | None = None
) -> ir.Table:
    """Training snapshots of renewal mode: ``lead_days`` before each decided term's end.

    Only terms whose outcome is known and whose ``end_date`` is before ``cutoff_day`` (the
    label was known before the training cut-off) are used; a snapshot must fall inside its
    term (after ``start_date``). Label: 1 if the outcome is ``churned``.
    """
    t = terms(contracts)
    decided = t.filter(t.outcome.notnull())
    if cutoff_day is not None:
        decided = decided.filter(decided.end_day < cutoff_day)
    leads = ibis.memtable({"lead_days": list(cfg.lead_days)}, schema={"lead_days": "int64"})
    s = decided.cross_join(leads)
    s = s.mutate(as_of_day=s.end_day - s.lead_days)
    s = s.filter(s.as_of_day > s.start_day)
    return s.select(
        "account_id",
        "contract_id",
        "as_of_day",
        "lead_days",
        "term_number",
        "seats",
        "arr",
        "prev_arr",
        renewal_day=s.end_day,
        label=(s.outcome == "churned").cast("int8"),
        expansion=(s.outcome == "expanded").cast("int8"),
        label_known_day=s.end_day,
    )


def open_term_snapshots(contracts: ir.Table, as_of_day: int, within_days: int) -> ir.Table:
    """Scoring snapshots of renewal mode: terms open at ``as_of`` ending within the horizon.

    A term is open when it started before the snapshot day and has not ended
    (``start < as_of < end``: a term starting on the snapshot day is not yet known, by the
    same strict rule as every other row). Its outcome column is not read: in a replay of
    history it would be the future.
    """
    t = terms(contracts)
    t = t.filter(
        (t.start_day < as_of_day) & (t.end_day > as_of_day) & (t.end_day <= as_of_day + within_days)
    )
    return t.select(
        "account_id",
        "contract_id",
        "term_number",
        "seats",
        "arr",
        "prev_arr",
        as_of_day=ibis.literal(as_of_day, "int64"),
        lead_days=t.end_day - as_of_day,
        renewal_day=t.end_day,
        label=ibis.null("int8"),
        expansion=ibis.null("int8"),
        label_known_day=t.end_day,
    )


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
    t = terms(contracts)
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
