"""Stages wired to their inputs and outputs; the CLI, MLflow Projects and notebooks call these.

Each function reads, calls the pure stage functions of :mod:`features` and :mod:`models`,
and writes, so I/O stays here at the edge.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Literal

from features.read import connect, read_data
from features.training import TrainingSet, build_scoring_set, write_dictionary
from features.validate import CleanData, Report, load, validate
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
    con = connect(
        cfg.engine.name,
        threads=cfg.engine.threads,
        **({"master": cfg.engine.spark_master} if cfg.engine.name == "spark" else {}),
    )
    return validate(read_data(data_dir, con))


def open_clean(data_dir: Path, cfg: ChurnConfig) -> CleanData:
    """Read and validate on the configured engine; raise on a hard problem."""
    con = connect(
        cfg.engine.name,
        threads=cfg.engine.threads,
        **({"master": cfg.engine.spark_master} if cfg.engine.name == "spark" else {}),
    )
    return load(data_dir, con)


def write_atomically(frame_writer: Callable[[Path], None], out: Path) -> None:
    """Write through a temporary sibling and rename, so a crash leaves no partial file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # Keep the suffix: writers pick the format from it.
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}{out.suffix}")
    try:
        frame_writer(tmp)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()


def build_features(
    data_dir: Path, as_of: date, out: Path, cfg: ChurnConfig, progress: Progress = None
) -> TrainingSet:
    """Feature rows of every account eligible at ``as_of``, written to ``out`` (Parquet).

    The feature dictionary goes beside it as ``<out>.features.json``.
    """
    clean = open_clean(data_dir, cfg)
    ts = build_scoring_set(clean.tables, as_of, cfg.labels, cfg.features, progress=progress)
    write_atomically(lambda p: ts.frame.to_parquet(p, index=False), out)
    write_atomically(
        lambda p: write_dictionary(ts.features, p), out.with_suffix(".features.json")
    )
    return ts
