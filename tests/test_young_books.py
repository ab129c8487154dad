"""Young books train: one renewal cycle, two years, monthly terms, a one-year activity log.

Each world is simulated by :mod:`simulator` with knobs the default world does not
use (no pre-existing customers, short windows, monthly terms), and ``churn train`` runs on
its files as a user would (its entry point, in this process: no interpreter start-up).
Every run ends with exit 0 and states what its check rests on, except the one with too few
outcomes to fit anything, which exits 2 naming the counts and leaves nothing behind.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from simulator import SimConfig, simulate, write_world

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


@dataclass(frozen=True)
class Ran:
    """What ``churn`` printed, and its exit code."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def churn(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """``churn ARGS`` as a user runs it from ``cwd`` (its store is ``mlruns/`` there), in
    this process: ``pipelines.cli.main`` with its exit code. MLflow's global tracking URI
    and the variables it exports are put back afterwards."""
    from pipelines.cli import main

    saved = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(key, raising=False)

    def run(*args: str, cwd: Path) -> Ran:
        monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", ["churn", *args])
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main()
            raise SystemExit(0)
        out = capsys.readouterr()
        return Ran(int(done.value.code or 0), out.out, out.err)

    yield run
    mlflow.set_tracking_uri(saved[0])
    mlflow.set_registry_uri(saved[1])


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


def test_two_years_with_the_first_renewals_one_year_in(churn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
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
        (
            {"accounts": 1500, "end": date(2024, 1, 1)},
            ("--label", "inactivity", "--horizon", "180"),
        ),  # a one-year activity log: six months of snapshots, each known 180 days later
    ],
    ids=["one-cycle-annual", "one-year-monthly", "one-year-inactivity-180"],
)
def test_a_single_year_still_trains_and_says_what_it_could_check(  # type: ignore[no-untyped-def]
    churn, tmp_path: Path, settings: dict[str, Any], label: tuple[str, ...]
) -> None:
    # One year holds no quarterly cut-off with 30 churned and 30 retained outcomes on both
    # sides: every one is skipped, and the check holds out accounts instead.
    data = world(tmp_path, start=date(2023, 1, 1), **settings)
    run = churn("train", "--data", str(data), *label, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    out = " ".join(run.stdout.split())
    assert "Registered version 1" in out
    tags = last_run(tmp_path).data.tags
    assert tags["evaluation_kind"] == "cross_fitted"
    assert tags["folds_used"] == "accounts 1/4, accounts 2/4, accounts 3/4, accounts 4/4"
    assert out.count("skipped cut-off") == 4
    assert "How this was checked: accounts held out (cross-fitted)" in out
    assert "not out of time" in out and "scored in 4 folds of held-out accounts" in out
    assert "This check rests on" in out and "months of outcomes" in out


def test_too_few_outcomes_exit_2_with_the_counts_and_leave_nothing(churn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = world(tmp_path, accounts=40, start=date(2023, 1, 1), end=date(2024, 1, 1))
    contracts = pd.read_parquet(data / "contracts.parquet")
    churned = int((contracts["outcome"] == "churned").sum())
    run = churn("train", "--data", str(data), cwd=tmp_path)
    assert run.returncode == 2, run.stderr[-3000:]
    err = " ".join(run.stderr.split())
    assert f"holds {churned} churned and" in err and "at least 30 churned" in err
    assert "model.min_churned" in err and "internal error" not in err
    assert not (tmp_path / "mlruns").exists(), "a failed run leaves no store behind"
