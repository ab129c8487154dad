"""Reading and validating the data contract: every rule has a bad-input test."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pandera.ibis as pa
import pyarrow
import pyarrow.parquet as pq
import pytest
from conftest import tiny_tables, write_tables

from features.contract import TABLES, ColumnStats
from features.errors import ContractError
from features.parquet_stats import parquet_stats
from features.read import connect, read_data, read_source
from features.rules import RULES
from features.validate import load, schema_for, validate

Frames = dict[str, pd.DataFrame]


def _set(table: str, column: str, row: int, value: object) -> Callable[[Frames], None]:
    def mutate(t: Frames) -> None:
        frame = t[table].copy()
        if value is None:
            frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        t[table] = frame

    return mutate


def _duplicate_first_key(table: str) -> Callable[[Frames], None]:
    def mutate(t: Frames) -> None:
        frame = t[table].copy()
        key = frame.columns[0]
        frame.loc[1, key] = frame.loc[0, key]
        t[table] = frame

    return mutate


def _history(column: str, value: object) -> Callable[[Frames], None]:
    """Add a valid account_history, then set one of its cells."""

    def mutate(t: Frames) -> None:
        t["account_history"] = pd.DataFrame(
            {
                "account_id": ["A1", "A1"],
                "column": ["tier", "tier"],
                "value": ["silver", "gold"],
                "valid_from": pd.to_datetime(["2023-01-01", "2023-05-01"], utc=True),
            }
        )
        _set("account_history", column, 1, value)(t)

    return mutate


def _activities(column: str, value: object) -> Callable[[Frames], None]:
    """Add a valid activities table, then set one of its cells."""

    def mutate(t: Frames) -> None:
        t["activities"] = pd.DataFrame(
            {
                "account_id": ["A1", "A2"],
                "ts": pd.to_datetime(["2023-04-01", "2023-08-01"], utc=True),
                "play": ["checkin_email", "exec_sponsor"],
                "channel": ["email", "call"],
                "note": ["sent the QBR deck", None],
            }
        )
        _set("activities", column, 1, value)(t)

    return mutate


def _swap_dates(t: Frames) -> None:
    c = t["contracts"].copy()
    c.loc[0, ["start_date", "end_date"]] = [c.loc[0, "end_date"], c.loc[0, "start_date"]]
    t["contracts"] = c


# (table, column, rule name, severity, how to break a valid data set). Every rule of the
# contract appears here; test_every_rule_is_tested fails when a new rule has no case.
CASES: list[tuple[str, str, str, str, Callable[[Frames], None]]] = [
    ("accounts", "account_id", "not empty", "hard", _set("accounts", "account_id", 1, None)),
    ("accounts", "created_at", "not empty", "hard", _set("accounts", "created_at", 1, pd.NaT)),
    ("accounts", "account_id", "unique", "hard", _duplicate_first_key("accounts")),
    ("account_history", "account_id", "not empty", "hard", _history("account_id", None)),
    ("account_history", "column", "not empty", "hard", _history("column", None)),
    ("account_history", "value", "not empty", "hard", _history("value", None)),
    ("account_history", "valid_from", "not empty", "hard", _history("valid_from", pd.NaT)),
    ("account_history", "account_id", "known account", "soft", _history("account_id", "Z9")),
    ("contracts", "contract_id", "not empty", "hard", _set("contracts", "contract_id", 2, None)),
    ("contracts", "account_id", "not empty", "hard", _set("contracts", "account_id", 2, None)),
    ("contracts", "start_date", "not empty", "hard", _set("contracts", "start_date", 2, None)),
    ("contracts", "end_date", "not empty", "hard", _set("contracts", "end_date", 2, None)),
    ("contracts", "arr", "not empty", "hard", _set("contracts", "arr", 2, None)),
    ("contracts", "contract_id", "unique", "hard", _duplicate_first_key("contracts")),
    ("contracts", "account_id", "known account", "soft", _set("contracts", "account_id", 2, "Z9")),
    ("contracts", "end_date", "after start_date", "hard", _swap_dates),
    ("contracts", "arr", ">= 0", "hard", _set("contracts", "arr", 0, -5.0)),
    ("contracts", "seats", ">= 0", "hard", _set("contracts", "seats", 0, -1)),
    ("contracts", "outcome", "known outcome", "hard", _set("contracts", "outcome", 0, "won")),
    ("events", "account_id", "not empty", "hard", _set("events", "account_id", 0, None)),
    ("events", "user_id", "not empty", "soft", _set("events", "user_id", 0, None)),
    ("events", "ts", "not empty", "hard", _set("events", "ts", 0, pd.NaT)),
    ("events", "event", "not empty", "hard", _set("events", "event", 0, None)),
    ("events", "account_id", "known account", "soft", _set("events", "account_id", 0, "Z9")),
    ("events", "value", ">= 0", "soft", _set("events", "value", 0, -1.0)),
    ("tickets", "ticket_id", "not empty", "hard", _set("tickets", "ticket_id", 0, None)),
    ("tickets", "account_id", "not empty", "hard", _set("tickets", "account_id", 0, None)),
    ("tickets", "created_at", "not empty", "hard", _set("tickets", "created_at", 0, pd.NaT)),
    ("tickets", "ticket_id", "unique", "hard", _duplicate_first_key("tickets")),
    ("tickets", "account_id", "known account", "soft", _set("tickets", "account_id", 0, "Z9")),
    ("tickets", "priority", "known priority", "soft", _set("tickets", "priority", 0, "p1")),
    ("tickets", "csat", "1 to 5", "soft", _set("tickets", "csat", 0, 9)),
    (
        "tickets",
        "first_response_at",
        "not before created_at",
        "soft",
        _set("tickets", "first_response_at", 0, pd.Timestamp("2023-03-01", tz="UTC")),
    ),
    (
        "tickets",
        "resolved_at",
        "not before created_at",
        "soft",
        _set("tickets", "resolved_at", 0, pd.Timestamp("2023-03-01", tz="UTC")),
    ),
    ("surveys", "account_id", "not empty", "hard", _set("surveys", "account_id", 0, None)),
    ("surveys", "ts", "not empty", "hard", _set("surveys", "ts", 0, pd.NaT)),
    ("surveys", "kind", "not empty", "hard", _set("surveys", "kind", 0, None)),
    ("surveys", "score", "not empty", "hard", _set("surveys", "score", 0, None)),
    ("surveys", "account_id", "known account", "soft", _set("surveys", "account_id", 0, "Z9")),
    ("surveys", "kind", "known kind", "soft", _set("surveys", "kind", 0, "ces2")),
    (
        "surveys",
        "score",
        "within the range of its kind",
        "soft",
        _set("surveys", "score", 0, 11.0),
    ),
    ("sentiment", "account_id", "not empty", "hard", _set("sentiment", "account_id", 0, None)),
    ("sentiment", "ts", "not empty", "hard", _set("sentiment", "ts", 0, pd.NaT)),
    ("sentiment", "sentiment", "not empty", "hard", _set("sentiment", "sentiment", 0, None)),
    ("sentiment", "account_id", "known account", "soft", _set("sentiment", "account_id", 0, "Z9")),
    (
        "sentiment",
        "sentiment",
        "known sentiment",
        "soft",
        _set("sentiment", "sentiment", 0, "amber"),
    ),
    ("invoices", "invoice_id", "not empty", "hard", _set("invoices", "invoice_id", 0, None)),
    ("invoices", "account_id", "not empty", "hard", _set("invoices", "account_id", 0, None)),
    ("invoices", "issued_at", "not empty", "hard", _set("invoices", "issued_at", 0, pd.NaT)),
    ("invoices", "due_at", "not empty", "hard", _set("invoices", "due_at", 0, pd.NaT)),
    ("invoices", "amount", "not empty", "hard", _set("invoices", "amount", 0, None)),
    ("invoices", "invoice_id", "unique", "hard", _duplicate_first_key("invoices")),
    ("invoices", "account_id", "known account", "soft", _set("invoices", "account_id", 0, "Z9")),
    (
        "invoices",
        "due_at",
        "not before issued_at",
        "hard",
        _set("invoices", "due_at", 0, pd.Timestamp("2022-12-01", tz="UTC")),
    ),
    ("invoices", "amount", ">= 0", "hard", _set("invoices", "amount", 0, -3.0)),
    ("activities", "account_id", "not empty", "hard", _activities("account_id", None)),
    ("activities", "ts", "not empty", "hard", _activities("ts", pd.NaT)),
    ("activities", "play", "not empty", "hard", _activities("play", None)),
    ("activities", "account_id", "known account", "soft", _activities("account_id", "Z9")),
    (
        "invoices",
        "paid_at",
        "not before issued_at",
        "soft",
        _set("invoices", "paid_at", 0, pd.Timestamp("2022-12-01", tz="UTC")),
    ),
]


#: The tests that run once per case, named table.column:rule.
every_case = pytest.mark.parametrize(
    ("table", "column", "rule", "severity", "mutate"),
    CASES,
    ids=[f"{t}.{c}:{r}" for t, c, r, _, _ in CASES],
)


def test_every_rule_is_tested() -> None:
    declared = {(r.table, r.column, r.name) for r in RULES}
    tested = {(t, c, r) for t, c, r, _, _ in CASES}
    assert declared == tested, f"untested: {declared - tested}; unknown: {tested - declared}"


def test_the_valid_tiny_world_has_no_problem(tmp_path: Path) -> None:
    report = validate(read_data(write_tables(tiny_tables(), tmp_path / "d")))
    assert report.problems == ()
    # The day after the last event (2023-12-01), which every other table's rows precede.
    assert report.end is not None and report.end.day == date(2023, 12, 2)
    assert {s.table: s.rows for s in report.summaries} == {
        "accounts": 2,
        "contracts": 3,
        "events": 5,
        "tickets": 2,
        "surveys": 2,
        "sentiment": 2,
        "invoices": 2,
    }


def test_the_pandera_schema_passes_a_valid_table_in_one_check(tmp_path: Path) -> None:
    """Valid tables pass pandera's single rules check, and a broken rule fails it: a
    check that errors instead (pandera reports an error as a failure) would fail both."""
    data = read_data(write_tables(tiny_tables(), tmp_path / "d"))
    for name, table in data.tables.items():
        schema = schema_for(name, data.tables)
        assert [c.name for c in schema.checks] == ["contract rules"]
        schema.validate(table, lazy=True)  # raises SchemaErrors on any failure or error
    bad = tiny_tables()
    _set("events", "event", 0, None)(bad)
    data = read_data(write_tables(bad, tmp_path / "bad"))
    with pytest.raises(pa.errors.SchemaErrors, match="contract rules"):
        schema_for("events", data.tables).validate(data.tables["events"], lazy=True)


@every_case
def test_bad_input_is_named(
    tmp_path: Path, table: str, column: str, rule: str, severity: str, mutate: Callable
) -> None:
    tables = tiny_tables()
    mutate(tables)
    data_dir = write_tables(tables, tmp_path / "d")
    report = validate(read_data(data_dir))
    found = [p for p in report.problems if (p.table, p.column, p.rule) == (table, column, rule)]
    assert len(found) == 1, [p.message for p in report.problems]
    problem = found[0]
    assert problem.severity == severity
    assert problem.rows >= 1
    assert problem.message.startswith(f"{table}.{column}: ")
    assert f"[rule: {rule}]" in problem.message
    assert problem.examples, "a few offending rows are shown"
    if severity == "hard":
        with pytest.raises(ContractError, match=f"{table}.{column}"):
            load(data_dir)
    else:
        clean = load(data_dir)
        before = len(tables[table])
        assert clean.tables[table].count().execute() == before - problem.rows, "excluded, counted"


@every_case
def test_the_files_statistics_give_the_report_that_counting_rows_gives(
    tmp_path: Path, table: str, column: str, rule: str, severity: str, mutate: Callable
) -> None:
    """Rules answered from Parquet statistics (empty cells, a minimum) and the summary read
    from the footers report exactly what counting every row reports, for every broken rule."""
    tables = tiny_tables()
    mutate(tables)
    data = read_data(write_tables(tables, tmp_path / "d"))
    assert set(data.stats) == set(data.tables), "every Parquet table is described"
    assert validate(data) == validate(replace(data, stats={}))


def test_parquet_statistics_are_read_from_the_footers(tmp_path: Path) -> None:
    """Events in two row groups of 2 rows: value [1.5, empty] then [-2.0, 3.0], ts from
    2024-01-02 08:00 to 2024-03-04 09:00 UTC. Without statistics nothing is told."""
    events = pyarrow.table(
        {
            "account_id": ["A1", "A1", "A2", None],
            "user_id": ["u1", "u2", "u1", "u1"],
            "ts": pd.to_datetime(
                ["2024-01-02T08:00", "2024-02-01T00:00", "2024-03-04T09:00", "2024-02-10T00:00"],
                utc=True,
            ),
            "event": ["login"] * 4,
            "value": [1.5, None, -2.0, 3.0],
        }
    )
    con = connect()
    for with_stats in (True, False):
        path = tmp_path / f"events-{with_stats}.parquet"
        pq.write_table(events, path, row_group_size=2, write_statistics=with_stats)
        stats = parquet_stats(con, TABLES["events"], path, read_source(con, TABLES["events"], path))
        assert stats is not None
        assert stats.rows == 4
        if with_stats:
            assert stats.columns["value"] == ColumnStats(nulls=1, low=-2.0)
            assert stats.columns["account_id"] == ColumnStats(nulls=1)
            assert (stats.first, stats.last) == (
                datetime(2024, 1, 2, 8, tzinfo=UTC),
                datetime(2024, 3, 4, 9, tzinfo=UTC),
            )
        else:
            assert stats.columns["value"] == ColumnStats(nulls=None, low=None)
            assert (stats.first, stats.last) == (None, None)


def test_the_report_reads_the_statistics_not_the_rows(tmp_path: Path) -> None:
    """Told that events.user_id has 5 empty cells, the report says 5 (the file has none):
    the statistics, not the rows, answer the rules they settle."""
    data = read_data(write_tables(tiny_tables(), tmp_path / "d"))
    told = replace(
        data.stats["events"],
        columns={**data.stats["events"].columns, "user_id": ColumnStats(nulls=5)},
    )
    report = validate(replace(data, stats={**data.stats, "events": told}))
    assert {(p.column, p.rule): p.rows for p in report.problems} == {("user_id", "not empty"): 5}


def test_a_table_without_statistics_is_counted_row_by_row(tmp_path: Path) -> None:
    """A Parquet export written without statistics: the rules are counted on the rows."""
    tables = tiny_tables()
    _set("events", "value", 1, -4.0)(tables)
    _set("events", "user_id", 2, None)(tables)
    data_dir = write_tables(tables, tmp_path / "d")
    pq.write_table(
        pyarrow.Table.from_pandas(tables["events"], preserve_index=False),
        data_dir / "events.parquet",
        write_statistics=False,
    )
    rows = {(p.column, p.rule): p.rows for p in validate(read_data(data_dir)).problems}
    assert rows == {("value", ">= 0"): 1, ("user_id", "not empty"): 1}


def test_a_per_account_rule_counts_every_row_of_an_unknown_account(tmp_path: Path) -> None:
    """ "known account" is checked once per distinct account_id and weighted by its rows:
    two events of Z9 count 2, and an event with no account_id is "not empty", not unknown."""
    tables = tiny_tables()
    events = tables["events"].astype({"account_id": object})
    events.loc[[0, 1], "account_id"] = "Z9"
    events.loc[2, "account_id"] = None
    tables["events"] = events
    report = validate(read_data(write_tables(tables, tmp_path / "d")))
    rows = {(p.column, p.rule): p.rows for p in report.problems}
    assert rows == {("account_id", "known account"): 2, ("account_id", "not empty"): 1}
    (unknown,) = [p for p in report.problems if p.rule == "known account"]
    assert unknown.examples == ("account_id Z9",)


def test_message_names_rows_and_fix(tmp_path: Path) -> None:
    tables = tiny_tables()
    _swap_dates(tables)
    report = validate(read_data(write_tables(tables, tmp_path / "d")))
    (problem,) = report.hard
    assert problem.message == (
        "contracts.end_date: 1 row end on or before their start_date "
        "(contract_id C1, end_date 2023-01-01) [rule: after start_date]. "
        "A term must end after it starts; check that the columns are not swapped."
    )


def test_missing_required_column_is_hard(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["events"] = tables["events"].drop(columns="ts")
    with pytest.raises(ContractError, match=r"events\.ts: required column is missing"):
        load(write_tables(tables, tmp_path / "d"))


def test_missing_required_table_is_hard(tmp_path: Path) -> None:
    tables = tiny_tables()
    del tables["events"]
    with pytest.raises(ContractError, match="events: required table"):
        load(write_tables(tables, tmp_path / "d"))


def test_optional_tables_may_be_absent(tmp_path: Path) -> None:
    tables = {k: v for k, v in tiny_tables().items() if k in ("accounts", "events")}
    clean = load(write_tables(tables, tmp_path / "d"))
    assert set(clean.tables) == {"accounts", "events"}


def test_unparseable_timestamp_in_csv_is_hard(tmp_path: Path) -> None:
    data_dir = write_tables(tiny_tables(), tmp_path / "d", fmt="csv")
    text = (data_dir / "events.csv").read_text().replace("2023-03-02T10:30:00+0000", "March 2nd")
    (data_dir / "events.csv").write_text(text)
    with pytest.raises(ContractError) as err:
        load(data_dir)
    assert (
        "events.ts: 1 row cannot be read as a timestamp ('March 2nd') [rule: parses as timestamp]"
        in str(err.value)
    )


def test_two_files_for_one_table_is_hard(tmp_path: Path) -> None:
    data_dir = write_tables(tiny_tables(), tmp_path / "d")
    tiny_tables()["events"].to_csv(data_dir / "events.csv", index=False)
    with pytest.raises(ContractError, match=r"events: found events\.parquet, events\.csv"):
        load(data_dir)


def _read_all(data_dir: Path) -> dict[str, pd.DataFrame]:
    clean = load(data_dir)
    out = {}
    for name, t in clean.tables.items():
        frame = t.to_pandas()
        out[name] = frame.sort_values(list(frame.columns[:3])).reset_index(drop=True)
    return out


def test_csv_and_parquet_give_identical_tables(tmp_path: Path) -> None:
    from_parquet = _read_all(write_tables(tiny_tables(), tmp_path / "p"))
    from_csv = _read_all(write_tables(tiny_tables(), tmp_path / "c", fmt="csv"))
    for name in from_parquet:
        pd.testing.assert_frame_equal(from_csv[name], from_parquet[name], check_dtype=True)


def test_time_zones_are_normalised_to_utc(tmp_path: Path) -> None:
    tables = tiny_tables()
    data_dir = write_tables(tables, tmp_path / "c", fmt="csv")
    # The same instants written with a +02:00 offset and with no zone (which means UTC).
    (data_dir / "sentiment.csv").write_text(
        "account_id,ts,sentiment\nA1,2023-05-01T02:00:00+02:00,green\nA2,2023-09-01T00:00:00,red\n"
    )
    got = load(data_dir).tables["sentiment"].order_by("account_id").to_pandas()
    assert list(got["ts"]) == list(tables["sentiment"]["ts"])
    assert str(got["ts"].dt.tz) == "UTC"


def test_a_folder_of_parquet_parts_is_one_table(tmp_path: Path) -> None:
    tables = tiny_tables()
    data_dir = write_tables(tables, tmp_path / "d")
    (data_dir / "events.parquet").unlink()
    (data_dir / "events").mkdir()
    events = tables["events"]
    events.iloc[:2].to_parquet(data_dir / "events" / "part-000.parquet", index=False)
    events.iloc[2:].to_parquet(data_dir / "events" / "part-001.parquet", index=False)
    assert load(data_dir).tables["events"].count().execute() == 5


def test_extra_account_columns_are_kept(tmp_path: Path) -> None:
    clean = load(write_tables(tiny_tables(), tmp_path / "d"))
    assert "plan" in clean.tables["accounts"].columns


def _churn(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("churn")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)


def test_cli_validate_exit_codes(tmp_path: Path) -> None:
    good = write_tables(tiny_tables(), tmp_path / "good")
    ok = _churn("validate", "--data", str(good))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "No hard problems" in ok.stdout

    tables = tiny_tables()
    _swap_dates(tables)
    bad = write_tables(tables, tmp_path / "bad")
    failed = _churn("validate", "--data", str(bad))
    assert failed.returncode == 2
    assert "contracts.end_date" in failed.stderr and "after start_date" in failed.stderr

    shutil.rmtree(bad)
    missing = _churn("validate", "--data", str(bad))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
