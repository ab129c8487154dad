"""The feature families, declared once: name, window, unit, description, healthy direction.

Explanations, reports, monotone constraints and the feature dictionary all read these
declarations; the queries that compute them live in :mod:`features.build`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

Family = Literal[
    "frequency",
    "breadth",
    "depth",
    "trend",
    "concentration",
    "support",
    "voice",
    "sentiment",
    "billing",
    "activities",
    "lifecycle",
    "static",
]
#: The direction in which a feature is healthy: more is better, less is better, or neither.
Healthy = Literal["higher", "lower", "none"]


@dataclass(frozen=True)
class Feature:
    """One model input, as a CSM would read it."""

    name: str
    family: Family
    label: str
    unit: str
    window_days: int | None
    healthy: Healthy
    description: str
    categorical: bool = False
    #: The table it needs; absent tables yield no such features.
    source: str = "events"

    @property
    def monotone(self) -> int:
        """LightGBM's monotone constraint sign for churn risk (-1: more of it, less risk)."""
        return {"higher": -1, "lower": 1, "none": 0}[self.healthy]


def _windowed(
    stem: str,
    family: Family,
    label: str,
    unit: str,
    healthy: Healthy,
    description: str,
    windows: Iterable[int],
    source: str = "events",
) -> list[Feature]:
    return [
        Feature(
            f"{stem}_{w}d",
            family,
            f"{label} ({w} d)",
            unit,
            w,
            healthy,
            description.format(w=w),
            source=source,
        )
        for w in windows
    ]


