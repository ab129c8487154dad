"""Depth: use of the key features, and of the most common events one by one.

Computed with the other event families from the events' event-day roll-ups
(:mod:`features.windows`).
"""

from __future__ import annotations

from features.catalog import (
    Context,
    Feature,
    FeatureFamily,
    event_slugs,
    register,
    rows,
    windowed,
)


def declare(ctx: Context) -> list[Feature]:
    return [
        *windowed("distinct_events", "depth", "Distinct features used", "features", "higher",
                  "distinct event names used in the last {w} days", ctx.windows),
        *windowed("key_events", "depth", "Key-feature events", "events", "higher",
                  "events of the configured key features in the last {w} days", ctx.windows),
        *windowed("key_share", "depth", "Key-feature share", "share of events", "higher",
                  "key-feature events as a share of all events, last {w} days", ctx.windows),
        *rows("depth", "events", (
            ("key_users_30d", "Key-feature users (30 d)", "users", 30, "higher",
             "distinct users who used a key feature in the last 30 days"),
        )),
        *rows("depth", "events", (
            (f"event_{slug}_30d", f"'{e}' events (30 d)", "events", 30, "none",
             f"count of the event '{e}' in the last 30 days (one of the most common events)")
            for e, slug in zip(ctx.top_events, event_slugs(ctx.top_events), strict=True)
        )),
    ]  # fmt: skip


FAMILY = register(
    FeatureFamily(
        name="depth",
        words="depth of key-feature use",
        play="Key-feature training: run a workshop on the workflows they do not use yet",
        declare=declare,
        zero_when_absent=("key_events_", "distinct_events_", "event_", "key_users_"),
    )
)
