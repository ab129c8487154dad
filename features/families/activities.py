"""CS touches: the activities the CS team recorded (calls, emails, meetings, any play).

Healthy in neither direction: the CS team touches the accounts it worries about most, so
more touches go with more risk in the data while each touch is meant to lower it. "none"
leaves the sign to the model (no monotone constraint) and no explanation calls more or
fewer touches healthy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from features.asof import SECONDS_PER_DAY, since
from features.catalog import Context, Feature, FeatureFamily, register, rows, windowed

if TYPE_CHECKING:
    import ibis.expr.types as ir


def declare(ctx: Context) -> list[Feature]:
    return [
        *windowed("touches", "activities", "CS touches", "activities", "none",
                  "activities the CS team recorded in the last {w} days (calls, emails, "
                  "meetings, any play)", (30, 90), "activities"),
        *rows("activities", "activities", (
            ("days_since_last_touch", "Days since last CS touch", "days", None, "none",
             "days since the CS team's latest recorded activity (empty when there is none)"),
        )),
    ]  # fmt: skip


def activity_features(activities: ir.Table, snaps: ir.Table) -> ir.Table:
    """The CS team's touches: activities in the last 30 and 90 days, days since the last.

    Every activity row is a touch, whatever its play or channel (an unknown play too);
    ``note`` is free text and never read. A window of W days holds the rows less than or
    exactly W days before the snapshot (as the ticket counts).
    """
    j = since(activities, "ts", snaps)
    age_days = (j.as_of_sec - j._sec) / SECONDS_PER_DAY
    return j.group_by("snapshot_id").aggregate(
        touches_30d=j._sec.count(where=age_days <= 30),
        touches_90d=j._sec.count(where=age_days <= 90),
        # Never touched: empty, as days_since_sentiment (no number of days says "never").
        days_since_last_touch=(j.as_of_sec.max() - j._sec.max()) / SECONDS_PER_DAY,
    )


FAMILY = register(
    FeatureFamily(
        name="activities",
        words="CS touches",
        play="No recent CS touch: schedule a check-in call with the main users",
        declare=declare,
        table="activities",
        query=activity_features,
        zero_when_absent=("touches_",),
    )
)
