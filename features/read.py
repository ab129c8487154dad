"""Read a data directory into typed Ibis tables, without loading them into memory.

Each table is found as ``<name>.parquet``, ``<name>.csv`` or a folder ``<name>/`` of Parquet
parts, read in place by the engine (DuckDB by default), and its contract columns are cast
to the contract's types: timestamps to UTC, dates to dates (a zoned timestamp keeps its
calendar date in its own zone). Values that cannot be cast are reported as problems by
:func:`conform`, never silently turned into missing values.

CSV files come as spreadsheets write them: :mod:`features.sniff` tells their encoding and
delimiter, and numbers with thousands separators or a decimal comma are read when their
reading is unambiguous. What was assumed is listed in ``DataSet.notes``; a file that cannot
be read is a :class:`ContractError` naming it and the setting to give.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse
from urllib.request import url2pathname
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.parquet as pq
from ibis.backends import BaseBackend

from features.config import DataConfig
from features.contract import IBIS_TYPES, TABLES, ColumnStats, TableSpec
from features.errors import ContractError, Problem
from features.resources import free_cores
from features.sniff import Dialect, not_empty, shown, sniff, transcode

EXAMPLES = 3
#: DuckDB's default memory cap (``engine.memory_limit``): with Python, the frames and the
#: model on top, a run stays within 4 GiB.
MEMORY_LIMIT = "3GiB"


@dataclass(frozen=True)
class TableStats:
    """What a Parquet source's own statistics say, without reading its rows.

    ``columns``: the contract columns read as stored (a cast could change what the
    statistics describe). ``first`` and ``last``: the bounds of a timestamp time column,
    ``None`` when some row group does not give them.
    """

    rows: int
    columns: dict[str, ColumnStats]
    first: datetime | None = None
    last: datetime | None = None


@dataclass(frozen=True)
class DataSet:
    """The contract tables of one data directory, typed, on one engine connection."""

    con: BaseBackend
    tables: dict[str, ir.Table]
    sources: dict[str, Path]
    #: Problems found while reading: missing columns and values that do not parse.
    problems: tuple[Problem, ...] = ()
    #: The statistics of the tables read from Parquet on DuckDB (:func:`parquet_stats`).
    stats: dict[str, TableStats] = field(default_factory=dict)
    #: What was assumed rather than given, one line per file, for the validation report
    #: ("accounts.csv: read as cp1252 (not valid UTF-8 ...); delimiter ';' detected").
    notes: tuple[str, ...] = ()


def connect(
    engine: str = "duckdb",
    threads: int | None = None,
    memory_limit: str | None = None,
    **options: Any,
) -> BaseBackend:
    """Open an engine connection in UTC.

    ``threads`` sizes DuckDB's thread pool; by default the free cores, never more.
    ``memory_limit`` caps DuckDB's memory (e.g. ``"3GB"``; default :data:`MEMORY_LIMIT`, so
    that a run fits a 4 GiB budget on any machine rather than DuckDB's 80% of RAM): beyond
    it, joins, sorts and aggregates spill to a temporary folder that lives as long as the
    connection, slower but within the cap. For
    Spark, ``options`` go to :func:`features.spark.spark_connect` (``master``, Spark
    settings such as ``spark.driver.memory``), and ``threads`` without a ``master`` runs
    local Spark on that many cores.
    """
    if engine == "duckdb":
        con = ibis.duckdb.connect(**options)
        con.raw_sql("SET TimeZone = 'UTC'")
        con.raw_sql(f"SET threads = {int(threads or free_cores())}")
        con.raw_sql(f"SET memory_limit = '{memory_limit or MEMORY_LIMIT}'")
        con.raw_sql(f"SET temp_directory = '{scratch(con)}'")
        return con
    if engine == "spark":
        from features.spark import spark_connect  # pyspark is an optional extra

        if threads and "master" not in options:
            options["master"] = f"local[{int(threads)}]"
        return spark_connect(**options)
    raise ValueError(f"engine must be 'duckdb' or 'spark', got {engine!r}")


#: A location that starts with ``scheme://`` (two letters at least: ``C:/`` is a path).
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")


def uri_scheme(location: str | Path) -> str | None:
    """The scheme of a location given as a URI (``s3a``, ``file``, ...), in lower case;
    ``None`` for a plain path."""
    found = _URI.match(str(location))
    return found.group(1).lower() if found else None


def file_uri_path(uri: str, setting: str) -> Path:
    """The local path of a ``file://`` URI (``file:///data/x`` is ``/data/x``)."""
    parsed = urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        raise ContractError(
            f"{setting} {uri}: a file:// URI names a path on this machine, and this one "
            f"names the host {parsed.netloc!r}. Write file:///path/to/folder (three "
            "slashes), or mount that machine's folder and give its path."
        )
    return Path(url2pathname(parsed.path))


