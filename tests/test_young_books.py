"""Young books train: one renewal cycle, two years, monthly terms, a one-year activity log.

Each world is simulated by :mod:`features.simulator` with knobs the default world does not
use (no pre-existing customers, short windows, monthly terms), and ``churn train`` runs on
its files as a user would. Every run ends with exit 0 and states what its check rests on,
except the one with too few outcomes to fit anything, which exits 2 naming the counts and
leaves nothing behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from features.simulator import SimConfig, simulate, write_world

SEED = int(os.environ.get("CHURN_TEST_SEED", "42"))  # as the ``seed`` fixture (module scope)
QUICK = """\
model:
  trials: 2
  backtest_trials: 1
  monotone: "on"
  num_threads: 1
  bootstrap: 100
engine:
  threads: 1
"""


def churn(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``churn`` as a user runs it: its store is ``mlruns/`` in ``cwd`` (MLflow exports the
    tracking URI of this process to its children, so it is removed)."""
    exe = Path(sys.executable).with_name("churn")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )


def world(root: Path, **settings: Any) -> Path:
    out = root / "data"
    write_world(simulate(SimConfig(seed=SEED, **settings)), out)
    (root / "churn.yaml").write_text(QUICK, encoding="utf-8")
    return out


def last_run(root: Path) -> mlflow.entities.Run:
    """The latest run in ``root``'s store (read with its own client: no global URI is set)."""
    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlruns/mlflow.db")
    (exp,) = [e for e in client.search_experiments() if e.name == "churn-health"]
    (run,) = client.search_runs([exp.experiment_id], max_results=1)
    return run


def test_two_years_with_the_first_renewals_one_year_in(tmp_path: Path) -> None:
    data = world(tmp_path, accounts=1000, start=date(2023, 1, 1), end=date(2025, 1, 1),
                 preexisting_share=0.0)  # fmt: skip
    run = churn("train", "--data", str(data), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    out = " ".join(run.stdout.split())
    assert "How this was checked: out of time" in out
    assert "skipped cut-off 2024-01-02: training part has" in out
    assert "Registered version 1" in out
    tags = last_run(tmp_path).data.tags
    assert tags["evaluation_kind"] == "out_of_time" and tags["folds_skipped"] != "none"


@pytest.mark.parametrize(
    ("settings", "label"),
    [
        ({"accounts": 1500, "end": date(2024, 1, 1)}, ()),  # one renewal cycle, annual terms
        ({"accounts": 400, "end": date(2024, 1, 1), "term_months": 1}, ()),  # monthly terms
        ({"accounts": 1500, "end": date(2024, 1, 1)},
         ("--label", "inactivity", "--horizon", "180")),  # a one-year activity log
    ],
    ids=["one-cycle-annual", "one-year-monthly", "one-year-inactivity-180"],
)
def test_a_single_year_still_trains_and_says_what_it_could_check(
    tmp_path: Path, settings: dict[str, Any], label: tuple[str, ...]
) -> None:
    data = world(tmp_path, start=date(2023, 1, 1), **settings)
    run = churn("train", "--data", str(data), *label, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    out = " ".join(run.stdout.split())
    assert "Registered version 1" in out
    kind = last_run(tmp_path).data.tags["evaluation_kind"]
    if kind == "cross_fitted":
        assert "How this was checked: accounts held out (cross-fitted)" in out
        assert "not out of time" in out
    else:
        assert "How this was checked: out of time" in out
    assert "This check rests on" in out and "months of outcomes" in out


def test_too_few_outcomes_exit_2_with_the_counts_and_leave_nothing(tmp_path: Path) -> None:
    data = world(tmp_path, accounts=40, start=date(2023, 1, 1), end=date(2024, 1, 1))
    contracts = pd.read_parquet(data / "contracts.parquet")
    churned = int((contracts["outcome"] == "churned").sum())
    run = churn("train", "--data", str(data), cwd=tmp_path)
    assert run.returncode == 2, run.stderr[-3000:]
    err = " ".join(run.stderr.split())
    assert f"holds {churned} churned and" in err and "at least 30 churned" in err
    assert "model.min_churned" in err and "internal error" not in err
    assert not (tmp_path / "mlruns").exists(), "a failed run leaves no store behind"
