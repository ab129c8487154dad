"""Stages wired to their inputs and outputs; the CLI, MLflow Projects and notebooks call these.

Each function reads, calls the pure stage functions of :mod:`features` and :mod:`models`,
and writes, so I/O stays here at the edge.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from features.read import connect, read_data
from features.validate import Report, validate
from pipelines.config import ChurnConfig

Progress = Callable[[str, float], None] | None


def simulate_world(
    out: Path,
    accounts: int,
    seed: int,
    fmt: Literal["parquet", "csv"],
    progress: Progress = None,
) -> str:
    """Simulate a world and write it to ``out`` (truth beside it); return a one-line summary."""
    from features.simulator import SimConfig, simulate, write_world

    world = simulate(SimConfig(accounts=accounts, seed=seed), progress=progress)
    write_world(world, out, fmt)
    t = world.tables
    return (
        f"Simulated {len(t['accounts']):,} accounts, {len(t['contracts']):,} terms, "
        f"{len(t['events']):,} events into {out}"
    )


def validate_data(data_dir: Path, cfg: ChurnConfig) -> Report:
    """Read and check a data directory on the configured engine."""
    con = connect(cfg.engine.name, threads=cfg.engine.threads)
    return validate(read_data(data_dir, con))
