"""``write_world``: the only place the simulator touches the file system."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.progress import Progress
from simulator.config import SimConfig
from simulator.world import TABLES, World, simulate

EVENTS_PART_ROWS = 5_000_000
"""Above this many events, ``events`` is written as a folder of Parquet parts."""

# Columns holding calendar dates (no time, no zone): written as Parquet date32.
DATE_COLUMNS = frozenset({"start_date", "end_date", "decision_date", "play_day"})
CSV_TIMESTAMP = "%Y-%m-%dT%H:%M:%S+00:00"


def truth_path(out_dir: Path) -> Path:
    """Where the truth of a data directory lives: beside it, never inside it."""
    return out_dir.parent / f"{out_dir.name}-truth.parquet"


def to_arrow(df: pd.DataFrame) -> pa.Table:
    """Arrow table with plain string columns, UTC timestamps and date32 dates."""
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in df.columns:
        col = df[name]
        arr = pa.array(col, from_pandas=True)
        if isinstance(arr.type, pa.DictionaryType):
            arr = arr.dictionary_decode()
        if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
            arr = arr.cast(pa.string())
        if name in DATE_COLUMNS and pa.types.is_timestamp(arr.type):
            arr = arr.cast(pa.date32())
        columns[name] = arr
    return pa.table(columns)


def _csv_ready(table: pa.Table) -> pa.Table:
    """Timestamps as ISO-8601 text with an explicit UTC offset; nulls stay empty cells."""
    cols = []
    for field, col in zip(table.schema, table.columns, strict=True):
        if pa.types.is_timestamp(field.type):
            seconds = col.cast(pa.timestamp("s", tz="UTC"))
            col = pc.strftime(seconds, format=CSV_TIMESTAMP)
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def _write_parquet(table: pa.Table, path: Path) -> None:
    # Fixed options and no wall-clock metadata, so that equal worlds give equal bytes.
    pq.write_table(table, path, compression="zstd", write_statistics=True)


def _clear(out_dir: Path, name: str) -> None:
    """Remove earlier output of table ``name`` in any form, so forms never mix."""
    for suffix in (".parquet", ".csv"):
        (out_dir / f"{name}{suffix}").unlink(missing_ok=True)
    folder = out_dir / name
    if folder.is_dir():
        shutil.rmtree(folder)


def write_world(
    world: World,
    out_dir: Path,
    fmt: Literal["parquet", "csv"] = "parquet",
) -> None:
    """Write the eight tables into ``out_dir`` and the truth beside it.

    Parameters
    ----------
    world
        The simulated world.
    out_dir
        The data directory; created if missing. Each table becomes ``<table>.parquet``
        (or ``.csv``); with Parquet and more than ``EVENTS_PART_ROWS`` events, ``events``
        is a folder ``events/part-000.parquet``, ... instead. The truth goes to
        ``out_dir.parent / f"{out_dir.name}-truth.parquet"``, outside the data directory
        so that the pipeline can never read it by accident.
    fmt
        ``"parquet"`` or ``"csv"``. CSV timestamps are ISO-8601 with ``+00:00``, dates
        ``YYYY-MM-DD``, missing values empty cells. The truth is always Parquet.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv'; got {fmt!r}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        _clear(out_dir, name)
        table = to_arrow(world.tables[name])
        if fmt == "csv":
            schema = _csv_ready(table.slice(0, 0)).schema
            with pacsv.CSVWriter(out_dir / f"{name}.csv", schema) as writer:
                # In slices, so that formatting 50 million timestamps never doubles memory.
                for start in range(0, table.num_rows, EVENTS_PART_ROWS):
                    writer.write_table(_csv_ready(table.slice(start, EVENTS_PART_ROWS)))
        elif name == "events" and table.num_rows > EVENTS_PART_ROWS:
            folder = out_dir / name
            folder.mkdir()
            for k, start in enumerate(range(0, table.num_rows, EVENTS_PART_ROWS)):
                part = table.slice(start, EVENTS_PART_ROWS)
                _write_parquet(part, folder / f"part-{k:03d}.parquet")
        else:
            _write_parquet(table, out_dir / f"{name}.parquet")
    _write_parquet(to_arrow(world.truth), truth_path(out_dir))


def simulate_to(
    out: Path,
    accounts: int,
    seed: int,
    fmt: Literal["parquet", "csv"],
    progress: Progress = None,
) -> str:
    """Simulate a world and write it to ``out`` (truth beside it); return a one-line summary."""
    world = simulate(SimConfig(accounts=accounts, seed=seed), progress=progress)
    write_world(world, out, fmt)
    t = world.tables
    return (
        f"Simulated {len(t['accounts']):,} accounts, {len(t['contracts']):,} terms, "
        f"{len(t['events']):,} events into {out}"
    )