def find_sources(data_dir: Path) -> dict[str, Path]:
    """Map each contract table present in ``data_dir`` to its file or folder."""
    if not data_dir.is_dir():
        raise ContractError(f"data directory {data_dir} does not exist or is not a folder")
    sources: dict[str, Path] = {}
    for name in TABLES:
        found = [
            p
            for p in (data_dir / f"{name}.parquet", data_dir / f"{name}.csv", data_dir / name)
            if p.exists()
        ]
        if len(found) > 1:
            listed = ", ".join(p.name for p in found)
            raise ContractError(
                f"{name}: found {listed} in {data_dir}; keep one file (or one folder) per table"
            )
        if found:
            if found[0].is_dir() and not any(found[0].rglob("*.parquet")):
                raise ContractError(
                    f"{name}: the folder {found[0]} holds no .parquet parts; "
                    "a table given as a folder must be a set of Parquet files"
                )
            sources[name] = found[0]
    missing = [t.name for t in TABLES.values() if t.required and t.name not in sources]
    if missing:
        raise ContractError(
            f"{', '.join(missing)}: required table(s) missing from {data_dir}; expected "
            + " or ".join(
                f"{m}.parquet, {m}.csv or a folder {m}/ of Parquet parts" for m in missing
            )
        )
    return sources


def read_source(
    con: BaseBackend, spec: TableSpec, path: Path, dialect: Dialect | None = None
) -> ir.Table:
    """Read one table in place, as stored: CSV contract columns stay text until cast.

    ``dialect``: how a CSV file is written (default: :func:`features.sniff.sniff`'s guess).
    """
    if path.suffix == ".csv":
        dialect = dialect or sniff(path, spec.column_names)
        if con.name == "duckdb":
            # Contract columns as text, so that a bad cell is caught by conform() rather than
            # failing the read or becoming NULL; extra columns keep DuckDB's type inference.
            # Quoting is RFC 4180's, as pandas and spreadsheets write it (and as the Spark path
            # reads it): given rather than sniffed, a ragged line is then named by its number
            # instead of failing DuckDB's dialect search.
            text = {c: "VARCHAR" for c in dialect.header if c in spec.column_names}
            return con.read_csv(
                _utf8_copy(con, path, dialect),
                types=text or None,  # an empty mapping is a syntax error in DuckDB's SQL
                header=True,
                delim=dialect.delimiter,
                quote='"',
                escape='"',
            )
        if con.name == "pyspark":
            return _spark_csv(con, spec, path, dialect)
        return con.read_csv(str(path), header=True)
    if con.name == "pyspark":
        from features.spark import read_spark, spark_uri

        if path.is_dir():
            # Hadoop globs have no "**": the folder's Parquet files at any depth, as DuckDB's
            # glob reads them.
            return read_spark(
                con, "parquet", spark_uri(path),
                recursiveFileLookup="true", pathGlobFilter="*.parquet",
            )  # fmt: skip
        return read_spark(con, "parquet", spark_uri(path))
    return con.read_parquet(_parquet_glob(path))


#: The attribute of a connection that holds its temporary folder (UTF-8 copies of non-UTF-8
#: CSV files, DuckDB's spilled data), removed with the connection. Not a dictionary keyed by
#: the connection: Ibis backends compare equal by database, so every in-memory DuckDB
#: connection would share the first one's folder, and lose it when that one is collected.
_SCRATCH = "_churn_scratch"


def _utf8_copy(con: BaseBackend, path: Path, dialect: Dialect) -> str:
    """``path`` itself when it is UTF-8, else a UTF-8 copy that lives as long as ``con``.

    DuckDB reads only UTF-8 (and UTF-16, latin-1) without its ``encodings`` extension, which
    would be downloaded at run time; and latin-1 is not cp1252 (Excel's "€", curly quotes and
    dashes sit in 0x80-0x9F). Python's codecs decode any encoding exactly, in one streaming
    pass, and DuckDB then reads the copy in place like any other file: the table is not
    loaded into memory, as an Arrow table read by pyarrow's CSV reader would be.
    """
    if dialect.utf8:
        return str(path)
    out = Path(tempfile.mkdtemp(dir=scratch(con))) / path.name
    return str(transcode(path, dialect.encoding, out))


