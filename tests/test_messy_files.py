"""Files as they come: CSV dialects and encodings, empty and broken files, numbers and dates
as spreadsheets and pandas write them (issue 13, "Files as they come").

Each file is written as the exporting program writes it (CSV as bytes, Parquet by pandas);
the expected values are what the exporting person typed, independent of the reading code.
"""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from conftest import SPARK, local_spark, tiny_tables, write_tables

from features.config import DataConfig
from features.errors import ContractError
from features.number_styles import number_style
from features.read import connect, read_data, scratch
from features.validate import load, validate

ACCOUNTS = (
    "account_id{d}created_at{d}name{d}segment\n"
    "A1{d}2023-01-01{d}{n1}{d}SMB\n"
    "A2{d}2023-06-15{d}{n2}{d}Enterprise\n"
)


def _data(tmp_path: Path, drop: tuple[str, ...] = ("accounts",)) -> Path:
    """The tiny valid world as CSV files, without the tables a test writes itself."""
    tables = {k: v for k, v in tiny_tables().items() if k not in drop}
    return write_tables(tables, tmp_path / "data", fmt="csv")


def _accounts(data_dir: Path, delimiter: str = ",", encoding: str = "utf-8",
              names: tuple[str, str] = ("Acme", "Globex"), bom: bytes = b"") -> None:  # fmt: skip
    text = ACCOUNTS.format(d=delimiter, n1=names[0], n2=names[1])
    (data_dir / "accounts.csv").write_bytes(bom + text.encode(encoding))


def _names(data_dir: Path, settings: DataConfig | None = None) -> list[str]:
    data = read_data(data_dir, settings=settings)
    frame = data.tables["accounts"].order_by("account_id").to_pandas()
    return list(frame["name"])


def _contracts(data_dir: Path, arr: tuple[str, str, str], delimiter: str = ",") -> None:
    """contracts.csv with ``arr`` written as given (quoted: a value may hold the delimiter)."""
    d = delimiter
    rows = [f"contract_id{d}account_id{d}start_date{d}end_date{d}arr{d}seats{d}outcome"]
    terms = [("C1", "A1", "2023-01-01", "2024-01-01", "expanded"),
             ("C2", "A1", "2024-01-01", "2025-01-01", ""),
             ("C3", "A2", "2023-06-15", "2024-06-15", "churned")]  # fmt: skip
    for (cid, aid, start, end, outcome), value in zip(terms, arr, strict=True):
        rows.append(d.join([cid, aid, start, end, f'"{value}"', "10", outcome]))
    (data_dir / "contracts.csv").write_text("\n".join(rows) + "\n")


def _arr(data_dir: Path) -> tuple[list[float], tuple[str, ...]]:
    data = read_data(data_dir)
    frame = data.tables["contracts"].order_by("contract_id").to_pandas()
    assert not [p for p in data.problems if p.severity == "hard"], data.problems
    return list(frame["arr"]), data.notes


# ---------------------------------------------------------------- dialects and encodings


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with EF BB BF; today the first column was
    '\\ufeffaccount_id' and "required column is missing"."""
    data_dir = _data(tmp_path)
    _accounts(data_dir, names=("Café Zoë", "Globex"), bom=b"\xef\xbb\xbf")
    clean = load(data_dir)
    assert clean.tables["accounts"].columns[0] == "account_id"
    assert _names(data_dir) == ["Café Zoë", "Globex"]
    assert read_data(data_dir).notes == ("accounts.csv: UTF-8 with a byte-order mark",)


@pytest.mark.parametrize(("delimiter", "shown"), [(";", "';'"), ("\t", "tab"), ("|", "'|'")])
def test_the_delimiter_is_detected_and_stated(tmp_path: Path, delimiter: str, shown: str) -> None:
    data_dir = _data(tmp_path)
    _accounts(data_dir, delimiter, names=("Acme, Inc.", "Globex"))
    assert _names(data_dir) == ["Acme, Inc.", "Globex"]
    assert read_data(data_dir).notes == (f"accounts.csv: delimiter {shown} detected",)


def test_a_cp1252_file_is_decoded_and_stated(tmp_path: Path) -> None:
    """Excel on Windows in Europe: semicolons, cp1252 ('é' is 0xE9, '€' is 0x80, which
    latin-1 would read as a control character)."""
    data_dir = _data(tmp_path)
    _accounts(data_dir, ";", "cp1252", names=("Café Müller", "Globex €uro"))
    assert _names(data_dir) == ["Café Müller", "Globex €uro"]
    assert read_data(data_dir).notes == (
        "accounts.csv: read as cp1252 (not valid UTF-8: at line 2, byte 0xe9); "
        "delimiter ';' detected",
    )
    load(data_dir)  # and the whole contract holds


def test_a_utf16_export_with_tabs_is_read(tmp_path: Path) -> None:
    """Excel's "Unicode text": UTF-16 little-endian behind a byte-order mark, tab-separated."""
    data_dir = _data(tmp_path)
    _accounts(data_dir, "\t", "utf-16-le", names=("Zoë", "Globex"), bom=b"\xff\xfe")
    assert _names(data_dir) == ["Zoë", "Globex"]
    assert read_data(data_dir).notes == (
        "accounts.csv: UTF-16 (byte-order mark); delimiter tab detected",
    )


