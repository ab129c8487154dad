"""Golden feature values: one hand-written account, every feature computed by hand below.

The snapshot is 2024-12-02 00:00 UTC (30 days before the renewal on 2025-01-01). An event
"age" is the number of days before the snapshot: 2024-12-01 is age 1, 2024-11-28 age 4,
2024-11-20 age 12, 2024-10-20 age 43 (11 + 30 + 2), 2024-10-15 age 48, 2024-09-25 age 68
(5 + 31 + 30 + 2). A window of W days holds ages 1..W. Rows on or after the snapshot
(u3's login on 2024-12-02 09:00, ticket T4, the NPS of 2024-12-10, the red sentiment of
2024-12-02, the activity at 2024-12-02 00:00) must not count.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from conftest import write_tables

from features.config import FeatureConfig, LabelConfig
from features.training import build_training_set
from features.validate import load


def _ts(*values: str | None) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), utc=True, format="ISO8601"))


def golden_tables() -> dict[str, pd.DataFrame]:
    events = [
        ("u1", "2024-12-01T10:00:00", "login"),
        ("u1", "2024-12-01T11:00:00", "report_exported"),
        ("u1", "2024-11-20T09:00:00", "login"),
        ("u1", "2024-10-15T09:00:00", "login"),
        ("u2", "2024-11-28T09:00:00", "login"),
        ("u2", "2024-09-25T09:00:00", "workflow_created"),
        ("u3", "2024-12-02T09:00:00", "login"),  # on the snapshot day: not before it
        ("u4", "2024-10-20T09:00:00", "login"),
    ]
    return {
        "accounts": pd.DataFrame(
            {
                "account_id": ["G1"],
                "created_at": _ts("2023-01-01"),
                "segment": ["SMB"],
                "plan": ["pro"],
            }
        ),
        "contracts": pd.DataFrame(
            {
                "contract_id": ["C0", "C1"],
                "account_id": ["G1", "G1"],
                "start_date": pd.to_datetime(["2023-01-01", "2024-01-01"]).date,
                "end_date": pd.to_datetime(["2024-01-01", "2025-01-01"]).date,
                "arr": [8000.0, 10000.0],
                "seats": [8, 10],
                "outcome": ["renewed", "churned"],
            }
        ),
        "events": pd.DataFrame(
            {
                "account_id": "G1",
                "user_id": [e[0] for e in events],
                "ts": _ts(*(e[1] for e in events)),
                "event": [e[2] for e in events],
                "value": 1.0,
            }
        ),
        "tickets": pd.DataFrame(
            {
                "ticket_id": ["T1", "T2", "T3", "T4"],
                "account_id": "G1",
                "created_at": _ts("2024-11-01", "2024-10-01", "2024-11-30", "2024-12-05"),
                "first_response_at": _ts(
                    "2024-11-01T06:00:00", "2024-10-02", "2024-12-03", "2024-12-05T01:00:00"
                ),
                "resolved_at": _ts("2024-12-05", "2024-10-03", None, None),
                "priority": ["urgent", "high", "normal", "urgent"],
                "csat": pd.array([None, 2, None, None], dtype="Int64"),
            }
        ),
        "surveys": pd.DataFrame(
            {
                "account_id": "G1",
                "user_id": ["u1", "u2", "u1", "u2", "u1"],
                "ts": _ts("2024-06-01", "2024-11-15", "2024-12-10", "2024-08-01", "2023-10-01"),
                "kind": ["nps", "nps", "nps", "csat", "ces"],
                "score": [9.0, 3.0, 10.0, 4.0, 6.0],
            }
        ),
        "sentiment": pd.DataFrame(
            {
                "account_id": "G1",
                "ts": _ts("2024-08-01", "2024-10-01", "2024-12-02"),
                "sentiment": ["green", "yellow", "red"],
            }
        ),
        "invoices": pd.DataFrame(
            {
                "invoice_id": ["I1", "I2", "I3"],
                "account_id": "G1",
                "issued_at": _ts("2024-01-01", "2024-10-01", "2024-11-01"),
                "due_at": _ts("2024-01-31", "2024-10-31", "2024-12-01"),
                "paid_at": _ts("2024-02-15", "2024-12-10", None),
                "amount": [8000.0, 2500.0, 2500.0],
            }
        ),
        "activities": pd.DataFrame(
            {
                "account_id": "G1",
                "ts": _ts("2024-12-02", "2024-11-02", "2024-09-10T15:00:00", "2024-08-01"),
                "play": ["exec_sponsor", "checkin_email", "support", "checkin_email"],
            }
        ),
    }


GOLDEN = {
    # frequency: ages 1, 1, 4 in 7 d; + 12 in 30 d; + 43, 48, 68 in 90 d
    "events_7d": 3,
    "events_30d": 4,
    "events_90d": 7,
    "active_days_7d": 2,
    "active_days_30d": 3,
    "active_days_90d": 6,
    "user_days_7d": 2,
    "user_days_30d": 3,
    "user_days_90d": 6,
    "stickiness_30d": 3 / (30 * 2),  # user-days / (30 days x active users)
    "days_since_last_event": 1,
    # breadth: u1, u2 active in 30 d; u4 too in 90 d; 10 seats
    "active_users_7d": 2,
    "active_users_30d": 2,
    "active_users_90d": 3,
    "utilisation_7d": 0.2,
    "utilisation_30d": 0.2,
    "utilisation_90d": 0.3,
    "new_users_30d": 0,  # u1 (age 48) and u2 (age 68) were active in the 60 days before
    "lost_users_30d": 1,  # u4: active at age 43, not in the last 30 days
    # depth: key events report_exported (age 1) and workflow_created (age 68)
    "distinct_events_7d": 2,
    "distinct_events_30d": 2,
    "distinct_events_90d": 3,
    "key_events_7d": 1,
    "key_events_30d": 1,
    "key_events_90d": 2,
    "key_share_7d": 1 / 3,
    "key_share_30d": 1 / 4,
    "key_share_90d": 2 / 7,
    "key_users_30d": 1,
    "event_login_30d": 3,  # u1 age 1, u2 age 4, u1 age 12
    # trends: last 30 d vs ages 31-60 (u4 age 43, u1 age 48)
    "events_change_30d": (4 + 1) / (2 + 1) - 1,
    "active_users_change_30d": (2 + 1) / (2 + 1) - 1,
    "key_events_change_30d": (1 + 1) / (0 + 1) - 1,
    # slope: week index (age - 1) // 7 gives weights 6 - index: three events at 6, one at 5,
    # two at 0, one at -3 -> 20 / 182; weekly mean 7 / 13 -> / (7 / 13 + 1)
    "events_slope_90d": (20 / 182) / (7 / 13 + 1),
    "top_user_share_30d": 3 / 4,  # u1 made 3 of the 4 events
    "days_since_champion": 1,  # u1 has most events in 365 d (4), last at age 1
    # support: T1 urgent, open at the snapshot (resolved after it), age 31 days; T2 high,
    # answered in 24 h, resolved in 48 h, CSAT 2; T3 created age 2, its answer comes later
    "tickets_30d": 1,
    "tickets_90d": 3,
    "urgent_open": 1,
    "high_open": 0,
    "first_response_hours_90d": (6 + 24) / 2,
    "resolution_hours_90d": 48,
    "oldest_open_ticket_days": 31,
    "ticket_csat_180d": 2,
    # voice: NPS 9 (2024-06-01) and 3 (2024-11-15, 17 days before); CES is 428 days old
    "nps_last": 3,
    "nps_mean_365d": 6,
    "nps_detractor_share_365d": 0.5,
    "nps_responses_365d": 2,
    "days_since_nps": 17,
    "csat_mean_365d": 4,
    "ces_mean_365d": None,
    # sentiment: yellow (1) on 2024-10-01, 62 days before; green (2) 90+ days before
    "sentiment_last": 1,
    "days_since_sentiment": 62,
    "sentiment_change_90d": -1,
    # billing: I2 due 2024-10-31, paid after the snapshot -> 32 days overdue; I3 1 day;
    # I1 paid 15 days late within the year
    "invoices_overdue": 2,
    "days_overdue_max": 32,
    "late_payments_365d": 1,
    # activities: at the snapshot (not before it), 30 days before (in 30 d), 2024-09-10
    # 15:00 (82.375 days: 90 d only), 2024-08-01 (123 days: neither)
    "touches_30d": 1,
    "touches_90d": 2,
    "days_since_last_touch": 30,
    # lifecycle: 365 + 336 days since 2023-01-01; second term, ARR 8000 -> 10000
    "tenure_days": 701,
    "days_to_renewal": 30,
    "term_number": 2,
    "seats": 10,
    "arr": 10000,
    "arr_change_last_renewal": 0.25,
}


@pytest.fixture(scope="module")
def golden_row(tmp_path_factory: pytest.TempPathFactory) -> pd.Series:
    data = write_tables(golden_tables(), tmp_path_factory.mktemp("golden") / "data")
    clean = load(data)
    ts = build_training_set(
        clean.tables,
        LabelConfig(lead_days=(30,)),
        FeatureConfig(top_events=1),
        cutoff=date(2025, 6, 1),
    )
    frame = ts.frame
    assert list(frame["contract_id"]) == ["C0", "C1"], "one snapshot per decided term"
    return frame.set_index("contract_id").loc["C1"]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_feature(golden_row: pd.Series, name: str) -> None:
    expected = GOLDEN[name]
    got = golden_row[name]
    if expected is None:
        assert pd.isna(got), f"{name}: expected missing, got {got}"
    else:
        assert got == pytest.approx(expected, abs=1e-9), name


def test_golden_row_has_every_feature(golden_row: pd.Series) -> None:
    from features.catalog import catalog

    names = {f.name for f in catalog(top_events=["login"], static_columns=["segment", "plan"])}
    assert names - set(GOLDEN) == {"segment", "plan"}, "every numeric feature has a golden value"


def test_golden_label_and_cohorts(golden_row: pd.Series) -> None:
    assert golden_row["label"] == 1  # C1 churned
    assert golden_row["expansion"] == 0
    assert golden_row["as_of"] == pd.Timestamp("2024-12-02", tz="UTC")
    assert golden_row["label_known_at"] == pd.Timestamp("2025-01-01", tz="UTC")
    assert golden_row["lead_days"] == 30
    assert golden_row["cohort_month"] == "2024-12"
    assert golden_row["tenure_bucket"] == "1-2y"
    assert golden_row["signup_quarter"] == "2023Q1"
    assert golden_row["plan"] == "pro" and golden_row["segment"] == "SMB"


def test_top_events_are_the_most_common(tmp_path: Path) -> None:
    clean = load(write_tables(golden_tables(), tmp_path / "d"))
    ts = build_training_set(
        clean.tables,
        LabelConfig(lead_days=(30,)),
        FeatureConfig(top_events=2),
        cutoff=date(2025, 6, 1),
    )
    # login: 6 events; report_exported and workflow_created 1 each -> tie broken by name.
    assert ts.top_events == ("login", "report_exported")


@pytest.mark.parametrize(("champion_days", "expected"), [(365, 215), (180, 1)])
def test_champion_who_left_within_the_look_back(
    tmp_path: Path, champion_days: int, expected: int
) -> None:
    """u5 made 5 events on 2024-05-01 (age 215) and none since; u1 made 4 in the last year.

    Over 365 days u5 is the champion, silent for 215 days; over 180 days u5 is not seen
    and u1 (last event at age 1) is the champion.
    """
    assert (date(2024, 12, 2) - date(2024, 5, 1)).days == 215
    row = _champion_row(tmp_path, "u5", "2024-05-01", champion_days)
    assert row["days_since_champion"] == expected
    assert row["top_user_share_30d"] == 3 / 4  # u5's events are older than 30 days


@pytest.mark.parametrize(("champion_days", "expected"), [(30, 7), (5, 1)])
def test_champion_over_fewer_days_than_the_share(
    tmp_path: Path, champion_days: int, expected: int
) -> None:
    """u6 made 5 events on 2024-11-25 (age 7); in the 30 days before 2024-12-02, u1 made 3
    (the last two at age 1) and u2 one (age 4).

    Over 30 days u6 is the champion; over 5 days (2024-11-27 to 12-01) u6 is not seen and
    u1, with 2 events against u2's 1, is. The top user's share of 30 days stays u6's:
    5 of 3 + 1 + 5 = 9 events, whatever the champion's look-back.
    """
    row = _champion_row(tmp_path, "u6", "2024-11-25", champion_days)
    assert row["days_since_champion"] == expected
    assert row["top_user_share_30d"] == 5 / 9


def with_champion(user: str, day: str) -> dict[str, pd.DataFrame]:
    """The golden world plus 5 logins of ``user`` on ``day`` (00:00 to 04:00 UTC)."""
    tables = golden_tables()
    planted = pd.DataFrame(
        {
            "account_id": "G1",
            "user_id": user,
            "ts": _ts(*[f"{day}T0{h}:00:00" for h in range(5)]),
            "event": "login",
            "value": 1.0,
        }
    )
    tables["events"] = pd.concat([tables["events"], planted], ignore_index=True)
    return tables


def _champion_row(tmp_path: Path, user: str, day: str, champion_days: int) -> pd.Series:
    """C1's row (as of 2024-12-02) of the golden world plus 5 logins of ``user`` on ``day``."""
    clean = load(write_tables(with_champion(user, day), tmp_path / "d"))
    ts = build_training_set(
        clean.tables,
        LabelConfig(lead_days=(30,)),
        FeatureConfig(top_events=1, champion_days=champion_days),
        cutoff=date(2025, 6, 1),
    )
    return ts.frame.set_index("contract_id").loc["C1"]
