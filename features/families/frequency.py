"""Frequency: how much and how often the account uses the product.

Computed with the other event families from the events' user-day roll-ups
(:mod:`features.windows`).
"""

from __future__ import annotations

from features.catalog import Context, Feature, FeatureFamily, register, rows, windowed


def declare(ctx: Context) -> list[Feature]:
    return [
        *windowed("events", "frequency", "Events", "events", "higher",
                  "product events in the {w} days before the snapshot", ctx.windows),
        *windowed("active_days", "frequency", "Active days", "days", "higher",
                  "days with at least one event in the last {w} days", ctx.windows),
        *windowed("user_days", "frequency", "Active user-days", "user-days", "higher",
                  "sum over days of the users active that day, last {w} days", ctx.windows),
        *rows("frequency", "events", (
            ("stickiness_30d", "Stickiness (DAU/MAU, 30 d)", "ratio", 30, "higher",
             "average daily active users divided by monthly active users, last 30 days"),
            ("days_since_last_event", "Days since last activity", "days", None, "lower",
             "days between the last event and the snapshot (none in 180 days: 181)"),
        )),
    ]  # fmt: skip


FAMILY = register(
    FeatureFamily(
        name="frequency",
        words="usage frequency",
        play="Re-engagement call: review goals and usage with the main users",
        declare=declare,
        zero_when_absent=("events_", "user_days_", "active_days_"),
    )
)
