"""Read a data directory into typed Ibis tables, without loading them into memory.

Each table is found as ``<name>.parquet``, ``<name>.csv`` or a folder ``<name>/`` of Parquet
parts, read in place by the engine (DuckDB by default), and its contract columns are cast
to the contract's types: timestamps to UTC, dates to dates. Values that cannot be cast are
reported as problems by :func:`conform`, never silently turned into missing values.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
from ibis.backends import BaseBackend

from features.contract import IBIS_TYPES, TABLES, ColumnStats, TableSpec
from features.errors import ContractError, Problem
from features.resources import free_cores

EXAMPLES = 3


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


def connect(
    engine: str = "duckdb",
    threads: int | None = None,
    memory_limit: str | None = None,
    **options: Any,
) -> BaseBackend:
    """Open an engine connection in UTC.

    ``threads`` sizes DuckDB's thread pool; by default the free cores, never more.
    ``memory_limit`` caps DuckDB's memory (e.g. ``"3GB"``; default: DuckDB's, 80% of RAM):
    beyond it, joins, sorts and aggregates spill to disk, slower but within the cap. For
    Spark, ``options`` go to :func:`features.spark.spark_connect` (``master``, Spark
    settings such as ``spark.driver.memory``), and ``threads`` without a ``master`` runs
    local Spark on that many cores.
    """
    if engine == "duckdb":
        con = ibis.duckdb.connect(**options)
        con.raw_sql("SET TimeZone = 'UTC'")
        con.raw_sql(f"SET threads = {int(threads or free_cores())}")
        if memory_limit:
            con.raw_sql(f"SET memory_limit = '{memory_limit}'")
        return con
    if engine == "spark":
        from features.spark import spark_connect  # pyspark is an optional extra

        if threads and "master" not in options:
            options["master"] = f"local[{int(threads)}]"
        return spark_connect(**options)
    raise ValueError(f"engine must be 'duckdb' or 'spark', got {engine!r}")


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


def _csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        return next(csv.reader(f), [])


def read_source(con: BaseBackend, spec: TableSpec, path: Path) -> ir.Table:
    """Read one table in place, as stored: CSV contract columns stay text until cast."""
    if path.suffix == ".csv":
        header = _csv_header(path)
        if con.name == "duckdb":
            # Contract columns as text, so that a bad cell is caught by conform() rather than
            # failing the read or becoming NULL; extra columns keep DuckDB's type inference.
            text = {c: "VARCHAR" for c in header if c in spec.column_names}
            return con.read_csv(path, types=text, header=True)
        if con.name == "pyspark":
            return _spark_csv(con, spec, path)
        return con.read_csv(str(path), header=True)
    return con.read_parquet(_parquet_glob(path))


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


def _spark_csv(con: BaseBackend, spec: TableSpec, path: Path) -> ir.Table:
    """Read a CSV on Spark the way DuckDB does: contract columns as text, others inferred.

    Spark's own inference would parse contract columns before conform() sees them ("12.5"
    read as a double, then cast to 12 rather than reported). A first pass infers the other
    columns' types; the second reads with that schema. RFC 4180 quoting as pandas and
    spreadsheets write it: quotes doubled inside quoted cells, which may span lines.
    """
    from ibis.backends.sql.datatypes import PySparkType

    options = {"header": True, "escape": '"', "multiLine": True}
    inferred = con.read_csv(str(path), **options).schema()
    ddl = ", ".join(
        f"`{name}` " + ("STRING" if name in spec.column_names else PySparkType.to_string(dtype))
        for name, dtype in inferred.items()
    )
    return con.read_csv(str(path), schema=ddl, inferSchema=False, **options)


def _cast(col: ir.Value, kind: str) -> ir.Value:
    target = ibis.dtype(IBIS_TYPES[kind])
    if col.type() == target:
        return col
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


def conform(raw: ir.Table, spec: TableSpec) -> tuple[ir.Table, list[Problem]]:
    """Cast the contract columns of ``raw`` to their types; report what does not fit.

    Missing required columns and values that do not parse are hard problems. Missing
    optional columns are added as empty, so later stages see one shape.
    """
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
            _cast(raw[c.name], c.kind)
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
            shown = [
                str(v)
                for v in bad.select(name)
                .distinct()
                .order_by(name)
                .limit(EXAMPLES)
                .to_pyarrow()[name]
                .to_pylist()
            ]
            kind = spec.column(name).kind
            problems.append(
                Problem(
                    spec.name,
                    name,
                    f"parses as {kind}",
                    "hard",
                    int(n),
                    tuple(repr(v) for v in shown),
                    f"cannot be read as a {kind}",
                    _PARSE_FIX[kind],
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


def read_data(data_dir: Path, con: BaseBackend | None = None) -> DataSet:
    """Find, read and type every contract table of ``data_dir``.

    Raises :class:`ContractError` when a required table is absent. Problems with columns and
    values are collected in ``DataSet.problems`` for :func:`features.validate.validate`.
    """
    con = con if con is not None else connect()
    sources = find_sources(Path(data_dir))
    tables: dict[str, ir.Table] = {}
    problems: list[Problem] = []
    stats: dict[str, TableStats] = {}
    for name, path in sources.items():
        raw = read_source(con, TABLES[name], path)
        typed, found = conform(raw, TABLES[name])
        tables[name] = typed
        problems.extend(found)
        described = parquet_stats(con, TABLES[name], path, raw)
        if described is not None:
            stats[name] = described
    return DataSet(con, tables, sources, tuple(problems), stats)
