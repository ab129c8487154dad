"""Atomic file writes: a crash leaves the previous file or none, never half of one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def write_atomically(writer: Callable[[Path], object], out: Path) -> None:
    """Call ``writer`` on a temporary sibling of ``out``, then rename it to ``out``.

    The temporary name keeps the suffix, since writers pick the format from it.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}{out.suffix}")
    try:
        writer(tmp)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
