"""A digest of every input file of a data folder: what a run was trained on, byte for byte.

MLflow's dataset digest hashes the first rows of a frame; two exports that differ further
down get the same digest. :func:`data_fingerprint` reads every file the reader reads (each
contract table's file, or every Parquet part of its folder) to the end, so a run records
exactly which data it saw, and a retrain can tell whether it sees the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from features.read import find_sources

#: Read and hashed this many bytes at a time.
CHUNK = 1 << 20


def _files(source: Path) -> list[Path]:
    """The files of one table: the file itself, or the Parquet parts of its folder."""
    return sorted(source.rglob("*.parquet")) if source.is_dir() else [source]


def file_digest(path: Path) -> str:
    """SHA-256 of the whole file, hex."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def data_fingerprint(data_dir: Path) -> dict[str, Any]:
    """Every input file of ``data_dir`` with its size and SHA-256, and one digest of them all.

    ``files`` maps each file's path relative to ``data_dir`` (POSIX form) to ``bytes`` and
    ``sha256``; ``digest`` hashes that listing, so it changes when any byte, name or file
    changes, and only then. Files no contract table reads (notes, other formats) are left
    out: they cannot change a model.
    """
    files: dict[str, dict[str, Any]] = {}
    for source in find_sources(data_dir).values():
        for path in _files(source):
            rel = path.relative_to(data_dir).as_posix()
            files[rel] = {"bytes": path.stat().st_size, "sha256": file_digest(path)}
    listing = json.dumps(files, sort_keys=True).encode()
    return {"digest": hashlib.sha256(listing).hexdigest(), "files": dict(sorted(files.items()))}


def changed_files(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Files that differ between two fingerprints, each with what changed, sorted by path:
    ``"events.parquet (changed)"``, ``"tickets.csv (missing now)"``, ``"x.csv (new)"``."""
    old, new = recorded.get("files", {}), current.get("files", {})
    out = []
    for path in sorted({*old, *new}):
        if path not in new:
            out.append(f"{path} (missing now)")
        elif path not in old:
            out.append(f"{path} (new)")
        elif old[path] != new[path]:
            out.append(f"{path} (changed)")
    return out