def scratch(con: BaseBackend) -> str:
    """A temporary folder of ``con``'s own (UTF-8 copies, DuckDB's spilled data), removed
    when the connection is."""
    folder = getattr(con, _SCRATCH, None)
    if folder is None:
        folder = tempfile.TemporaryDirectory(prefix="churn-")
        setattr(con, _SCRATCH, folder)
    return str(folder.name)


def _parquet_glob(path: Path) -> str:
    return str(path / "**" / "*.parquet") if path.is_dir() else str(path)


def parquet_stats(
    con: BaseBackend, spec: TableSpec, path: Path, raw: ir.Table
) -> TableStats | None:
    """The row count and the row groups' statistics of a Parquet source, read from its
    footers (DuckDB's ``parquet_metadata``); ``None`` for CSV or another engine.

    Only contract columns stored in their contract type (any timestamp for a timestamp) are
    described: their values are the typed table's. A column's count or bound is ``None``
    unless every row group gives it.
    """
    if con.name != "duckdb" or path.suffix == ".csv":
        return None
    stored = [
        c
        for c in spec.columns
        if c.name in raw.columns and _cannot_fail(raw[c.name].type(), c.kind)
    ]
    meta = "parquet_metadata('{}')".format(_parquet_glob(path).replace("'", "''"))
    groups = f"SELECT DISTINCT file_name, row_group_id, row_group_num_rows FROM {meta}"
    rows = con.raw_sql(f"SELECT coalesce(sum(row_group_num_rows), 0) FROM ({groups})").fetchone()

    def every(value: str, agg: str, cast: str) -> str:
        """``agg`` of a statistic over the row groups, NULL unless every one gives it."""
        v = f"TRY_CAST({value} AS {cast})"
        return f"CASE WHEN count({v}) = count(*) THEN {agg}({v}) END"

    per = con.raw_sql(
        f"SELECT path_in_schema AS col, {every('stats_null_count', 'sum', 'BIGINT')} AS nulls, "
        f"{every('stats_min_value', 'min', 'DOUBLE')} AS low, "
        f"{every('stats_min_value', 'min', 'TIMESTAMPTZ')} AS first, "
        f"{every('stats_max_value', 'max', 'TIMESTAMPTZ')} AS last FROM {meta} GROUP BY 1"
    ).fetch_arrow_table()  # as Arrow: a Python datetime with a zone would need pytz
    found = {r["col"]: r for r in per.to_pylist()}
    columns: dict[str, ColumnStats] = {}
    bounds: tuple[datetime | None, datetime | None] = (None, None)
    for col in (c for c in stored if c.name in found):
        r = found[col.name]
        numeric = col.kind in ("float", "integer")
        nulls = None if r["nulls"] is None else int(r["nulls"])
        columns[col.name] = ColumnStats(nulls, r["low"] if numeric else None)
        if (
            col.name == spec.time_column
            and col.kind == "timestamp"
            and None not in (r["first"], r["last"])
        ):
            bounds = (r["first"], r["last"])
    return TableStats(int(rows[0]), columns, *bounds)


def _spark_csv(con: BaseBackend, spec: TableSpec, path: Path, dialect: Dialect) -> ir.Table:
    """Read a CSV on Spark the way DuckDB does: contract columns as text, others inferred.

    Spark's own inference would parse contract columns before conform() sees them ("12.5"
    read as a double, then cast to 12 rather than reported). A first pass infers the other
    columns' types; the second reads with that schema. RFC 4180 quoting as pandas and
    spreadsheets write it: quotes doubled inside quoted cells, which may span lines. The
    delimiter and encoding are the dialect's; Spark decodes the file itself (a byte-order
    mark is skipped), so a cluster reads the file where it lies.
    """
    from ibis.backends.sql.datatypes import PySparkType

    from features.spark import read_spark, spark_uri

    charset = _JAVA_CHARSETS.get(dialect.encoding, dialect.encoding)
    if charset.lower() not in _SPARK_CHARSETS:
        # Spark 4 accepts only the UTF and ISO-8859-1 charsets unless this SQL setting lets
        # it use every Java charset (windows-1252 included); a running session accepts it.
        con._session.conf.set("spark.sql.legacy.javaCharsets", "true")
    options = {
        "header": True,
        "escape": '"',
        "multiLine": True,
        "sep": dialect.delimiter,
        "encoding": charset,
    }
    uri = spark_uri(path)
    inferred = read_spark(con, "csv", uri, inferSchema=True, **options).schema()
    ddl = ", ".join(
        f"`{name}` " + ("STRING" if name in spec.column_names else PySparkType.to_string(dtype))
        for name, dtype in inferred.items()
    )
    return read_spark(con, "csv", uri, schema=ddl, inferSchema=False, **options)


