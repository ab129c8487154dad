"""Support pain: tickets opened and open, response and resolution times, ticket CSAT."""

from __future__ import annotations

from typing import TYPE_CHECKING

from features.asof import SECONDS_PER_DAY, known, since
from features.catalog import Context, Feature, FeatureFamily, register, rows, windowed

if TYPE_CHECKING:
    import ibis.expr.types as ir


def declare(ctx: Context) -> list[Feature]:
    return [
        *windowed("tickets", "support", "Tickets opened", "tickets", "lower",
                  "support tickets created in the last {w} days", (30, 90), "tickets"),
        *rows("support", "tickets", (
            ("urgent_open", "Urgent tickets open", "tickets", None, "lower",
             "tickets of priority urgent open at the snapshot"),
            ("high_open", "High-priority tickets open", "tickets", None, "lower",
             "tickets of priority high open at the snapshot"),
            ("first_response_hours_90d", "Median first response (90 d)", "hours", 90, "lower",
             "median hours to first response of tickets answered in the last 90 days"),
            ("resolution_hours_90d", "Median resolution time (90 d)", "hours", 90, "lower",
             "median hours to resolution of tickets resolved in the last 90 days"),
            ("oldest_open_ticket_days", "Oldest open ticket", "days", None, "lower",
             "age of the oldest ticket still open at the snapshot"),
            ("ticket_csat_180d", "Ticket CSAT (180 d)", "1-5", 180, "higher",
             "mean CSAT of tickets resolved in the last 180 days"),
        )),
    ]  # fmt: skip


def support_features(tickets: ir.Table, snaps: ir.Table) -> ir.Table:
    """Tickets opened, open at the snapshot, response and resolution times, CSAT."""
    j = since(tickets, "created_at", snaps)
    now = j.as_of_sec
    answered, resolved = known(j.first_response_at, now), known(j.resolved_at, now)
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


FAMILY = register(
    FeatureFamily(
        name="support",
        words="support pain",
        play="Escalate to the support lead: urgent tickets are open or answered slowly",
        declare=declare,
        table="tickets",
        query=support_features,
        zero_when_absent=("tickets_", "urgent_open", "high_open", "oldest_open_ticket_days"),
    )
)