def catalog(
    windows: Sequence[int] = (7, 30, 90),
    top_events: Sequence[str] = (),
    static_columns: Sequence[str] = (),
    sources: Iterable[str] = (
        "events",
        "contracts",
        "tickets",
        "surveys",
        "sentiment",
        "invoices",
        "activities",
    ),
    champion_days: int = 365,
) -> tuple[Feature, ...]:
    """Every feature built for these windows, common events, account attributes and tables."""
    f: list[Feature] = []
    w = tuple(windows)
    f += _windowed(
        "events",
        "frequency",
        "Events",
        "events",
        "higher",
        "product events in the {w} days before the snapshot",
        w,
    )
    f += _windowed(
        "active_days",
        "frequency",
        "Active days",
        "days",
        "higher",
        "days with at least one event in the last {w} days",
        w,
    )
    f += _windowed(
        "user_days",
        "frequency",
        "Active user-days",
        "user-days",
        "higher",
        "sum over days of the users active that day, last {w} days",
        w,
    )
    f += [
        Feature(
            "stickiness_30d",
            "frequency",
            "Stickiness (DAU/MAU, 30 d)",
            "ratio",
            30,
            "higher",
            "average daily active users divided by monthly active users, last 30 days",
        ),
        Feature(
            "days_since_last_event",
            "frequency",
            "Days since last activity",
            "days",
            None,
            "lower",
            "days between the last event and the snapshot (none in 180 days: 181)",
        ),
    ]
    f += _windowed(
        "active_users",
        "breadth",
        "Active users",
        "users",
        "higher",
        "distinct users with an event in the last {w} days",
        w,
    )
    f += _windowed(
        "utilisation",
        "breadth",
        "Licence utilisation",
        "share of seats",
        "higher",
        "active users in the last {w} days divided by licensed seats",
        w,
        "contracts",
    )
    f += [
        Feature(
            "new_users_30d",
            "breadth",
            "New active users (30 d)",
            "users",
            30,
            "higher",
            "users active in the last 30 days who were not active in the 60 days before",
        ),
        Feature(
            "lost_users_30d",
            "breadth",
            "Lost active users (30 d)",
            "users",
            30,
            "lower",
            "users active 31-60 days ago who have had no event in the last 30 days",
        ),
    ]
    f += _windowed(
        "distinct_events",
        "depth",
        "Distinct features used",
        "features",
        "higher",
        "distinct event names used in the last {w} days",
        w,
    )
    f += _windowed(
        "key_events",
        "depth",
        "Key-feature events",
        "events",
        "higher",
        "events of the configured key features in the last {w} days",
        w,
    )
    f += _windowed(
        "key_share",
        "depth",
        "Key-feature share",
        "share of events",
        "higher",
        "key-feature events as a share of all events, last {w} days",
        w,
    )
    f += [
        Feature(
            "key_users_30d",
            "depth",
            "Key-feature users (30 d)",
            "users",
            30,
            "higher",
            "distinct users who used a key feature in the last 30 days",
        ),
    ]
    f += [
        Feature(
            f"event_{slug}_30d",
            "depth",
            f"'{e}' events (30 d)",
            "events",
            30,
            "none",
            f"count of the event '{e}' in the last 30 days (one of the most common events)",
        )
        for e, slug in zip(top_events, event_slugs(top_events), strict=True)
    ]
    f += [
        Feature(
            f"{stem}_change_30d",
            "trend",
            f"{label} trend (30 d vs prior 30 d)",
            "ratio",
            60,
            "higher",
            f"(last 30 days + 1) / (the 30 days before + 1) - 1, for {label.lower()}",
        )
        for stem, label in (
            ("events", "Events"),
            ("active_users", "Active users"),
            ("key_events", "Key-feature events"),
        )
    ]
    f += [
        Feature(
            "events_slope_90d",
            "trend",
            "Usage slope (90 d)",
            "share of weekly mean per week",
            90,
            "higher",
            "least-squares slope of weekly events over the last 13 weeks, divided by the "
            "weekly mean + 1",
        ),
        Feature(
            "top_user_share_30d",
            "concentration",
            "Top user's share of events (30 d)",
            "share of events",
            30,
            "lower",
            "share of the last 30 days' events made by the single most active user",
        ),
        Feature(
            "days_since_champion",
            "concentration",
            "Days since the champion was active",
            "days",
            champion_days,
            "lower",
            f"days since the most active user of the last {champion_days} days last had an event",
        ),
    ]
    tenure = Feature(
        "tenure_days",
        "lifecycle",
        "Tenure",
        "days",
        None,
        "higher",
        "days since the account became a customer",
        source="accounts",
    )
    if "contracts" in sources:
        f += [
            tenure,
            Feature(
                "days_to_renewal",
                "lifecycle",
                "Days to renewal",
                "days",
                None,
                "none",
                "days from the snapshot to the end of the current term",
                source="contracts",
            ),
            Feature(
                "term_number",
                "lifecycle",
                "Term number",
                "terms",
                None,
                "higher",
                "1 for the first subscription term, 2 after the first renewal, ...",
                source="contracts",
            ),
            Feature(
                "seats",
                "lifecycle",
                "Licensed seats",
                "seats",
                None,
                "none",
                "seats of the current term",
                source="contracts",
            ),
            Feature(
                "arr",
                "lifecycle",
                "ARR",
                "currency",
                None,
                "none",
                "annual recurring revenue of the current term",
                source="contracts",
            ),
            Feature(
                "arr_change_last_renewal",
                "lifecycle",
                "ARR change at last renewal",
                "ratio",
                None,
                "higher",
                "ARR of the current term / ARR of the previous term - 1 (first term: empty)",
                source="contracts",
            ),
        ]
    else:
        f.append(tenure)
    if "tickets" in sources:
        f += _windowed(
            "tickets",
            "support",
            "Tickets opened",
            "tickets",
            "lower",
            "support tickets created in the last {w} days",
            (30, 90),
            "tickets",
        )
        f += [
            Feature(
                "urgent_open",
                "support",
                "Urgent tickets open",
                "tickets",
                None,
                "lower",
                "tickets of priority urgent open at the snapshot",
                source="tickets",
            ),
            Feature(
                "high_open",
                "support",
                "High-priority tickets open",
                "tickets",
                None,
                "lower",
                "tickets of priority high open at the snapshot",
                source="tickets",
            ),
            Feature(
                "first_response_hours_90d",
                "support",
                "Median first response (90 d)",
                "hours",
                90,
                "lower",
                "median hours to first response of tickets answered in the last 90 days",
                source="tickets",
            ),
            Feature(
                "resolution_hours_90d",
                "support",
                "Median resolution time (90 d)",
                "hours",
                90,
                "lower",
                "median hours to resolution of tickets resolved in the last 90 days",
                source="tickets",
            ),
            Feature(
                "oldest_open_ticket_days",
                "support",
                "Oldest open ticket",
                "days",
                None,
                "lower",
                "age of the oldest ticket still open at the snapshot",
                source="tickets",
            ),
            Feature(
                "ticket_csat_180d",
                "support",
                "Ticket CSAT (180 d)",
                "1-5",
                180,
                "higher",
                "mean CSAT of tickets resolved in the last 180 days",
                source="tickets",
            ),
        ]
    if "surveys" in sources:
        f += [
            Feature(
                "nps_last",
                "voice",
                "Last NPS answer",
                "0-10",
                None,
                "higher",
                "the most recent NPS answer of any user (answers given in the same "
                "second are averaged)",
                source="surveys",
            ),
            Feature(
                "nps_mean_365d",
                "voice",
                "Mean NPS (365 d)",
                "0-10",
                365,
                "higher",
                "mean NPS answer over the last year",
                source="surveys",
            ),
            Feature(
                "nps_detractor_share_365d",
                "voice",
                "NPS detractors (365 d)",
                "share of answers",
                365,
                "lower",
                "share of last year's NPS answers that were 0-6",
                source="surveys",
            ),
            Feature(
                "nps_responses_365d",
                "voice",
                "NPS responses (365 d)",
                "answers",
                365,
                "higher",
                "NPS answers in the last year",
                source="surveys",
            ),
            Feature(
                "days_since_nps",
                "voice",
                "Days since last NPS answer",
                "days",
                None,
                "lower",
                "days since the last NPS answer",
                source="surveys",
            ),
            Feature(
                "csat_mean_365d",
                "voice",
                "Survey CSAT (365 d)",
                "1-5",
                365,
                "higher",
                "mean CSAT survey answer over the last year",
                source="surveys",
            ),
            Feature(
                "ces_mean_365d",
                "voice",
                "Customer effort score (365 d)",
                "1-7",
                365,
                "higher",
                "mean answer to 'the company made it easy for me' over the last year "
                "(CES 2.0 scale: 7 is easiest)",
                source="surveys",
            ),
        ]
    if "sentiment" in sources:
        f += [
            Feature(
                "sentiment_last",
                "sentiment",
                "CSM sentiment",
                "0 red, 1 yellow, 2 green",
                None,
                "higher",
                "the CSM's latest recorded sentiment (several recorded in the "
                "same second are averaged)",
                source="sentiment",
            ),
            Feature(
                "days_since_sentiment",
                "sentiment",
                "Days since CSM sentiment",
                "days",
                None,
                "none",
                "days since the CSM last recorded a sentiment",
                source="sentiment",
            ),
            Feature(
                "sentiment_change_90d",
                "sentiment",
                "CSM sentiment change (90 d)",
                "steps",
                90,
                "higher",
                "latest sentiment minus the sentiment 90 days before (in steps)",
                source="sentiment",
            ),
        ]
    if "invoices" in sources:
        f += [
            Feature(
                "invoices_overdue",
                "billing",
                "Invoices overdue",
                "invoices",
                None,
                "lower",
                "invoices past their due date and unpaid at the snapshot",
                source="invoices",
            ),
            Feature(
                "days_overdue_max",
                "billing",
                "Days overdue",
                "days",
                None,
                "lower",
                "days the most overdue unpaid invoice is past due",
                source="invoices",
            ),
            Feature(
                "late_payments_365d",
                "billing",
                "Late payments (365 d)",
                "invoices",
                365,
                "lower",
                "invoices paid after their due date in the last year",
                source="invoices",
            ),
        ]
    if "activities" in sources:
        # Healthy in neither direction: the CS team touches the accounts it worries about
        # most, so more touches go with more risk in the data while each touch is meant to
        # lower it. "none" leaves the sign to the model (no monotone constraint) and no
        # explanation calls more or fewer touches healthy.
        f += _windowed(
            "touches",
            "activities",
            "CS touches",
            "activities",
            "none",
            "activities the CS team recorded in the last {w} days (calls, emails, meetings, "
            "any play)",
            (30, 90),
            "activities",
        )
        f.append(
            Feature(
                "days_since_last_touch",
                "activities",
                "Days since last CS touch",
                "days",
                None,
                "none",
                "days since the CS team's latest recorded activity (empty when there is none)",
                source="activities",
            )
        )
    f += [
        Feature(
            c,
            "static",
            c.replace("_", " ").capitalize(),
            "category",
            None,
            "none",
            f"account attribute '{c}' from the accounts table",
            categorical=True,
            source="accounts",
        )
        for c in static_columns
    ]
    present = {*sources, "accounts", "events"}
    return tuple(x for x in f if x.source in present)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")


def event_slugs(events: Sequence[str]) -> list[str]:
    """A column-name part per event, one each: names that differ only in case or punctuation
    (``Login`` and ``login``) are different events, and each but the first gets ``_2``,
    ``_3``, ... in the order given (the most common first)."""
    out: list[str] = []
    for e in events:
        slug = base = _slug(e) or "event"
        n = 2
        while slug in out:
            slug, n = f"{base}_{n}", n + 1
        out.append(slug)
    return out


def dictionary(features: Sequence[Feature]) -> list[dict[str, object]]:
    """The feature dictionary: one record per feature, as written to CSV or JSON."""
    return [asdict(x) | {"monotone": x.monotone} for x in features]