#: Python codec names Java spells differently.
_JAVA_CHARSETS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8",
    "utf-16": "UTF-16",
    "utf-32": "UTF-32",
    "ascii": "US-ASCII",
    "iso8859-1": "ISO-8859-1",
    **{f"cp{n}": f"windows-{n}" for n in range(1250, 1259)},
}
_SPARK_CHARSETS = {"iso-8859-1", "us-ascii", "utf-16", "utf-16be", "utf-16le", "utf-32", "utf-8"}

#: How a numeric column is written as text: plain numbers, "1,200.50" (us), "1.200,50" (eu),
#: or values that read both ways (ambiguous).
Style = Literal["plain", "us", "eu", "ambiguous"]
_DIGITS = r"^[+-]?[0-9]+$"


def _grouped(thousands: str, decimal: str) -> str:
    """Numbers with ``thousands`` between groups of three digits (or none) and a ``decimal``."""
    t, d = re.escape(thousands), re.escape(decimal)
    return rf"^[+-]?([1-9][0-9]{{0,2}}({t}[0-9]{{3}})+|[0-9]+)({d}[0-9]+)?$"


_US, _EU = _grouped(",", "."), _grouped(".", ",")


def number_style(counts: Mapping[str, int], comma_file: bool) -> Style:
    """How a numeric column held as text is written, from counts of its non-empty values.

    ``counts``: ``n`` values; ``plain`` that cast as numbers; ``us`` that read as
    "1,200.50"; ``eu`` as "1.200,50"; ``dotted`` that hold a dot. A decimal comma is
    considered only where the delimiter is not a comma. "ambiguous": every value reads both
    ways ("1,200" or "12.000" in a ';' file), so none is guessed; "plain": read as numbers
    (conform() reports what does not parse).
    """
    n = counts["n"]
    eu_too = not comma_file and counts["eu"] == n
    if n == 0 or (counts["plain"] == n and not (eu_too and counts["dotted"])):
        return "plain"
    if counts["us"] == n:
        return "ambiguous" if eu_too else "us"
    return "eu" if eu_too else "plain"


def _number_text(col: ir.StringValue, style: Style) -> ir.StringValue:
    """Numeric text of ``style`` rewritten as plain numbers; values read two ways as NULL."""
    col = col.strip()
    if style == "us":
        return col.replace(",", "")
    if style == "eu":
        return col.replace(".", "").replace(",", ".")
    return col.re_search(_DIGITS).ifelse(col, ibis.null(str))


def number_styles(
    raw: ir.Table, spec: TableSpec, delimiter: str | None = None, parse_all: bool = False
) -> dict[str, Style]:
    """The style of each numeric contract column held as text (:func:`number_style`).

    ``delimiter``: the CSV file's (a decimal comma is considered only without a comma
    delimiter). ``parse_all`` also counts the rows, which makes DuckDB parse every line
    of a CSV file: a ragged line fails here, inside the read, rather than in a later stage.
    A first pass counts the values that are plain numbers; only the columns where that does
    not settle it are matched against the patterns, in a second pass (the regular
    expressions cost more than the parse).
    """
    texts = [
        c.name
        for c in spec.columns
        if c.kind in ("float", "integer")
        and c.name in raw.columns
        and raw[c.name].type().is_string()
    ]
    comma_file = delimiter in (None, ",")
    aggs: dict[str, ir.Scalar] = {"rows": raw.count()} if parse_all else {}
    for i, name in enumerate(texts):
        s = raw[name]
        # As the plain cast reads them (unstripped); dots matter only beside a decimal comma.
        aggs |= {f"n{i}": s.count(), f"plain{i}": s.try_cast("float64").count()}
        if not comma_file:
            aggs[f"dotted{i}"] = s.count(where=s.contains("."))
    if not aggs:
        return {}
    got = {k: int(v or 0) for k, v in raw.aggregate(**aggs).to_pyarrow().to_pylist()[0].items()}
    got |= {f"dotted{i}": 0 for i in range(len(texts))} if comma_file else {}
    open_ = [
        i
        for i in range(len(texts))
        if got[f"plain{i}"] < got[f"n{i}"] or (not comma_file and got[f"dotted{i}"])
    ]
    got |= {f"{k}{i}": 0 for i in range(len(texts)) for k in ("us", "eu")}
    if open_:
        patterns: dict[str, ir.Scalar] = {}
        for i in open_:
            s = raw[texts[i]].strip()
            patterns[f"us{i}"] = s.count(where=s.re_search(_US))
            patterns[f"eu{i}"] = s.count(where=s.re_search(_EU))
        more = raw.aggregate(**patterns).to_pyarrow().to_pylist()[0]
        got |= {k: int(v or 0) for k, v in more.items()}
    keys = ("n", "plain", "us", "eu", "dotted")
    return {
        name: number_style({k: got[f"{k}{i}"] for k in keys}, comma_file)
        for i, name in enumerate(texts)
    }


