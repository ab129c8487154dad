"""Read a data directory into typed Ibis tables, without loading them into memory.

Each table is found as ``<name>.parquet``, ``<name>.csv`` or a folder ``<name>/`` of Parquet
parts, read in place by the engine (DuckDB by default), and its contract columns are cast
to the contract's types: timestamps to UTC, dates to dates (a zoned timestamp keeps its
calendar date in its own zone, :mod:`features.date_zones`). Values that cannot be cast are
reported as problems by :func:`features.conform.conform`, never silently turned into
missing values.

CSV files come as spreadsheets write them: :mod:`features.sniff` tells their encoding and
delimiter, and numbers with thousands separators or a decimal comma are read when their
reading is unambiguous (:mod:`features.number_styles`). What was assumed is listed in
``DataSet.notes``; a file that cannot be read is a :class:`ContractError` naming it and the
setting to give.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import duckdb
import ibis
import ibis.expr.types as ir
from ibis.backends import BaseBackend

from features.compiled import default_folder, remember_compiled
from features.config import DataConfig
from features.conform import conform
from features.contract import TABLES, TableSpec
from features.date_zones import date_zones, local_dates
from features.errors import ContractError, Problem
from features.number_styles import number_styles, style_notes
from features.parquet_stats import TableStats, parquet_parts, parquet_stats
from features.resources import free_cores
from features.sniff import Dialect, not_empty, shown, sniff, transcode

#: DuckDB's default memory cap (``engine.memory_limit``): with Python, the frames and the
#: model on top, a run stays within 4 GiB.
MEMORY_LIMIT = "3GiB"


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
    connection, slower but within the cap. A DuckDB connection compiles each distinct
    query once (:mod:`features.compiled`), remembering its SQL in the user's cache folder
    (``CHURN_SQL_CACHE``: another folder, or ``off``). For
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
        remember_compiled(con, default_folder())
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


#: Why a folder's Parquet files are left out (:func:`features.parquet_stats.hidden`).
HIDDEN = (
    "whose names start with _ or . (Hadoop's hidden files, such as an unfinished write's "
    "_temporary/; Spark skips them too)"
)


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
            parts, hidden = parquet_parts(found[0])
            if not parts:
                why = f": its {len(hidden)} are files {HIDDEN}" if hidden else ""
                raise ContractError(
                    f"{name}: the folder {found[0]} holds no .parquet parts to read{why}; "
                    "a table given as a folder must be a set of Parquet files, named without "
                    "a leading _ or ."
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
    return con.read_parquet([str(f) for f in parquet_parts(path)[0]])


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
        skipped = parquet_parts(path)[1]
        if skipped:
            first = ", ".join(str(f.relative_to(path)) for f in skipped[:3])
            more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
            notes.append(
                f"{path.name}/: {len(skipped)} Parquet file(s) not read, {HIDDEN}: {first}{more}"
            )
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
    return typed, found, assumed + style_notes(styles)


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
    return typed, found, list(dialect.notes) + style_notes(styles)


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
