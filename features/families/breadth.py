"""Breadth: how many of the licensed users use the product.

Computed with the other event families from the events' user-day roll-ups
(:mod:`features.windows`); utilisation needs the seats of ``contracts``.
"""

from __future__ import annotations

from features.catalog import Context, Feature, FeatureFamily, register, rows, windowed


def declare(ctx: Context) -> list[Feature]:
    return [
        *windowed("active_users", "breadth", "Active users", "users", "higher",
                  "distinct users with an event in the last {w} days", ctx.windows),
        *windowed("utilisation", "breadth", "Licence utilisation", "share of seats", "higher",
                  "active users in the last {w} days divided by licensed seats", ctx.windows,
                  "contracts"),
        *rows("breadth", "events", (
            ("new_users_30d", "New active users (30 d)", "users", 30, "higher",
             "users active in the last 30 days who were not active in the 60 days before"),
            ("lost_users_30d", "Lost active users (30 d)", "users", 30, "lower",
             "users active 31-60 days ago who have had no event in the last 30 days"),
        )),
    ]  # fmt: skip


FAMILY = register(
    FeatureFamily(
        name="breadth",
        words="breadth of adoption",
        play="Seat-activation campaign: invite and onboard the unused seats",
        declare=declare,
        zero_when_absent=("active_users_", "new_users_", "lost_users_"),
    )
)
