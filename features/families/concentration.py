"""Concentration: does the account depend on one user.

Computed with the other event families from the events' user-day roll-ups
(:mod:`features.windows`).
"""

from __future__ import annotations

from features.catalog import Context, Feature, FeatureFamily, register, rows


def declare(ctx: Context) -> list[Feature]:
    return rows("concentration", "events", (
        ("top_user_share_30d", "Top user's share of events (30 d)", "share of events", 30,
         "lower", "share of the last 30 days' events made by the single most active user"),
        ("days_since_champion", "Days since the champion was active", "days",
         ctx.champion_days, "lower", "days since the most active user of the last "
         f"{ctx.champion_days} days last had an event"),
    ))  # fmt: skip


FAMILY = register(
    FeatureFamily(
        name="concentration",
        words="dependence on one user",
        play="Multi-thread the relationship: the account depends on one user",
        declare=declare,
    )
)
