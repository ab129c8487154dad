"""Issue 15 benchmark: ``churn explain`` and ``churn score`` as a user runs them, timed whole.

Each command runs in its own process (imports, model loading, validation included), with
the champion of the MLflow store in ``--cwd`` (e.g. the folder ``churn demo`` ran in). With
``--old``, a checkout of an earlier commit (``git worktree add /tmp/old <commit>``) runs
the same commands through ``PYTHONPATH``, alternating with the current code, so that both
see the same machine:

    python benchmarks/bench_commands.py --data /tmp/demo/out/world --as-of 2026-01-01 \
        --cwd /tmp/demo --old /tmp/old --rounds 2

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


def _churn() -> str:
    found = shutil.which("churn", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("churn is not installed beside this Python: run make install")
    return found


def _run(args: list[str], cwd: Path, old: Path | None) -> float:
    env = dict(os.environ)
    if old is not None:
        env["PYTHONPATH"] = str(old)
    start = time.perf_counter()
    done = subprocess.run([_churn(), *args], cwd=cwd, env=env, capture_output=True, text=True)
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
    codes: list[tuple[str, Path | None]] = [("new", None)]
    if a.old is not None:
        codes.append(("old", a.old.resolve()))
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for code, old in codes if r % 2 == 0 else codes[::-1]:
                out = Path(tmp) / f"{code}-{r}"
                commands = {
                    "explain": ["explain", account, "--data", str(a.data), "--as-of", a.as_of,
                                "--out", str(out / "explain")],
                    "score": ["score", "--data", str(a.data), "--as-of", a.as_of,
                              "--out", str(out / "scores")],
                }  # fmt: skip
                for name, args in commands.items():
                    s = _run(args, a.cwd, old)
                    times.setdefault((name, code), []).append(s)
                    print(f"round {r + 1} {code} {name}: {s:.1f} s (load {os.getloadavg()[0]:.2f})")
    print(f"\n{a.data}: explain {account}, score at {a.as_of}")
    for (name, code), values in sorted(times.items()):
        print(f"  {name:8} {code}: {min(values):.1f}-{max(values):.1f} s over {len(values)} runs")


if __name__ == "__main__":
    main()
