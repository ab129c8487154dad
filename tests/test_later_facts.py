"""Facts known only later: account attributes, names that collide, and the end of the data.

Hand-built data on the tiny world of ``conftest.tiny_tables`` (two accounts; A1's first term
runs 2023-01-01 to 2024-01-01, A2's 2023-06-15 to 2024-06-15; the last event is on
2023-12-01), each expected value worked out in a comment.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_tables, write_tables

from features.config import DataConfig, FeatureConfig, LabelConfig
from features.errors import ContractError
from features.scoring_set import build_scoring_set
from features.training import build_training_set
from features.validate import load

LABELS = LabelConfig(within_days=400)
FEATURES = FeatureConfig(top_events=3)


def _utc(*values: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(v, tz="UTC") for v in values]


def _scores(data_dir: Path, as_of: date, settings: DataConfig | None = None) -> pd.DataFrame:
    clean = load(data_dir, settings=settings)
    frame = build_scoring_set(clean.tables, as_of, LABELS, FEATURES).frame
    return frame.set_index("account_id")


def test_a_changing_attribute_is_read_as_it_was_before_each_snapshot(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["account_history"] = pd.DataFrame(
        {
            "account_id": ["A1", "A1", "A1", "A1", "A1", "A1"],
            "column": ["tier", "tier", "plan", "plan", "employees", "employees"],
            "value": ["silver", "gold", "starter", "pro", "50", "80"],
            "valid_from": _utc(
                "2023-01-01", "2023-05-01", "2023-01-01", "2023-06-01", "2023-01-01", "2023-05-01"
            ),
        }
    )
    data = write_tables(tables, tmp_path / "d")
    # 2023-05-01 is the day gold takes effect: a snapshot sees only what came strictly before.
    may1 = _scores(data, date(2023, 5, 1))
    assert may1.loc["A1", "tier"] == "silver"
    assert may1.loc["A1", "employees"] == 50.0
    may2 = _scores(data, date(2023, 5, 2))
    assert may2.loc["A1", "tier"] == "gold"
    assert may2.loc["A1", "employees"] == 80.0
    assert may2.loc["A1", "plan"] == "starter"  # accounts says "pro": today's value, not May's
    july = _scores(data, date(2023, 7, 1))
    assert july.loc["A1", "plan"] == "pro"
    # plan has a history, so accounts' value is not read for anyone: A2 has none before July.
    assert pd.isna(july.loc["A2", "plan"])
    assert pd.isna(july.loc["A2", "tier"])


def test_a_time_attribute_becomes_days_since_it_and_is_empty_until_it_happened(
    tmp_path: Path,
) -> None:
    tables = tiny_tables()
    tables["accounts"]["onboarded_at"] = _utc("2023-02-01", "2023-08-01")
    july = _scores(write_tables(tables, tmp_path / "d"), date(2023, 7, 1))
    # A1: 2023-02-01 to 2023-07-01 is 28 + 31 + 30 + 31 + 30 = 150 days.
    assert july.loc["A1", "days_since_onboarded_at"] == 150.0
    # A2 is onboarded in August, after the snapshot: not known yet.
    assert pd.isna(july.loc["A2", "days_since_onboarded_at"])
    assert "onboarded_at" not in july.columns


def test_attributes_that_look_like_outcomes_are_reported_and_not_used(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["accounts"]["churned_at"] = [pd.NaT, pd.Timestamp("2024-06-15", tz="UTC")]
    tables["accounts"]["stage"] = ["Active", "Closed-Lost"]
    data = write_tables(tables, tmp_path / "d")
    clean = load(data)
    flagged = {p.column: p for p in clean.report.soft if p.rule == "known from created_at"}
    assert set(flagged) == {"churned_at", "stage"}
    assert "its name" in flagged["churned_at"].message
    assert "'Closed-Lost'" in flagged["stage"].message
    assert "data.keep_attributes" in flagged["stage"].message
    assert "account_history" in flagged["stage"].message
    july = build_scoring_set(clean.tables, date(2023, 7, 1), LABELS, FEATURES).frame
    assert not {"stage", "churned_at", "days_since_churned_at"} & set(july.columns)
    assert "plan" in july.columns
    kept = _scores(data, date(2023, 7, 1), DataConfig(keep_attributes=("stage",)))
    assert kept.loc["A2", "stage"] == "Closed-Lost"


def test_attribute_names_taken_by_the_training_set_are_renamed_and_say_so(
    tmp_path: Path,
) -> None:
    tables = tiny_tables()
    tables["accounts"]["seats"] = [3, 4]
    tables["accounts"]["events_30d"] = ["many", "few"]
    tables["accounts"]["tickets_tier"] = ["gold", "basic"]
    clean = load(write_tables(tables, tmp_path / "d"))
    ts = build_scoring_set(clean.tables, date(2023, 7, 1), LABELS, FEATURES)
    july = ts.frame.set_index("account_id")
    assert july.loc["A1", "account_seats"] == "3"  # an attribute: a category
    assert july.loc["A1", "account_events_30d"] == "many"
    assert july.loc["A2", "account_tickets_tier"] == "basic"
    # The contract's own columns keep their meaning: A1's term C1 has 10 seats.
    assert july.loc["A1", "utilisation_30d"] == pytest.approx(0.0)
    assert july.loc["A1", "events_30d"] == 0.0  # no event in June 2023
    described = {f.name: f.description for f in ts.features}
    assert "'seats'" in described["account_seats"]
    assert "taken" in described["account_seats"]


def test_event_names_that_differ_in_case_are_counted_apart(tmp_path: Path) -> None:
    tables = tiny_tables()
    extra = pd.DataFrame(
        {
            "account_id": ["A1", "A1", "A1"],
            "user_id": ["u1", "u1", "u2"],
            "ts": _utc("2023-06-10T10:00:00", "2023-06-11T10:00:00", "2023-06-12T10:00:00"),
            "event": ["Login", "Login", "login"],
            "value": [1.0, 1.0, 1.0],
        }
    )
    tables["events"] = pd.concat([tables["events"], extra], ignore_index=True)
    clean = load(write_tables(tables, tmp_path / "d"))
    frame = build_scoring_set(
        clean.tables, date(2023, 7, 1), LABELS, FEATURES, top_events=("login", "Login")
    ).frame.set_index("account_id")
    # In the 30 days before 2023-07-01: one 'login' (06-12) and two 'Login' (06-10, 06-11).
    assert frame.loc["A1", "event_login_30d"] == 1.0
    assert frame.loc["A1", "event_login_2_30d"] == 2.0


def _far_future_rows(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """An event and a ticket stamped 2099, as a clock bug or a placeholder date writes them."""
    out = {k: v.copy() for k, v in tables.items()}
    late = out["events"].iloc[[0]].assign(ts=_utc("2099-01-01"))
    out["events"] = pd.concat([out["events"], late], ignore_index=True)
    ticket = out["tickets"].iloc[[1]].assign(ticket_id="T9", created_at=_utc("2099-01-01"))
    ticket = ticket.assign(first_response_at=pd.NaT, resolved_at=pd.NaT)
    out["tickets"] = pd.concat([out["tickets"], ticket], ignore_index=True)
    return out


def test_one_event_in_2099_does_not_move_the_end_of_the_data(tmp_path: Path) -> None:
    clean = load(write_tables(_far_future_rows(tiny_tables()), tmp_path / "d"))
    report = clean.report
    # The last real event is on 2023-12-01; 2099 follows 75 years of silence.
    assert report.end is not None and report.end.day == date(2023, 12, 2)
    assert "silence" in report.end.how
    late = {p.table: p for p in report.soft if p.rule == "before the end of the data"}
    assert set(late) == {"events", "tickets"}
    assert late["events"].rows == 1 and late["tickets"].rows == 1
    assert "2023-12-02" in late["tickets"].message and "data.export_date" in late["tickets"].message
    assert "T9" in late["tickets"].message
    assert clean.tables["events"].count().execute() == 5
    assert clean.tables["tickets"].count().execute() == 2


def test_the_far_future_changes_no_training_row(sim_dir: Path, tmp_path: Path) -> None:
    """Inactivity labels read the silence after each snapshot: a 2099 event must not turn
    the end of the data into 2099 and every account into a churner."""
    frames = {
        name: pd.read_parquet(sim_dir / f"{name}.parquet")
        for name in ("accounts", "contracts", "events", "tickets")
    }
    labels = LabelConfig(label="inactivity")
    ours = build_training_set(load(write_tables(frames, tmp_path / "a")).tables, labels, FEATURES)
    shifted = load(write_tables(_far_future_rows(frames), tmp_path / "b")).tables
    theirs = build_training_set(shifted, labels, FEATURES)
    assert len(ours.frame) > 500
    pd.testing.assert_frame_equal(ours.frame, theirs.frame)


def test_the_export_date_is_the_end_of_the_data(tmp_path: Path) -> None:
    data = write_tables(tiny_tables(), tmp_path / "d")
    clean = load(data, settings=DataConfig(export_date=date(2023, 7, 2)))
    assert clean.report.end is not None and clean.report.end.day == date(2023, 7, 2)
    assert "data.export_date" in clean.report.end.how
    late = {p.table: p.rows for p in clean.report.soft if p.rule == "before the end of the data"}
    # On or after 2023-07-02: the events of 07-03 and 12-01, the ticket of 08-01, the answer
    # and the sentiment of 09-01.
    assert late == {"events": 2, "tickets": 1, "surveys": 1, "sentiment": 1}


def test_an_as_of_after_the_end_of_the_data_is_refused_unless_asked(tmp_path: Path) -> None:
    from pipelines.config import load_config
    from pipelines.stages import build_features

    data = write_tables(tiny_tables(), tmp_path / "d")
    cfg = load_config(None, {"labels": {"within_days": 400}})
    out = tmp_path / "f.parquet"
    with pytest.raises(ContractError) as refused:
        build_features(data, date(2024, 1, 1), out, cfg)
    # The end is 2023-12-02: 30 days of made-up silence before 2024-01-01.
    assert "--as-of 2024-01-01 is after the end of the data, 2023-12-02" in str(refused.value)
    assert "30 days between" in str(refused.value) and "--after-end" in str(refused.value)
    assert not out.exists()
    ts = build_features(data, date(2024, 1, 1), out, cfg, after_end=True)
    assert list(ts.frame["account_id"]) == ["A2"]  # C2 starts on 2024-01-01: not yet known
    assert len(build_features(data, date(2023, 12, 2), out, cfg).frame) == 2


def test_overdue_renewals_are_counted_by_validation(tmp_path: Path) -> None:
    data = write_tables(tiny_tables(), tmp_path / "d")
    assert not any("Overdue" in n for n in load(data).report.notes)
    # With the export taken on 2025-02-01, A1's term C2 ended on 2025-01-01 with no outcome.
    late = load(data, settings=DataConfig(export_date=date(2025, 2, 1))).report.notes
    overdue = [n for n in late if n.startswith("Overdue renewals")]
    assert overdue == [
        "Overdue renewals: 1 contract term ended without a recorded outcome and no later "
        "term (C2); scoring scores them and flags them overdue. Record the outcomes in "
        "contracts.outcome when known."
    ]


def _end_of(counts: dict[str, int], today: date = date(2030, 1, 1)) -> date:
    """The end of the data of events with ``counts[day]`` events on each day."""
    import ibis

    from features.data_end import derive_end
    from features.read import connect

    ibis.set_backend(connect("duckdb", threads=1))
    ts = [pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=9) for day, n in counts.items()
          for _ in range(n)]  # fmt: skip
    return derive_end(ibis.memtable(pd.DataFrame({"ts": ts})), None, today).day


def test_the_end_of_the_data_follows_the_events_not_their_outliers() -> None:
    days = {str(d.date()): 50 for d in pd.date_range("2024-01-01", "2024-04-09")}  # 5,000 events
    assert _end_of(days) == date(2024, 4, 10)
    # One event 75 years later: 1 of 5,001 rows (< 1%) after a silence of > 30 days: cut.
    assert _end_of(days | {"2099-01-01": 1}) == date(2024, 4, 10)
    # Two placeholder dates close together are cut as one tail.
    assert _end_of(days | {"2099-01-01": 1, "2099-01-02": 1}) == date(2024, 4, 10)
    # A sparse tail with no silence longer than 30 days is data: 3 events 20 days apart.
    tail = {"2024-04-29": 1, "2024-05-19": 1, "2024-06-08": 1}
    assert _end_of(days | tail) == date(2024, 6, 9)
    # A silence of 40 days followed by 5% of the events is a pause, not an outlier.
    assert _end_of(days | {"2024-05-20": 260}) == date(2024, 5, 21)
    # Nothing after tomorrow is data, however many rows: the clock says so.
    assert _end_of(days | {"2024-04-20": 400}, today=date(2024, 4, 15)) == date(2024, 4, 10)
