"""The scores directory and the score history: reading and writing them, atomically.

The directory is written atomically: everything goes to a temporary sibling folder that
replaces the old one with a rename, so a crash leaves the previous output or none. The score
history (``scoring.history``, its columns described in :mod:`pipelines.scoring`) is one
Parquet file that every run reads and rewrites, replaced atomically, and only after the
scores directory was written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from features.errors import ContractError
from pipelines.files import write_atomically
from pipelines.report import neutralise_csv
from pipelines.scoring import FEATURE, ScoreOutput

#: The columns of scores.parquet / scores.csv fixed by the data contract, in order
#: (``overdue`` is the contract's optional column: always written).
CONTRACT_COLUMNS = (
    "account_id", "name", "segment", "csm", "as_of", "churn_probability", "health_score",
    "band", "renewal_date", "arr", "drivers", "play", "model_version", "overdue",
)  # fmt: skip
EXTRA_COLUMNS = ("priority", "top_driver", "change", "contract_id", "lead_days", "model_id")


def contract_frame(scores: pd.DataFrame) -> pd.DataFrame:
    """The scores with the contract's columns first, then the optional extras."""
    return scores[[*CONTRACT_COLUMNS, *EXTRA_COLUMNS]].copy()


def write_scores_dir(
    out: Path,
    output: ScoreOutput,
    report_html: str,
    crash_after: str | None = None,
    write_parquet: Callable[[pd.DataFrame, Path], object] | None = None,
) -> None:
    """Write scores.parquet, scores.csv, drift.csv, outlook.json and report.html atomically
    (all or none).

    The score history is not part of it: :func:`write_history` replaces it afterwards.

    ``crash_after`` names a file after which to fail, to test that nothing partial remains.
    ``write_parquet(table, path)`` writes scores.parquet instead of pandas (the Spark path
    has Spark write it); it gets the contract table and the file's path in the temporary
    folder, and must leave one Parquet file there.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        table = contract_frame(output.scores)
        write_table = write_parquet or (lambda t, p: t.to_parquet(p, index=False))
        steps: list[tuple[str, Callable[[Path], object]]] = [
            ("scores.parquet", lambda p: write_table(table, p)),
            ("scores.csv", lambda p: neutralise_csv(table).to_csv(p, index=False)),
            ("drift.csv", lambda p: output.drift.to_csv(p, index=False)),
            (
                "outlook.json",
                lambda p: p.write_text(json.dumps(output.outlook, indent=1), encoding="utf-8"),
            ),
            ("report.html", lambda p: p.write_text(report_html, encoding="utf-8")),
        ]
        for name, write in steps:
            write(tmp / name)
            if crash_after == name:
                raise RuntimeError(f"injected crash after writing {name}")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def read_history(path: Path) -> pd.DataFrame | None:
    """The score history of earlier runs (``scoring.history``), or None before the first."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise ContractError(
            f"scoring.history: cannot read the score history {path}: {err}. Move the file "
            "away to start a new history, or point scoring.history at another file."
        ) from err


def write_history(path: Path, history: pd.DataFrame) -> None:
    """Replace the score history at ``path`` atomically (a temporary sibling, then a rename).

    Call it only after the scores directory was written, so that a failed run changes
    neither. A feature column whose runs disagree on its type (text in one, numbers in
    another) is written as text.
    """
    mixed = {
        c: history[c].map(lambda v: None if pd.isna(v) else str(v)).astype("object")
        for c in history.columns
        if c.startswith(FEATURE) and history[c].dtype == object
    }
    table = history.assign(**mixed) if mixed else history
    write_atomically(lambda p: table.to_parquet(p, index=False), Path(path))