def test_settings_win_over_detection(tmp_path: Path) -> None:
    """latin-1 as set: 0x80 stays U+0080 rather than cp1252's '€' (what was asked)."""
    data_dir = _data(tmp_path)
    for path in data_dir.glob("*.csv"):  # a setting applies to every file
        pd.read_csv(path, dtype=str).to_csv(path, sep=";", index=False)
    _accounts(data_dir, ";", "cp1252", names=("Café", "€"))
    settings = DataConfig(delimiter=";", encoding="latin-1")
    assert _names(data_dir, settings) == ["Café", "\x80"]
    assert read_data(data_dir, settings=settings).notes == ()


def test_a_delimiter_set_wrong_names_the_file_and_the_setting(tmp_path: Path) -> None:
    data_dir = _data(tmp_path)
    _accounts(data_dir, ";")
    with pytest.raises(ContractError) as err:
        read_data(data_dir, settings=DataConfig(delimiter=";"))
    assert str(err.value).startswith(
        "contracts.csv: data.delimiter is ';', which leaves the header in one piece "
        "('contract_id,account_id,"
    )
    assert "the file seems to use ','. Set data.delimiter in churn.yaml" in str(err.value)


def test_an_encoding_set_wrong_names_the_file_and_the_setting(tmp_path: Path) -> None:
    data_dir = _data(tmp_path)
    _accounts(data_dir, ",", "cp1252", names=("Café", "Globex"))
    with pytest.raises(ContractError) as err:
        read_data(data_dir, settings=DataConfig(encoding="utf-8"))
    assert str(err.value).startswith(
        "accounts.csv: does not decode as utf-8 (data.encoding) at line 2, byte 0xe9; "
        "set data.encoding in churn.yaml"
    )
    with pytest.raises(ContractError, match=r"data\.encoding: 'klingon' is not an encoding"):
        read_data(data_dir, settings=DataConfig(encoding="klingon"))


def test_a_file_in_no_detectable_encoding_says_what_to_set(tmp_path: Path) -> None:
    """0x81 is undefined in cp1252 (and not UTF-8): nothing can be assumed safely."""
    data_dir = _data(tmp_path)
    (data_dir / "accounts.csv").write_bytes(b"account_id,created_at\nA\x81,2023-01-01\n")
    with pytest.raises(ContractError) as err:
        read_data(data_dir)
    assert "accounts.csv: is neither UTF-8 (at line 2, byte 0x81) nor cp1252" in str(err.value)
    assert "set data.encoding in churn.yaml" in str(err.value)
    latin = read_data(data_dir, settings=DataConfig(encoding="latin-1"))
    assert latin.tables["accounts"].count().execute() == 1


# ---------------------------------------------------------------- unreadable files


@pytest.mark.parametrize("file", ["accounts.csv", "accounts.parquet", "tickets.csv"])
def test_a_zero_byte_file_is_hard(tmp_path: Path, file: str) -> None:
    data_dir = _data(tmp_path)
    if not file.startswith("accounts"):
        _accounts(data_dir)
    (data_dir / file).write_bytes(b"")
    with pytest.raises(ContractError) as err:
        read_data(data_dir)
    assert str(err.value).startswith(f"{file}: the file is empty (0 bytes)")


