"""Date columns stored as zoned timestamps: their zone, and their calendar date in it.

A Parquet date column written from zoned timestamps (pandas, pyarrow) keeps its zone only in
the Arrow schema beside it: :func:`date_zones` finds it, and :func:`local_dates` keeps the
calendar date in that zone (midnight in Berlin is 23:00 UTC the day before).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.parquet as pq

from features.contract import TableSpec
from features.errors import ContractError

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