_STYLE_NOTES = {
    "us": "read with ',' as thousands separator",
    "eu": "read with a decimal comma ('.' as thousands separator)",
}

_UTC = {"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z", "+00:00", "-00:00"}
_OFFSET = re.compile(r"^([+-])([0-9]{2}):([0-9]{2})$")


@ibis.udf.scalar.builtin(name="timezone")
def _duckdb_wall_time(zone: str, ts: dt.Timestamp(timezone="UTC")) -> dt.Timestamp():  # type: ignore[valid-type]
    """DuckDB's wall-clock time of an instant in ``zone`` (an IANA name)."""


@ibis.udf.scalar.builtin(name="from_utc_timestamp")
def _spark_wall_time(ts: dt.Timestamp(), zone: str) -> dt.Timestamp():  # type: ignore[valid-type]
    """Spark's wall-clock time of an instant in ``zone``."""


def date_zones(spec: TableSpec, path: Path) -> dict[str, str]:
    """The time zone of each date column of a Parquet source stored as a zoned timestamp.

    Parquet stores a zoned timestamp as a UTC instant; the zone's name survives only in the
    Arrow schema that pandas and pyarrow write beside it. UTC zones are left out.
    """
    dates = [c.name for c in spec.columns if c.kind == "date"]
    if not dates or path.suffix == ".csv":
        return {}
    first = path if path.is_file() else min(path.rglob("*.parquet"))
    schema = pq.read_schema(first)
    zones: dict[str, str] = {}
    for name in (d for d in dates if d in schema.names):
        stored = schema.field(name).type
        zone = stored.tz if pa.types.is_timestamp(stored) else None
        if zone is None or zone in _UTC:
            continue
        if not _OFFSET.match(zone):
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ContractError(
                    f"{spec.name}.{name}: stored as timestamps in the time zone {zone!r}, "
                    f"which is unknown (in {path.name}); write the column as dates, or as "
                    "timestamps in UTC or in a named zone such as Europe/Berlin"
                ) from None
        zones[name] = zone
    return zones


def local_dates(raw: ir.Table, zones: Mapping[str, str], engine: str) -> ir.Table:
    """``raw`` with each zoned timestamp column of ``zones`` as its calendar date in its zone.

    ``zones``: column -> an IANA name ("Europe/Berlin") or a fixed offset ("+01:00"), as
    :func:`date_zones` finds them. Midnight in Berlin is 23:00 UTC the day before; the
    contract keeps the Berlin date.
    """
    local: dict[str, ir.Value] = {}
    for name, zone in zones.items():
        col = raw[name]
        offset = _OFFSET.match(zone)
        if offset:
            sign, hours, minutes = offset.groups()
            shift = (int(hours) * 60 + int(minutes)) * (-1 if sign == "-" else 1)
            local[name] = (col + ibis.interval(minutes=shift)).date()
        elif engine == "pyspark":
            local[name] = _spark_wall_time(col, zone).date()
        else:
            local[name] = _duckdb_wall_time(zone, col).date()
    return raw.mutate(**local) if local else raw


