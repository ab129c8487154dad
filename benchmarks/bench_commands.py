"""Issue 15 benchmark: ``churn explain`` and ``churn score`` as a user runs them, timed whole.

Each command runs in its own process (imports, model loading, validation included), with
the champion of the MLflow store in ``--cwd`` (e.g. the folder ``churn demo`` ran in). With
``--old``, a checkout of an earlier commit (``git worktree add /tmp/old <commit>``) runs
the same commands through ``PYTHONPATH``, alternating with the current code, so that both
see the same machine:

    python benchmarks/bench_commands.py --data /tmp/demo/out/world --as-of 2026-01-01 \
        --cwd /tmp/demo --old /tmp/old --rounds 2

The current code runs twice per round: "cold", with an empty folder of remembered SQL
(``CHURN_SQL_CACHE``, :mod:`features.compiled`), as the first run of a day; and "warm",
with the folder of earlier runs, primed before the first round by an explanation of
another account and a score of the same day (untimed), as every later run of the day.

Outputs go to a temporary folder; nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

#: The ``churn`` script of commits before the entry point moved to ``pipelines.startup``.
OLD_ENTRY = "import sys; sys.argv[0] = 'churn'; from pipelines.cli import main; sys.exit(main())"


def _churn() -> str:
    found = shutil.which("churn", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("churn is not installed beside this Python: run make install")
    return found


def _run(args: list[str], cwd: Path, old: Path | None, sql: Path | None = None) -> float:
    env = dict(os.environ)
    if old is not None:
        env["PYTHONPATH"] = str(old)
    if sql is not None:
        env["CHURN_SQL_CACHE"] = str(sql)
    # An older checkout runs as its own ``churn`` script did (the entry point has moved).
    command = [_churn()] if old is None else [sys.executable, "-c", OLD_ENTRY]
    start = time.perf_counter()
    done = subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"churn {' '.join(args)} failed ({done.returncode}):\n{done.stdout}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--as-of", required=True)
    p.add_argument("--account", help="the account to explain (default: one of the accounts)")
    p.add_argument("--cwd", type=Path, default=Path.cwd(), help="where the MLflow store is")
    p.add_argument("--old", type=Path, help="a checkout of the code to compare with")
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    accounts = pd.read_parquet(a.data / "accounts.parquet", columns=["account_id"])
    account = a.account or str(accounts["account_id"].iloc[len(accounts) // 8])
    other = str(accounts["account_id"].iloc[len(accounts) // 4])

    def commands(out: Path, who: str = account) -> dict[str, list[str]]:
        return {
            "explain": ["explain", who, "--data", str(a.data), "--as-of", a.as_of,
                        "--out", str(out / "explain")],
            "score": ["score", "--data", str(a.data), "--as-of", a.as_of,
                      "--out", str(out / "scores")],
        }  # fmt: skip

    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "sql-warm"
        for args in commands(Path(tmp) / "prime", other).values():
            _run(args, a.cwd, None, warm)
        codes: list[tuple[str, Path | None, Path | None]] = [("new, cold", None, None),
                                                             ("new, warm", None, warm)]  # fmt: skip
        if a.old is not None:
            codes.append(("old", a.old.resolve(), None))
        for r in range(a.rounds):
            for code, old, sql in codes if r % 2 == 0 else codes[::-1]:
                out = Path(tmp) / f"{code.replace(', ', '-')}-{r}"
                for name, args in commands(out).items():
                    cold = Path(tempfile.mkdtemp(dir=tmp, prefix="sql-cold-"))
                    s = _run(args, a.cwd, old, sql or cold)
                    times.setdefault((name, code), []).append(s)
                    print(f"round {r + 1} {code} {name}: {s:.1f} s (load {os.getloadavg()[0]:.2f})")
    print(f"\n{a.data}: explain {account}, score at {a.as_of}")
    for (name, code), values in sorted(times.items()):
        print(f"  {name:8} {code}: {min(values):.1f}-{max(values):.1f} s over {len(values)} runs")


if __name__ == "__main__":
    main()