@pytest.mark.parametrize("table", ["accounts", "events", "contracts"])
def test_a_header_only_file_of_a_needed_table_is_hard(tmp_path: Path, table: str) -> None:
    data_dir = _data(tmp_path, drop=())
    path = data_dir / f"{table}.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    with pytest.raises(ContractError) as err:
        read_data(data_dir)
    assert str(err.value).startswith(f"{table}.csv: the file is empty: a header line and no rows")
    assert ("remove the file" in str(err.value)) == (table == "contracts")


def test_a_header_only_file_of_an_optional_table_is_an_empty_table(tmp_path: Path) -> None:
    data_dir = _data(tmp_path, drop=())
    path = data_dir / "tickets.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    assert load(data_dir).tables["tickets"].count().execute() == 0


def test_a_file_whose_delimiter_cannot_be_told_says_what_to_set(tmp_path: Path) -> None:
    data_dir = _data(tmp_path)
    # Two delimiters, each splitting every line evenly, neither naming more contract columns.
    (data_dir / "accounts.csv").write_text("a;b,c\nA1;x,y\nA2;z,w\n")
    with pytest.raises(ContractError) as err:
        read_data(data_dir)
    assert str(err.value).startswith(
        "accounts.csv: cannot tell the delimiter: ',' and ';' both split"
    )
    assert "set data.delimiter and data.encoding in churn.yaml" in str(err.value)
    # A single column is no table at all.
    (data_dir / "accounts.csv").write_text("account_id\nA1\n")
    with pytest.raises(ContractError, match=r"accounts\.csv: cannot tell the delimiter: none of"):
        read_data(data_dir)