def _cast(col: ir.Value, kind: str, style: Style = "plain") -> ir.Value:
    """``col`` as the contract ``kind``; ``style``: how a numeric column's text is written."""
    target = ibis.dtype(IBIS_TYPES[kind])
    if col.type() == target:
        return col
    if kind in ("float", "integer") and style != "plain" and isinstance(col, ir.StringValue):
        col = _number_text(col, style)
    if kind == "integer" and col.type().is_string():
        # "12.0" from a spreadsheet export is a whole number; "12.5" is not and stays NULL.
        number = col.try_cast("float64")
        return (number == number.floor()).ifelse(number, ibis.null()).try_cast("int64")
    if kind == "date" and col.type().is_string():
        # A date column may arrive as timestamps in text; keep the UTC calendar day.
        return col.try_cast(IBIS_TYPES["timestamp"]).date()
    return col.try_cast(target)


def _cannot_fail(source: ibis.DataType, kind: str) -> bool:
    """Whether casting ``source`` to the contract ``kind`` can never turn a value into NULL.

    Spark's timestamps have no zone in Ibis' eyes, so a Parquet timestamp is "cast" to
    timestamp('UTC') there; that cannot fail, and counting failures would cost one job.
    """
    target = ibis.dtype(IBIS_TYPES[kind])
    return source == target or (source.is_timestamp() and target.is_timestamp())


def conform(
    raw: ir.Table, spec: TableSpec, styles: Mapping[str, Style] | None = None
) -> tuple[ir.Table, list[Problem]]:
    """Cast the contract columns of ``raw`` to their types; report what does not fit.

    Missing required columns and values that do not parse are hard problems. Missing
    optional columns are added as empty, so later stages see one shape. ``styles``: how
    numeric columns held as text are written (:func:`number_styles`); a number that reads
    two ways is reported, not guessed.
    """
    styles = styles or {}
    problems: list[Problem] = []
    present = set(raw.columns)
    for col in spec.columns:
        if col.required and col.name not in present:
            problems.append(
                Problem(
                    spec.name,
                    col.name,
                    "required column",
                    "hard",
                    0,
                    (),
                    "required column is missing",
                    f"add the column {col.name} ({col.kind}); columns found: "
                    + ", ".join(raw.columns),
                )
            )
    if problems:
        return raw, problems

    cast = {
        c.name: (
            _cast(raw[c.name], c.kind, styles.get(c.name, "plain"))
            if c.name in present
            else ibis.null().cast(IBIS_TYPES[c.kind])
        ).name(c.name)
        for c in spec.columns
    }
    extras = [raw[c] for c in raw.columns if c not in cast]
    typed = raw.select(*cast.values(), *extras)

    failed = {
        c.name: (raw[c.name].notnull() & cast[c.name].isnull()).sum()
        for c in spec.columns
        if c.name in present and not _cannot_fail(raw[c.name].type(), c.kind)
    }
    if failed:
        counts = raw.aggregate(**{k: v.fill_null(0) for k, v in failed.items()}).to_pyarrow()
        for name, n in ((k, counts[k][0].as_py()) for k in failed):
            if not n:
                continue
            bad = raw.filter(raw[name].notnull() & cast[name].isnull())
            examples = [
                str(v)
                for v in bad.select(name)
                .distinct()
                .order_by(name)
                .limit(EXAMPLES)
                .to_pyarrow()[name]
                .to_pylist()
            ]
            kind = spec.column(name).kind
            two_ways = styles.get(name) == "ambiguous"
            problems.append(
                Problem(
                    spec.name,
                    name,
                    f"parses as {kind}",
                    "hard",
                    int(n),
                    tuple(repr(v) for v in examples),
                    "reads two ways, with '.' or ',' as the decimal point"
                    if two_ways
                    else f"cannot be read as a {kind}",
                    _PARSE_FIX["float" if two_ways else kind],
                )
            )
    return typed, problems


_PARSE_FIX = {
    "timestamp": "write timestamps as ISO-8601 text (2024-03-01, 2024-03-01T09:30:00 or "
    "2024-03-01T09:30:00+02:00; no zone means UTC) or as Parquet timestamps",
    "date": "write dates as ISO-8601 text (2024-03-01) or as Parquet dates",
    "float": "write numbers with a dot as decimal separator and no thousands separator",
    "integer": "write whole numbers without a decimal part or thousands separator",
    "string": "write the value as text",
}


#: Optional tables whose file, when given, must hold rows: an empty contracts export would
#: otherwise run on without a single renewal label, silently.
MUST_HAVE_ROWS = ("contracts",)


