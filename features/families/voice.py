"""Customer feedback: NPS, CSAT and CES answers from ``surveys``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from features.asof import SECONDS_PER_DAY, mark_latest, since
from features.catalog import Context, Feature, FeatureFamily, register, rows

if TYPE_CHECKING:
    import ibis.expr.types as ir


def declare(ctx: Context) -> list[Feature]:
    return rows("voice", "surveys", (
        ("nps_last", "Last NPS answer", "0-10", None, "higher",
         "the most recent NPS answer of any user (answers given in the same second are "
         "averaged)"),
        ("nps_mean_365d", "Mean NPS (365 d)", "0-10", 365, "higher",
         "mean NPS answer over the last year"),
        ("nps_detractor_share_365d", "NPS detractors (365 d)", "share of answers", 365,
         "lower", "share of last year's NPS answers that were 0-6"),
        ("nps_responses_365d", "NPS responses (365 d)", "answers", 365, "higher",
         "NPS answers in the last year"),
        ("days_since_nps", "Days since last NPS answer", "days", None, "lower",
         "days since the last NPS answer"),
        ("csat_mean_365d", "Survey CSAT (365 d)", "1-5", 365, "higher",
         "mean CSAT survey answer over the last year"),
        ("ces_mean_365d", "Customer effort score (365 d)", "1-7", 365, "higher",
         "mean answer to 'the company made it easy for me' over the last year (CES 2.0 "
         "scale: 7 is easiest)"),
    ))  # fmt: skip


def voice_features(surveys: ir.Table, snaps: ir.Table) -> ir.Table:
    """NPS, CSAT and CES answers before the snapshot."""
    j = since(surveys, "ts", snaps)
    j = mark_latest(j, nps=j.kind == "nps")
    year = j._sec >= j.as_of_sec - 365 * SECONDS_PER_DAY
    nps = j.kind == "nps"
    return j.group_by("snapshot_id").aggregate(
        nps_last=j.score.mean(where=j._latest_nps),
        nps_mean_365d=j.score.mean(where=nps & year),
        nps_detractor_share_365d=(j.score <= 6).cast("float64").mean(where=nps & year),
        nps_responses_365d=j._sec.count(where=nps & year),
        days_since_nps=(j.as_of_sec.max() - j._sec.max(where=nps)) / SECONDS_PER_DAY,
        csat_mean_365d=j.score.mean(where=(j.kind == "csat") & year),
        ces_mean_365d=j.score.mean(where=(j.kind == "ces") & year),
    )


FAMILY = register(
    FeatureFamily(
        name="voice",
        words="customer feedback",
        play="Close the loop on the feedback with the unhappy respondents",
        declare=declare,
        table="surveys",
        query=voice_features,
        zero_when_absent=("nps_responses_",),
    )
)
