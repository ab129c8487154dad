"""The point-in-time joins every small-table family query is written with.

A snapshot reads a row only when the row's time is strictly before the snapshot's
``as_of`` (:func:`since`), and a later time of the row (a ticket's resolution, an invoice's
payment) only when that too was before it (:func:`known`). Times are compared as whole
epoch seconds (:func:`seconds`), the same on DuckDB and Spark.

The families' modules import this one, and a served model reads their declarations (the
words of its drivers, their plays) in an environment without Ibis: so Ibis is imported
only where a query is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ibis.expr.types as ir

SECONDS_PER_DAY = 86_400


def seconds(col: ir.Value) -> ir.IntegerValue:
    """Whole epoch seconds of a timestamp column."""
    # floor(): DuckDB's epoch is fractional and its cast to BIGINT rounds (23:59:59.7 would
    # become the next day's midnight and fail a strict "< as_of"); Spark truncates already.
    return col.epoch_seconds().floor().cast("int64")


def mark_latest(j: ir.Table, **among: ir.BooleanValue) -> ir.Table:
    """Add ``_latest_<name>``: the row is at the snapshot's last ``_sec`` among ``among[name]``.

    Used instead of ``argmax(_sec)``, which returns an arbitrary row when several share the
    last second (a survey import stamped at midnight), and DuckDB and Spark pick different
    ones; averaging the rows flagged here is deterministic on both.
    """
    import ibis

    return j.mutate(
        **{
            f"_latest_{name}": cond.fill_null(False)
            & (j._sec == cond.ifelse(j._sec, ibis.null("int64")).max().over(group_by=j.snapshot_id))
            for name, cond in among.items()
        }
    )


def since(t: ir.Table, col: str, snaps: ir.Table) -> ir.Table:
    """Join on account, rows whose ``col`` is strictly before ``as_of``; adds ``as_of_sec``."""
    t = t.mutate(_sec=seconds(t[col]))
    s = snaps.select("snapshot_id", "as_of_day", _acc="account_id")
    j = t.join(s, [t.account_id == s._acc, t._sec < s.as_of_day * SECONDS_PER_DAY])
    return j.mutate(as_of_sec=j.as_of_day * SECONDS_PER_DAY)


def known(col: ir.Value, as_of_sec: ir.IntegerValue) -> ir.IntegerValue:
    """Epoch seconds of ``col`` if it happened before the snapshot, else NULL (not yet)."""
    import ibis

    sec = seconds(col)
    return (sec < as_of_sec).ifelse(sec, ibis.null("int64"))
