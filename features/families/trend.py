"""Trend: is usage rising or falling.

Computed with the other event families from the events' roll-ups (:mod:`features.windows`).
"""

from __future__ import annotations

from features.catalog import Context, Feature, FeatureFamily, register, rows


def declare(ctx: Context) -> list[Feature]:
    changes = (
        ("events", "Events"),
        ("active_users", "Active users"),
        ("key_events", "Key-feature events"),
    )
    return rows("trend", "events", (
        *((f"{stem}_change_30d", f"{label} trend (30 d vs prior 30 d)", "ratio", 60, "higher",
           f"(last 30 days + 1) / (the 30 days before + 1) - 1, for {label.lower()}")
          for stem, label in changes),
        ("events_slope_90d", "Usage slope (90 d)", "share of weekly mean per week", 90,
         "higher", "least-squares slope of weekly events over the last 13 weeks, divided by "
         "the weekly mean + 1"),
    ))  # fmt: skip


FAMILY = register(
    FeatureFamily(
        name="trend",
        words="usage trend",
        play="Usage is falling: book a health check before it becomes a churn",
        declare=declare,
    )
)