def read_data(
    data_dir: Path, con: BaseBackend | None = None, settings: DataConfig | None = None
) -> DataSet:
    """Find, read and type every contract table of ``data_dir``.

    ``settings``: the delimiter and encoding of CSV files, when detection is not wanted.
    Raises :class:`ContractError` when a required table is absent, or a file is empty or
    cannot be read (the message names the file and the setting to give). Problems with
    columns and values are collected in ``DataSet.problems`` for
    :func:`features.validate.validate`; what was detected rather than given, in
    ``DataSet.notes``.
    """
    con = con if con is not None else connect()
    settings = settings or DataConfig()
    sources = find_sources(Path(data_dir))
    tables: dict[str, ir.Table] = {}
    problems: list[Problem] = []
    stats: dict[str, TableStats] = {}
    notes: list[str] = []
    for name, path in sources.items():
        spec = TABLES[name]
        if path.is_file():
            not_empty(path)  # before an engine fails on it with its own words
        if path.suffix == ".csv":
            typed, found, assumed = _read_csv(con, spec, path, settings)
        else:
            raw = read_source(con, spec, path)
            typed, found, assumed = _read_parquet(con, spec, path, raw)
            described = parquet_stats(con, spec, path, raw)
            if described is not None:
                stats[name] = described
        tables[name] = typed
        problems.extend(found)
        if assumed:
            notes.append(f"{path.name}: " + "; ".join(assumed))
    return DataSet(con, tables, sources, tuple(problems), stats, tuple(notes))


def _read_parquet(
    con: BaseBackend, spec: TableSpec, path: Path, raw: ir.Table
) -> tuple[ir.Table, list[Problem], list[str]]:
    """Type one Parquet table; also say what was assumed about it."""
    zones = date_zones(spec, path)
    styles = number_styles(raw, spec)
    typed, found = conform(local_dates(raw, zones, con.name), spec, styles)
    assumed = [
        f"{col}: the calendar date in {zone} (a zoned timestamp)" for col, zone in zones.items()
    ]
    return typed, found, assumed + _style_notes(styles)


def _read_csv(
    con: BaseBackend, spec: TableSpec, path: Path, settings: DataConfig
) -> tuple[ir.Table, list[Problem], list[str]]:
    """Read and type one CSV table; also say what was assumed about it."""
    dialect = sniff(path, spec.column_names, settings.delimiter, settings.encoding)
    if dialect.empty and (spec.required or spec.name in MUST_HAVE_ROWS):
        why = "a required table" if spec.required else "what renewal labels are made of"
        raise ContractError(
            f"{path.name}: the file is empty: a header line and no rows ({spec.name} is {why}); "
            "export the table again with its rows"
            + ("" if spec.required else ", or remove the file to run without it")
        )
    with _read_errors(path, dialect):
        raw = read_source(con, spec, path, dialect)
        # On DuckDB the row count parses every line now; a bad line fails here, named.
        styles = number_styles(raw, spec, dialect.delimiter, parse_all=con.name == "duckdb")
        typed, found = conform(raw, spec, styles)
    return typed, found, list(dialect.notes) + _style_notes(styles)


def _style_notes(styles: Mapping[str, Style]) -> list[str]:
    return [f"{c} {_STYLE_NOTES[s]}" for c, s in styles.items() if s in _STYLE_NOTES]


@contextmanager
def _read_errors(path: Path, dialect: Dialect) -> Iterator[None]:
    """Turn the engine's CSV errors into a :class:`ContractError` naming the file."""
    try:
        yield
    except Exception as err:
        if not _engine_error(err):
            raise
        said = [
            line.strip()[:160]
            for line in str(err).splitlines()
            if line.strip() and not line.startswith(("Possible", "*"))
        ]
        raise ContractError(
            f"{path.name}: cannot be read as CSV with delimiter {shown(dialect.delimiter)} and "
            f"encoding {dialect.encoding}: {'; '.join(said[:3])}. Check the file around that "
            "line, or set data.delimiter and data.encoding in churn.yaml"
        ) from None


def _engine_error(err: Exception) -> bool:
    """Whether ``err`` is the engine's complaint about a file rather than a bug of ours."""
    if isinstance(err, duckdb.InvalidInputException | duckdb.ConversionException):
        return True
    # pyspark is optional: its errors are told by their module, not imported.
    module = type(err).__module__
    return module.startswith(("pyspark.errors", "py4j")) and "Analysis" not in type(err).__name__
