"""The activities table (what the CS team did) as data and as the ``activities`` family.

A hand-written world of three accounts, each with an open term ending 2025-01-01, scored on
2024-12-02 00:00 UTC. An activity's "age" is the number of days before that instant; a
window of W days holds the ages in (0, W]. The last event (2025-01-15) puts the end of the
data at 2025-01-16, so activities after the snapshot are valid rows that must not count.

- B1: 2024-12-02 00:00 (age 0: at the snapshot, not before it), 2024-11-02 00:00 (age 30
  exactly: in 30 d), 2024-11-01 23:59:59 (30 d + 1 s: 90 d only), 2024-09-03 00:00 (age 90
  exactly: Sep 3 -> Oct 3 is 30 days, -> Nov 3 31, -> Dec 2 29), 2024-09-02 12:00 (90.5:
  neither), 2024-12-20 (after).
- B2: two activities at 2024-11-30 18:00 (age 1.25), one of them an unknown play (kept: a
  touch is a touch), and 2024-06-01 (age 184: neither).
- B3: only 2024-12-10, after the snapshot: never touched before it.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SPARK, local_spark, write_tables

from features.activities import normal_play, play_keys
from features.catalog import families
from features.config import DataConfig, FeatureConfig, LabelConfig
from features.errors import Problem
from features.read import connect, read_data
from features.rules import RULES, contract_rules
from features.scoring_set import ScoringSet, build_scoring_set
from features.validate import CleanData, load, validate

AS_OF = date(2024, 12, 2)
LABELS, FEATURES = LabelConfig(), FeatureConfig(top_events=1)
FAMILY = ("touches_30d", "touches_90d", "days_since_last_touch")
#: A plays catalogue as the pipeline holds it: key -> text.
CATALOGUE = {
    "exec_sponsor": "Call the exec sponsor",
    "checkin_email": "Check-in email",
    "support": "Escalate to the support lead",
    "renewal_discount": "Offer a renewal discount",
}
#: ``data.known_plays`` as the pipeline fills it: every key and every text.
KNOWN = DataConfig(known_plays=(*CATALOGUE, *CATALOGUE.values()))


def _ts(*values: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), utc=True, format="ISO8601"))


def world() -> dict[str, pd.DataFrame]:
    ids = ["B1", "B2", "B3"]
    activities = [
        ("B1", "2024-12-02T00:00:00", "exec_sponsor", "call"),
        ("B1", "2024-11-02T00:00:00", "checkin_email", "email"),
        ("B1", "2024-11-01T23:59:59", "Check-in email", "email"),
        ("B1", "2024-09-03T00:00:00", "SUPPORT", "meeting"),
        ("B1", "2024-09-02T12:00:00", "support", "meeting"),
        ("B1", "2024-12-20T00:00:00", "exec_sponsor", "call"),
        ("B2", "2024-11-30T18:00:00", " Renewal_Discount ", "call"),
        ("B2", "2024-11-30T18:00:00", "coffee chat", "meeting"),
        ("B2", "2024-06-01T00:00:00", "checkin_email", "email"),
        ("B3", "2024-12-10T00:00:00", "exec_sponsor", "call"),
    ]
    return {
        "accounts": pd.DataFrame(
            {"account_id": ids, "created_at": _ts(*["2023-01-01"] * 3), "segment": "SMB"}
        ),
        "contracts": pd.DataFrame(
            {
                "contract_id": ["K1", "K2", "K3"],
                "account_id": ids,
                "start_date": pd.to_datetime(["2024-01-01"] * 3).date,
                "end_date": pd.to_datetime(["2025-01-01"] * 3).date,
                "arr": 1000.0,
                "outcome": pd.Series([None] * 3, dtype="string"),
            }
        ),
        "events": pd.DataFrame(
            {
                "account_id": [*ids, "B1"],
                "user_id": "u1",
                "ts": _ts(*["2024-11-15T09:00:00"] * 3, "2025-01-15T09:00:00"),
                "event": "login",
            }
        ),
        "activities": pd.DataFrame(
            {
                "account_id": [a[0] for a in activities],
                "ts": _ts(*(a[1] for a in activities)),
                "play": [a[2] for a in activities],
                "owner": "Dana",
                "channel": [a[3] for a in activities],
                # Free text that must never become a feature.
                "note": "asked about the renewal price",
            }
        ),
    }


GOLDEN = {
    # B1: ages 30 | 30 d + 1 s, 90 | 0 (at the snapshot), 90.5, after it
    "B1": {"touches_30d": 1, "touches_90d": 3, "days_since_last_touch": 30.0},
    # B2: two at age 1.25 (one of an unknown play, counted all the same) | 184
    "B2": {"touches_30d": 2, "touches_90d": 2, "days_since_last_touch": 1.25},
    # B3: nothing before the snapshot: counts 0, days since empty (as days_since_sentiment)
    "B3": {"touches_30d": 0, "touches_90d": 0, "days_since_last_touch": None},
}


def _scores(tables: CleanData | dict, as_of: date | list[date] = AS_OF) -> ScoringSet:
    t = tables.tables if isinstance(tables, CleanData) else tables
    # The model's events, given: found from the data, they would depend on the last as-of.
    return build_scoring_set(t, as_of, LABELS, FEATURES, top_events=["login"])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tables(world(), tmp_path_factory.mktemp("activities") / "data")


@pytest.fixture(scope="module")
def clean(data_dir: Path) -> CleanData:
    return load(data_dir, connect("duckdb", threads=1), KNOWN)


@pytest.fixture(scope="module")
def rows(clean: CleanData) -> pd.DataFrame:
    return _scores(clean).frame.set_index("account_id")


# ------------------------------------------------------------------ golden values


@pytest.mark.parametrize("account", sorted(GOLDEN))
@pytest.mark.parametrize("name", FAMILY)
def test_golden_touches(rows: pd.DataFrame, account: str, name: str) -> None:
    expected, got = GOLDEN[account][name], rows.loc[account, name]
    if expected is None:
        assert pd.isna(got), f"{account} {name}: expected empty, got {got}"
    else:
        assert got == pytest.approx(expected, abs=1e-9), f"{account} {name}"


def test_the_family_is_declared_once_and_reads_no_note(clean: CleanData) -> None:
    ts = _scores(clean)
    family = [f for f in ts.features if f.family == "activities"]
    assert [f.name for f in family] == list(FAMILY)
    assert {f.source for f in family} == {"activities"}
    assert {f.healthy for f in family} == {"none"}, "no monotone constraint either way"
    assert [f.window_days for f in family] == [30, 90, None]
    assert family[0].label == "CS touches (30 d)"
    assert not [c for c in ts.frame.columns if "note" in c or "owner" in c or "channel" in c]


def test_every_family_reads_in_a_sentence() -> None:
    from models.explain import FAMILY_NAMES

    assert "activities" in [f.name for f in families()]
    assert FAMILY_NAMES["activities"] == "CS touches"


# ------------------------------------------------------------------ point in time


def _perturbed(frames: dict[str, pd.DataFrame], cut: pd.Timestamp, seed: int) -> pd.DataFrame:
    """Activities with half the rows at or after ``cut`` deleted, the rest moved to random
    later instants with random plays and notes, and new rows after it, one exactly at it."""
    rng = np.random.default_rng(seed)
    a = frames["activities"]
    later = a["ts"] >= cut
    keep = ~later | (rng.random(len(a)) < 0.5)
    a = a[keep].reset_index(drop=True)
    later = a["ts"] >= cut
    n = int(later.sum())
    a.loc[later, "ts"] = cut + pd.to_timedelta(rng.integers(0, 200 * 86400, n), unit="s")
    a.loc[later, "play"] = rng.choice(["exec_sponsor", "made up", "support"], n)
    a.loc[later, "note"] = "rewritten"
    extra = pd.DataFrame(
        {
            "account_id": rng.choice(["B1", "B2", "B3"], 5),
            "ts": [cut, *(cut + pd.to_timedelta(rng.integers(1, 90 * 86400, 4), unit="s"))],
            "play": "support",
            "owner": "Eli",
            "channel": "call",
            "note": "later",
        }
    )
    return pd.concat([a, extra], ignore_index=True)


def _random_world(seed: int) -> dict[str, pd.DataFrame]:
    """The world with 60 random activities from 2024-06-01 to 2025-01-10."""
    rng = np.random.default_rng(seed)
    frames = world()
    start = pd.Timestamp("2024-06-01", tz="UTC")
    frames["activities"] = pd.DataFrame(
        {
            "account_id": rng.choice(["B1", "B2", "B3"], 60),
            "ts": start + pd.to_timedelta(rng.integers(0, 223 * 86400, 60), unit="s"),
            "play": rng.choice(list(CATALOGUE), 60),
            "owner": "Dana",
            "channel": "call",
            "note": "before",
        }
    )
    return frames


def test_activities_at_or_after_the_snapshot_move_no_feature(tmp_path: Path, seed: int) -> None:
    """For random snapshot days, rows at or after the snapshot are deleted, moved, renamed
    and added (one exactly at the snapshot): no feature of any account moves. Read without
    validation, so that the later rows reach the query."""
    frames = _random_world(seed)
    days = sorted(
        {AS_OF - timedelta(days=int(d)) for d in np.random.default_rng(seed).integers(0, 80, 3)}
    )
    base = _scores(read_data(write_tables(frames, tmp_path / "base")).tables, days).frame
    assert base[list(FAMILY[:2])].to_numpy().sum() > 0, "the comparison would prove nothing"
    for i, day in enumerate(days):
        cut = pd.Timestamp(day, tz="UTC")
        moved = {**frames, "activities": _perturbed(frames, cut, seed + i)}
        tables = read_data(write_tables(moved, tmp_path / f"moved{i}")).tables
        got = _scores(tables, day).frame
        want = base[base["as_of"] == cut].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_exact=True, obj=f"as of {day}")


def test_an_activity_at_the_snapshot_counts_from_the_next_day(tmp_path: Path) -> None:
    """B1's activity at 2024-12-02 00:00 is not before that snapshot; on 2024-12-03 it is
    1 day old and in both windows, while 2024-11-02 (now 31 days old) leaves 30 d and
    2024-09-03 (91) leaves 90 d: 30 d holds 1, 90 d holds 12-02, 11-02 and 11-01 23:59:59."""
    tables = read_data(write_tables(world(), tmp_path / "d")).tables
    later = _scores(tables, AS_OF + timedelta(days=1)).frame.set_index("account_id")
    assert later.loc["B1", list(FAMILY)].tolist() == [1, 3, 1.0]


# ------------------------------------------------------------------ validation


def _problem(problems: tuple[Problem, ...], column: str, rule: str) -> Problem:
    (found,) = [p for p in problems if (p.table, p.column, p.rule) == ("activities", column, rule)]
    return found


def _bad_world() -> dict[str, pd.DataFrame]:
    """The world plus an activity of an unknown account and one after the end of the data."""
    frames = world()
    bad = pd.DataFrame(
        {
            "account_id": ["Z9", "B2"],
            "ts": _ts("2024-10-01", "2025-03-01"),
            "play": ["support", "support"],
        }
    )
    frames["activities"] = pd.concat([frames["activities"], bad], ignore_index=True)
    return frames


def test_bad_activities_are_counted_reported_and_excluded(tmp_path: Path) -> None:
    data_dir = write_tables(_bad_world(), tmp_path / "d")
    report = validate(read_data(data_dir), KNOWN)
    assert report.ok, [p.message for p in report.hard]
    unknown = _problem(report.problems, "account_id", "known account")
    assert (unknown.severity, unknown.rows, unknown.examples) == ("soft", 1, ("account_id Z9",))
    late = _problem(report.problems, "ts", "before the end of the data")
    assert (late.severity, late.rows) == ("soft", 1)
    assert late.examples == ("account_id B2, ts 2025-03-01 00:00:00+00:00",)
    assert "end of the data, 2025-01-16" in late.message
    clean = load(data_dir, settings=KNOWN)
    kept = clean.tables["activities"].to_pyarrow().to_pandas()
    assert len(kept) == len(world()["activities"]), "the two bad rows, and only they, are gone"
    assert "Z9" not in set(kept["account_id"])
    assert kept["ts"].max() == pd.Timestamp("2024-12-20", tz="UTC")


def test_an_unknown_play_is_reported_and_kept(clean: CleanData) -> None:
    """Of the world's plays only 'coffee chat' is unknown: ' Renewal_Discount ', 'SUPPORT'
    and 'Check-in email' match a key or a text ignoring case and surrounding spaces."""
    problem = _problem(clean.report.problems, "play", "known play")
    assert (problem.severity, problem.rows, problem.examples) == ("soft", 1, ("play coffee chat",))
    assert problem.message == (
        "activities.play: 1 row name a play that is not in the plays catalogue (compared "
        "ignoring case and surrounding spaces) (play coffee chat) [rule: known play]. "
        "These rows are kept, as a touch is a touch: they count in touches_30d, touches_90d "
        "and days_since_last_touch, but cannot be matched to a play; use a key of the plays "
        "catalogue (or its text), or add the play to plays: in churn.yaml."
    )
    plays = clean.tables["activities"].play.to_pyarrow().to_pylist()
    assert "coffee chat" in plays and len(plays) == len(world()["activities"])


def test_unknown_plays_are_counted_per_row_and_shown_per_value(tmp_path: Path) -> None:
    frames = world()
    a = frames["activities"].copy()
    a.loc[[0, 1, 2], "play"] = ["qbr", "QBR", "lunch"]  # 'qbr' and 'QBR' are two values
    frames["activities"] = a
    report = validate(read_data(write_tables(frames, tmp_path / "d")), KNOWN)
    problem = _problem(report.problems, "play", "known play")
    assert problem.rows == 4  # three rows changed and coffee chat
    assert problem.examples == ("play QBR", "play coffee chat", "play lunch")


def test_without_known_plays_every_play_is_accepted(data_dir: Path) -> None:
    report = validate(read_data(data_dir))
    assert report.problems == ()
    assert contract_rules() == RULES
    assert [r.name for r in contract_rules(["x"])[len(RULES) :]] == ["known play"]


def test_a_missing_play_column_exits_2_naming_it(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.cli import main

    frames = world()
    frames["activities"] = frames["activities"].drop(columns="play")
    bad = write_tables(frames, tmp_path / "d")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["churn", "validate", "--data", str(bad)])
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), pytest.raises(SystemExit) as done:
        main()
    said = " ".join(err.getvalue().split())
    assert done.value.code == 2, said
    assert "activities.play: required column is missing" in said
    assert "add the column play (string)" in said.lower()


# ------------------------------------------------------------------ the table is optional


def test_without_activities_the_family_is_absent_and_the_rest_unchanged(
    tmp_path: Path, rows: pd.DataFrame
) -> None:
    frames = {k: v for k, v in world().items() if k != "activities"}
    ts = _scores(load(write_tables(frames, tmp_path / "d")))
    without = ts.frame.set_index("account_id")
    assert not [f for f in ts.features if f.family == "activities"]
    assert set(rows.columns) - set(without.columns) == set(FAMILY)
    pd.testing.assert_frame_equal(without, rows.drop(columns=list(FAMILY)), check_exact=True)


# ------------------------------------------------------------------ play keys


def test_play_keys_match_keys_and_texts_ignoring_case_and_spaces() -> None:
    raw = pd.Series(
        [" Exec_Sponsor ", "check-in EMAIL", "\tsupport\n", "coffee chat", None, "Support"],
        index=[10, 11, 12, 13, 14, 15],
        name="play",
    )
    got = play_keys(raw, CATALOGUE)
    expected = ["exec_sponsor", "checkin_email", "support", None, None, "support"]
    assert got.tolist() == [pd.NA if e is None else e for e in expected]
    assert got.dtype == "string" and list(got.index) == list(raw.index) and got.name == "play"


def test_a_key_wins_over_a_text_and_a_shared_text_goes_to_the_first_key() -> None:
    catalogue = {"a": "b", "b": "Shared", "c": "shared"}
    got = play_keys(pd.Series(["B", "shared "]), catalogue)
    assert got.tolist() == ["b", "b"]


def test_validation_and_play_keys_agree_on_what_matches(tmp_path: Path) -> None:
    """The engine's normal form and Python's are the same: a value is reported unknown
    exactly when play_keys finds no key for it (no-break space and tabs included)."""
    values = [" exec_sponsor", "EXEC_SPONSOR\t", "\u00a0support", "Offer a renewal discount "]
    frames = world()
    a = frames["activities"].iloc[: len(values)].copy()
    a["play"] = values
    frames["activities"] = a
    report = validate(read_data(write_tables(frames, tmp_path / "d")), KNOWN)
    unknown = play_keys(pd.Series(values), CATALOGUE).isna()
    assert unknown.tolist() == [False, False, True, False]
    problem = _problem(report.problems, "play", "known play")
    assert problem.rows == int(unknown.sum())
    assert normal_play("\u00a0support") != "support"


# ------------------------------------------------------------------ Spark


@pytest.fixture(scope="module")
def spark_clean(data_dir: Path) -> Iterator[CleanData]:
    with local_spark(2, **{"spark.sql.shuffle.partitions": "2"}) as con:
        yield load(data_dir, con, KNOWN)


def _spark(test: Callable[..., None]) -> Callable[..., None]:
    """Run ``test`` only where pyspark and Java are installed (conftest.SPARK)."""
    for mark in SPARK:
        test = mark(test)
    return test


@_spark
def test_spark_gives_the_same_touches(
    spark_clean: CleanData, clean: CleanData, rows: pd.DataFrame
) -> None:
    """Spark reads, validates and builds the family as DuckDB does (DuckDB's values are the
    golden ones above), the unknown-play rule included."""
    spark = _scores(spark_clean).frame.set_index("account_id")
    pd.testing.assert_frame_equal(
        spark[list(FAMILY)], rows[list(FAMILY)], check_exact=False, rtol=0, atol=1e-9
    )
    assert spark_clean.report.problems == clean.report.problems
