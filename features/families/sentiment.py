"""CSM sentiment: the latest red / yellow / green the CSM recorded, its age and change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from features.asof import SECONDS_PER_DAY, mark_latest, since
from features.catalog import Context, Feature, FeatureFamily, register, rows

SENTIMENT_SCORE = {"red": 0, "yellow": 1, "green": 2}

if TYPE_CHECKING:
    import ibis.expr.types as ir


def declare(ctx: Context) -> list[Feature]:
    return rows("sentiment", "sentiment", (
        ("sentiment_last", "CSM sentiment", "0 red, 1 yellow, 2 green", None, "higher",
         "the CSM's latest recorded sentiment (several recorded in the same second are "
         "averaged)"),
        ("days_since_sentiment", "Days since CSM sentiment", "days", None, "none",
         "days since the CSM last recorded a sentiment"),
        ("sentiment_change_90d", "CSM sentiment change (90 d)", "steps", 90, "higher",
         "latest sentiment minus the sentiment 90 days before (in steps)"),
    ))  # fmt: skip


def sentiment_features(sentiment: ir.Table, snaps: ir.Table) -> ir.Table:
    """The CSM's latest sentiment, its age, and its change over 90 days."""
    import ibis  # here, not above: a served model reads the declaration without Ibis

    j = since(sentiment, "ts", snaps)
    j = mark_latest(j, last=ibis.literal(True), old=j._sec < j.as_of_sec - 90 * SECONDS_PER_DAY)
    score = j.sentiment.cases(*SENTIMENT_SCORE.items()).cast("float64")
    s = j.group_by("snapshot_id").aggregate(
        sentiment_last=score.mean(where=j._latest_last),
        _old=score.mean(where=j._latest_old),
        _last_sec=j._sec.max(),
        _as_of_sec=j.as_of_sec.max(),
    )
    return s.select(
        "snapshot_id",
        "sentiment_last",
        days_since_sentiment=(s._as_of_sec - s._last_sec) / SECONDS_PER_DAY,
        sentiment_change_90d=s.sentiment_last - s._old,
    )


FAMILY = register(
    FeatureFamily(
        name="sentiment",
        words="CSM sentiment",
        play="Account review with the CSM's manager: the CSM flags risk",
        declare=declare,
        table="sentiment",
        query=sentiment_features,
    )
)
