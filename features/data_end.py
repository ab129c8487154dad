"""The end of the data: the first day that no table may speak of.

A label is used only when it was known before the end, and rows dated on or after it are
reported and excluded. The export date, when the settings give it (``data.export_date``),
is the end. Otherwise the end is the day after the last day with events, where a day
counts only if the events agree on it: one event stamped 2099 (a clock bug, a placeholder
date) would otherwise move the end by decades and turn years of silence into churn.

The rule, on the days with events in date order: the data stop before the first day that
follows a silence longer than :data:`MIN_SILENCE` days and three times any earlier silence,
when less than :data:`TAIL_SHARE` of the events come on or after it. A day after
tomorrow (UTC, by the machine's clock) is never in the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import ibis
import ibis.expr.types as ir

from features.errors import ContractError
from features.snapshots import day_number, epoch_day
from features.training import NO_EVENTS

MIN_SILENCE = 30
TAIL_SHARE = 0.01
EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class DataEnd:
    """The end of the data (exclusive) and how it was found, for the validation report."""

    day: date
    how: str


def derive_end(
    events: ir.Table,
    export_date: date | None,
    today: date | None = None,
    rows: int | None = None,
    last: datetime | None = None,
) -> DataEnd:
    """The end of the data of ``events`` (see the module's docstring).

    ``rows`` and ``last``: the events' row count and last timestamp when the file's
    statistics give them. Then, when the 30 days up to the last event hold at least
    :data:`TAIL_SHARE` of the events, no day can follow a silence that the rule would cut
    (any later part of the data holds those rows), so the end is the day after the last
    event without counting the events of every day (one filtered count, not a grouping).
    """
    if export_date is not None:
        return DataEnd(export_date, "the export date (data.export_date)")
    latest = day_number(today or datetime.now(UTC).date()) + 1
    if rows is not None and last is not None and day_number(last.date()) <= latest:
        month = ibis.timestamp(datetime.combine(last.date() - timedelta(days=MIN_SILENCE), time(),
                                                tzinfo=UTC))  # fmt: skip
        recent = int(events.filter(events.ts >= month).count().to_pyarrow().as_py())
        if recent >= TAIL_SHARE * rows:
            end = EPOCH + timedelta(days=day_number(last.date()) + 1)
            return DataEnd(end, "the day after the last event")
    counts = (
        events.group_by(day=epoch_day(events.ts)).aggregate(n=events.count()).order_by("day")
    ).to_pyarrow()
    days = [int(d) for d in counts["day"].to_pylist() if d is not None]
    per_day = [int(n) for n, d in zip(counts["n"].to_pylist(), counts["day"].to_pylist(),
               strict=True) if d is not None]  # fmt: skip
    if not days:
        raise ContractError(NO_EVENTS)
    total, after, longest = sum(per_day), sum(per_day), 0
    kept = days[0]
    for i in range(1, len(days)):
        after -= per_day[i - 1]
        gap = days[i] - days[i - 1]
        if days[i] > latest or (gap > max(MIN_SILENCE, 3 * longest) and after < TAIL_SHARE * total):
            break
        longest = max(longest, gap)
        kept = days[i]
    end = EPOCH + timedelta(days=kept + 1)
    if kept == days[-1]:
        return DataEnd(end, "the day after the last event")
    return DataEnd(
        end,
        f"the day after the last event before a silence of {days[days.index(kept) + 1] - kept:,} "
        "days; later events look like wrong timestamps (set data.export_date to choose the "
        "end yourself)",
    )
