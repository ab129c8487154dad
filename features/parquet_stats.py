"""What a Parquet source's own statistics say, read from its footers without its rows.

:mod:`features.validate` settles the rules these statistics answer (no empty cell, no value
below zero) without counting rows, and reads the time column's bounds from them. DuckDB
reads the footers whichever engine reads the rows: they are the files' own, and the files
are in the driver's file system (:func:`features.read.find_sources`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

import ibis
import ibis.expr.types as ir
from ibis.backends import BaseBackend

from features.conform import cannot_fail
from features.contract import ColumnStats, TableSpec


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


def hidden(name: str) -> bool:
    """Whether a file or folder name is one of Hadoop's hidden ones, which Spark skips when
    it reads a folder: it starts with ``.``, or with ``_`` and is no ``key=value`` partition
    (``_SUCCESS``, the ``_temporary/`` of an unfinished or failed write)."""
    return name.startswith(".") or (name.startswith("_") and "=" not in name)


def parquet_parts(path: Path) -> tuple[list[Path], list[Path]]:
    """The Parquet files of a source, and those it leaves out: the file itself, or the
    ``.parquet`` files of a folder at any depth but the :func:`hidden` ones (Spark reads
    the same), each list sorted."""
    if not path.is_dir():
        return [path], []
    read: list[Path] = []
    skipped: list[Path] = []
    for f in sorted(path.rglob("*.parquet")):
        hides = any(hidden(part) for part in f.relative_to(path).parts)
        (skipped if hides else read).append(f)
    return read, skipped


def _sql_files(files: list[Path]) -> str:
    """``files`` as a DuckDB list of quoted paths."""
    return "[{}]".format(", ".join("'{}'".format(str(f).replace("'", "''")) for f in files))


def parquet_stats(
    con: BaseBackend, spec: TableSpec, path: Path, raw: ir.Table
) -> TableStats | None:
    """The row count and the row groups' statistics of a Parquet source, read from its
    footers (DuckDB's ``parquet_metadata``: ``con`` when it is DuckDB, else
    :func:`_footer_reader`), the files of :func:`parquet_parts`; ``None`` for CSV.

    Only contract columns stored in their contract type (any timestamp for a timestamp) are
    described: their values are the typed table's. A column's count or bound is ``None``
    unless every row group gives it.
    """
    if path.suffix == ".csv":
        return None
    if con.name != "duckdb":
        con = _footer_reader()
    stored = [
        c for c in spec.columns if c.name in raw.columns and cannot_fail(raw[c.name].type(), c.kind)
    ]
    meta = f"parquet_metadata({_sql_files(parquet_parts(path)[0])})"
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


@cache
def _footer_reader() -> BaseBackend:
    """A DuckDB connection of this process, in UTC, that reads the footers of the files
    another engine reads. On Spark the rules the footers settle then start no job: reading
    and validating the demo world on a new local session took 9.8-13.1 s against
    12.8-16.9 s, and a second time in that session 4.1-5.1 s against 5.5-8.6 s (3
    alternating runs).
    """
    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone = 'UTC'")
    con.raw_sql("SET threads = 1")
    return con