def test_a_ragged_line_beyond_the_sample_names_the_file_and_the_line(tmp_path: Path) -> None:
    """The engine parses every line while reading: line 3,002 has one field too many (past
    the sample the dialect is told from)."""
    data_dir = _data(tmp_path, drop=("accounts", "events"))
    _accounts(data_dir)
    rows = ["account_id,user_id,ts,event,value"]
    rows += [f"A1,u1,2023-03-01T09:00:00,login,{i}" for i in range(3000)]
    rows += ["A1,u1,2023-03-01T09:00:00,login,1,extra"]
    (data_dir / "events.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ContractError) as err:
        read_data(data_dir)
    message = str(err.value)
    assert message.startswith(
        "events.csv: cannot be read as CSV with delimiter ',' and encoding utf-8: "
    )
    assert "Line: 3002" in message and "Expected Number of Columns: 5 Found: 6" in message
    assert "set data.delimiter and data.encoding in churn.yaml" in message


# ---------------------------------------------------------------- values as spreadsheets write them


def test_thousands_separators_are_read(tmp_path: Path) -> None:
    data_dir = _data(tmp_path, drop=("contracts",))
    _contracts(data_dir, ("1,200.50", "12,000", "950"))
    arr, notes = _arr(data_dir)
    assert arr == [1200.5, 12000.0, 950.0]
    assert notes == ("contracts.csv: arr read with ',' as thousands separator",)


def test_a_decimal_comma_in_a_semicolon_file_is_read(tmp_path: Path) -> None:
    data_dir = _data(tmp_path, drop=("contracts",))
    _contracts(data_dir, ("1.200,50", "12,5", "90.000"), delimiter=";")
    arr, notes = _arr(data_dir)
    assert arr == [1200.5, 12.5, 90000.0]
    assert notes == (
        "contracts.csv: delimiter ';' detected; arr read with a decimal comma "
        "('.' as thousands separator)",
    )


@pytest.mark.parametrize(
    ("arr", "rows"), [(("12.000", "15.000", "90.000"), 3), (("1,200", "12,000", "950"), 2)]
)
def test_numbers_that_read_two_ways_are_hard(
    tmp_path: Path, arr: tuple[str, str, str], rows: int
) -> None:
    """In a ';' file "12.000" is 12 or 12,000, and "1,200" is 1.2 or 1,200: not guessed."""
    data_dir = _data(tmp_path, drop=("contracts",))
    _contracts(data_dir, arr, delimiter=";")
    with pytest.raises(ContractError) as err:
        load(data_dir)
    message = str(err.value)
    assert message.startswith(
        f"contracts.arr: {rows} rows reads two ways, with '.' or ',' as the decimal point"
    )
    assert repr(arr[0]) in message
    assert "[rule: parses as float]" in message and "no thousands separator" in message


def test_numbers_in_mixed_styles_are_reported_not_guessed(tmp_path: Path) -> None:
    """A decimal comma in a comma-delimited file is not assumed: conform() reports it."""
    data_dir = _data(tmp_path, drop=("contracts",))
    _contracts(data_dir, ("1,200.50", "12,5", "950"))
    with pytest.raises(ContractError) as err:
        load(data_dir)
    assert str(err.value) == (
        "contracts.arr: 2 rows cannot be read as a float ('1,200.50', '12,5') "
        "[rule: parses as float]. Write numbers with a dot as decimal separator and no "
        "thousands separator."
    )


def test_booleans_and_numbers_as_text_in_extra_columns_are_kept(tmp_path: Path) -> None:
    data_dir = _data(tmp_path)
    (data_dir / "accounts.csv").write_text(
        "account_id,created_at,active,newsletter,employees\n"
        'A1,2023-01-01,TRUE,yes,"1,200"\n'
        "A2,2023-06-15,FALSE,no,80\n"
    )
    frame = load(data_dir).tables["accounts"].order_by("account_id").to_pandas()
    # DuckDB's own inference: TRUE/FALSE and yes/no are booleans, "1,200" stays text.
    assert list(frame["active"]) == [True, False]
    assert list(frame["newsletter"]) == [True, False]
    assert list(frame["employees"]) == ["1,200", "80"]


def _zoned_contracts(data_dir: Path, zone: str) -> None:
    """contracts.parquet as pandas writes zoned timestamps: midnight in ``zone``."""
    frame = tiny_tables()["contracts"]
    for col in ("start_date", "end_date"):
        frame[col] = pd.to_datetime(frame[col]).dt.tz_localize(zone)
    frame.loc[1, "end_date"] = pd.Timestamp("2024-03-01", tz=zone)
    (data_dir / "contracts.csv").unlink(missing_ok=True)
    frame.to_parquet(data_dir / "contracts.parquet", index=False)


@pytest.mark.parametrize("zone", ["Europe/Berlin", "+01:00"])
def test_a_zoned_timestamp_date_keeps_its_own_calendar_date(tmp_path: Path, zone: str) -> None:
    """Berlin midnight of 2024-03-01 is 2024-02-29T23:00Z; the contract keeps 2024-03-01."""
    data_dir = _data(tmp_path, drop=("contracts",))
    _zoned_contracts(data_dir, zone)
    data = read_data(data_dir)
    got = data.tables["contracts"].order_by("contract_id").to_pandas()
    assert list(got["end_date"].dt.date) == [date(2024, 1, 1), date(2024, 3, 1), date(2024, 6, 15)]
    assert list(got["start_date"].dt.date) == [
        date(2023, 1, 1),
        date(2024, 1, 1),
        date(2023, 6, 15),
    ]
    assert data.notes == (
        f"contracts.parquet: start_date: the calendar date in {zone} (a zoned timestamp); "
        f"end_date: the calendar date in {zone} (a zoned timestamp)",
    )


def test_a_timestamp_date_without_a_zone_is_utc(tmp_path: Path) -> None:
    data_dir = _data(tmp_path, drop=("contracts",))
    frame = tiny_tables()["contracts"]
    frame["end_date"] = pd.to_datetime(["2024-01-01T23:30", "2025-01-01T00:00", "2024-06-15T00:00"])
    frame.to_parquet(data_dir / "contracts.parquet", index=False)
    data = read_data(data_dir)
    got = data.tables["contracts"].order_by("contract_id").to_pandas()
    assert list(got["end_date"].dt.date) == [date(2024, 1, 1), date(2025, 1, 1), date(2024, 6, 15)]
    assert data.notes == ()


@pytest.mark.parametrize(
    ("counts", "comma_file", "style"),
    [
        ({"n": 3, "plain": 3, "us": 3, "eu": 3, "dotted": 0}, False, "plain"),  # 12000
        ({"n": 3, "plain": 3, "us": 3, "eu": 0, "dotted": 3}, False, "plain"),  # 12.5
        ({"n": 3, "plain": 3, "us": 3, "eu": 3, "dotted": 3}, True, "plain"),  # 12.000, ','
        ({"n": 3, "plain": 3, "us": 3, "eu": 3, "dotted": 3}, False, "ambiguous"),  # ';'
        ({"n": 3, "plain": 1, "us": 3, "eu": 1, "dotted": 1}, True, "us"),  # 1,200.50
        ({"n": 3, "plain": 1, "us": 3, "eu": 1, "dotted": 1}, False, "us"),
        ({"n": 3, "plain": 1, "us": 1, "eu": 3, "dotted": 1}, False, "eu"),  # 1.200,50
        ({"n": 3, "plain": 1, "us": 1, "eu": 3, "dotted": 1}, True, "plain"),  # reported
        ({"n": 3, "plain": 1, "us": 3, "eu": 3, "dotted": 0}, False, "ambiguous"),  # 1,200
        ({"n": 0, "plain": 0, "us": 0, "eu": 0, "dotted": 0}, False, "plain"),
    ],
)
def test_the_style_of_a_number_column(counts: dict[str, int], comma_file: bool, style: str) -> None:
    assert number_style(counts, comma_file) == style


# ---------------------------------------------------------------- the command line


def _churn(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("churn")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)


def test_cli_reads_a_european_export_and_exits_2_on_an_empty_file(tmp_path: Path) -> None:
    data_dir = _data(tmp_path)
    _accounts(data_dir, ";", "cp1252", names=("Café", "Globex"))
    ok = _churn("validate", "--data", str(data_dir))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "accounts.csv: read as cp1252" in ok.stdout  # the report says what was assumed

    (data_dir / "events.csv").write_bytes(b"")
    failed = _churn("validate", "--data", str(data_dir))
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert "events.csv: the file is empty (0 bytes)" in failed.stderr
    assert "Traceback" not in failed.stderr

    (data_dir / "events.csv").write_text("account_id,user_id\n")
    config = tmp_path / "churn.yaml"
    config.write_text("data:\n  encoding: utf-8\n")
    wrong = _churn("validate", "--data", str(data_dir), "--config", str(config))
    assert wrong.returncode == 2
    assert "accounts.csv: does not decode as utf-8 (data.encoding)" in wrong.stderr


# ---------------------------------------------------------------- Spark


@pytest.fixture(scope="module")
def spark_con() -> Iterator[object]:
    with local_spark(1, **{"spark.sql.shuffle.partitions": "1"}) as con:
        yield con


def _spark(test: Callable[..., None]) -> Callable[..., None]:
    """Run ``test`` only where pyspark and Java are installed (conftest.SPARK)."""
    for mark in SPARK:
        test = mark(test)
    return test


@_spark
def test_spark_reads_the_same_messy_files(tmp_path: Path, spark_con: object) -> None:
    """cp1252 with semicolons, a decimal comma and Berlin dates: Spark reads what DuckDB
    reads (Spark decodes the file itself, with the same delimiter and encoding)."""
    data_dir = _data(tmp_path, drop=("accounts", "contracts"))
    _accounts(data_dir, ";", "cp1252", names=("Café €", "Globex"))
    _zoned_contracts(data_dir, "Europe/Berlin")
    (data_dir / "invoices.csv").write_text(
        "invoice_id;account_id;issued_at;due_at;paid_at;amount\n"
        "I1;A1;2023-01-01;2023-01-31;;1.200,50\nI2;A2;2023-06-15;2023-07-15;;12,5\n"
    )
    on_spark = read_data(data_dir, spark_con)  # type: ignore[arg-type]
    on_duckdb = read_data(data_dir)
    assert on_spark.notes == on_duckdb.notes
    for name in ("accounts", "contracts", "invoices"):
        got = on_spark.tables[name].to_pandas().sort_values(by=on_spark.tables[name].columns[0])
        want = on_duckdb.tables[name].to_pandas().sort_values(by=got.columns[0])
        for col in ("name", "end_date", "amount"):
            if col in want:
                assert list(got[col]) == list(want[col]), (name, col)
    accounts = on_spark.tables["accounts"].to_pandas().sort_values("account_id")
    assert list(accounts["name"]) == ["Café €", "Globex"]


@_spark
def test_spark_settles_the_same_rules_from_the_parquet_footers(
    tmp_path: Path, spark_con: object
) -> None:
    """The footers are the files' own: on Spark they describe every Parquet table as on
    DuckDB, and the report they give (a value below 0, an empty user_id) is the one that
    counting Spark's rows gives."""
    tables = tiny_tables()
    events = tables["events"].astype({"user_id": object})
    events.loc[1, "value"] = -4.0
    events.loc[2, "user_id"] = None
    tables["events"] = events
    data_dir = write_tables(tables, tmp_path / "d")
    on_spark = read_data(data_dir, spark_con)  # type: ignore[arg-type]
    assert set(on_spark.stats) == set(on_spark.tables), "every Parquet table is described"
    assert on_spark.stats == read_data(data_dir).stats
    report = validate(on_spark)
    assert report == validate(replace(on_spark, stats={}))
    assert {(p.table, p.column, p.rows) for p in report.problems} >= {
        ("events", "value", 1),
        ("events", "user_id", 1),
    }


def _with_hidden_parts(tmp_path: Path) -> Path:
    """The tiny tables with the events as a folder: ``part-0.parquet`` (all 5 rows), and 6 more
    rows in four files whose names start with ``_`` or ``.``, as an export or a failed write
    leaves them."""
    tables = tiny_tables()
    events = tables.pop("events")
    data_dir = write_tables(tables, tmp_path / "d")
    folder = data_dir / "events"
    (folder / "_temporary" / "0").mkdir(parents=True)
    events.to_parquet(folder / "part-0.parquet", index=False)
    events.head(2).to_parquet(folder / "_rejected.parquet", index=False)
    events.head(2).to_parquet(folder / "_temporary" / "0" / "part-1.parquet", index=False)
    events.head(1).to_parquet(folder / ".part-2.parquet", index=False)
    events.head(1).to_parquet(folder / ".part-3.parquet", index=False)
    return data_dir


def test_a_folders_hidden_parquet_files_are_not_read_and_the_report_says_so(
    tmp_path: Path,
) -> None:
    data_dir = _with_hidden_parts(tmp_path)
    data = read_data(data_dir)
    rows = {s.table: s.rows for s in validate(data).summaries}
    assert rows["events"] == len(tiny_tables()["events"]) == 5
    assert data.notes == (
        "events/: 4 Parquet file(s) not read, whose names start with _ or . (Hadoop's hidden "
        "files, such as an unfinished write's _temporary/; Spark skips them too): "
        ".part-2.parquet, .part-3.parquet, _rejected.parquet and 1 more",
    )
    for f in (data_dir / "events").glob("part-*.parquet"):
        f.unlink()
    with pytest.raises(ContractError, match=r"events: the folder .* holds no \.parquet parts to "
                       r"read: its 4 are files whose names start with _ or \..*named without "
                       r"a leading _ or \."):  # fmt: skip
        read_data(data_dir)


@_spark
def test_spark_reads_the_parts_of_a_folder_that_duckdb_reads(
    tmp_path: Path, spark_con: object
) -> None:
    """Both engines leave out a folder's hidden Parquet files (``_rejected.parquet``,
    ``_temporary/``): the same rows, the same footers, the same notes."""
    data_dir = _with_hidden_parts(tmp_path)
    on_spark = read_data(data_dir, spark_con)  # type: ignore[arg-type]
    on_duckdb = read_data(data_dir)
    assert on_spark.notes == on_duckdb.notes and len(on_spark.notes) == 1
    assert on_spark.stats == on_duckdb.stats and "events" in on_spark.stats
    assert validate(on_spark).summaries == validate(on_duckdb).summaries
    assert validate(replace(on_spark, stats={})) == validate(on_spark)


def test_each_connection_keeps_its_own_temporary_folder() -> None:
    """UTF-8 copies and DuckDB's spilled data live in a folder of each connection's own,
    removed with it and not before (Ibis backends compare equal by database: a folder keyed
    by the connection was shared, and vanished under a later connection's tables)."""
    first, second = connect("duckdb", threads=1), connect("duckdb", threads=1)
    mine, theirs = Path(scratch(first)), Path(scratch(second))
    assert mine != theirs and mine.is_dir() and theirs.is_dir()
    spill = second.raw_sql("SELECT current_setting('temp_directory')").fetchone()
    assert spill == (str(theirs),)
    del first
    gc.collect()
    assert not mine.exists(), "removed with its connection"
    assert theirs.is_dir(), "the other connection keeps its folder"
