"""Every failure a user can cause exits 2 with a message that names the table, column or
setting, what was found and what to do; a failed run leaves nothing behind.

``churn`` runs as a user runs it, from a working directory (``pipelines.cli.main`` in this
process: no interpreter start-up), on the small simulated world of ``sim_dir``. One model
is trained for the module (the expensive part); every other command reads it. Only the
missing Spark extra runs in a subprocess, whose ``pyspark`` import is blocked the way an
environment without the extra blocks it.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

#: Settings that train in seconds (as tests/test_young_books.py), one waterfall per run.
QUICK = {
    "model": {"trials": 1, "backtest_trials": 1, "tune_folds": 2, "backtest_folds": 2,
              "monotone": "on", "num_threads": 1, "bootstrap": 100},
    "engine": {"threads": 1},
    "scoring": {"waterfalls": 1},
}  # fmt: skip
#: Renewals of the simulated world are open on this day (sim_dir: 2023-01 to 2025-12).
AS_OF = "2025-07-01"


@dataclass(frozen=True)
class Ran:
    """What ``churn`` printed, and its exit code; ``err`` with its line breaks undone."""

    returncode: int
    out: str
    err: str


def churn(*args: str, cwd: Path) -> Ran:
    """``churn ARGS`` run from ``cwd``: its entry point, with its exit code.

    MLflow's global URIs and the variables it exports are put back afterwards.
    """
    from pipelines.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        mp.setattr(sys, "argv", ["churn", *args])
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            mp.setenv(key, "")  # recorded, so that what MLflow sets is removed afterwards
            mp.delenv(key)
        try:
            with redirect_stdout(out), redirect_stderr(err), pytest.raises(SystemExit) as done:
                main()
                raise SystemExit(0)
        finally:
            mlflow.set_tracking_uri(saved[0])
            mlflow.set_registry_uri(saved[1])
    return Ran(int(done.value.code or 0), out.getvalue(), " ".join(err.getvalue().split()))


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def workdir(root: Path, **settings: object) -> Path:
    """An empty working directory but for its churn.yaml (QUICK plus ``settings``)."""
    root.mkdir(parents=True, exist_ok=True)
    config = {**QUICK, **settings}
    (root / "churn.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return root


def copy_world(sim_dir: Path, out: Path, drop: str | None = None) -> Path:
    shutil.copytree(sim_dir, out)
    if drop:
        (out / f"{drop}.parquet").unlink()
    return out


@pytest.fixture(scope="module")
def trained(sim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store (``<root>/mlruns``) whose champion was trained on ``sim_dir`` with tickets."""
    root = workdir(tmp_path_factory.mktemp("trained"))
    run = churn("train", "--data", str(sim_dir), "--force", cwd=root)
    assert run.returncode == 0, run.err
    return root


def scoring_dir(trained: Path, tmp_path: Path) -> Path:
    """An empty working directory whose settings read the trained store."""
    return workdir(tmp_path / "cwd", tracking={"uri": f"sqlite:///{trained}/mlruns/mlflow.db"})


# ---------------------------------------------------------------- no model to score with


def test_no_store_no_champion_exits_2_and_creates_nothing(sim_dir: Path, tmp_path: Path) -> None:
    """Scoring where nothing was trained: no mlruns/ folder, store or scores appear."""
    cwd = workdir(tmp_path)
    before = listing(cwd)
    run = churn("score", "--data", str(sim_dir), "--as-of", AS_OF, "--out", "scores", cwd=cwd)
    assert run.returncode == 2, run.err
    assert f"tracking.uri: there is no MLflow store at {cwd.resolve()}/mlruns/mlflow.db" in run.err
    assert "no champion" in run.err and "Train a model first (churn train" in run.err
    run = churn("explain", "A0001", "--data", str(sim_dir), "--as-of", AS_OF, cwd=cwd)
    assert run.returncode == 2 and "tracking.uri: there is no MLflow store" in run.err
    assert listing(cwd) == before, "a failed score or explain leaves nothing behind"


def test_validate_leaves_nothing_behind(sim_dir: Path, tmp_path: Path) -> None:
    cwd = workdir(tmp_path)
    before = listing(cwd)
    assert churn("validate", "--data", str(sim_dir), cwd=cwd).returncode == 0
    run = churn("validate", "--data", str(tmp_path / "nowhere"), cwd=cwd)
    assert run.returncode == 2 and "nowhere does not exist" in run.err
    assert listing(cwd) == before


def test_a_store_without_champion_exits_2_and_gains_no_experiment(
    sim_dir: Path, trained: Path, tmp_path: Path
) -> None:
    store = f"sqlite:///{trained}/mlruns/mlflow.db"
    cwd = workdir(tmp_path, tracking={"uri": store, "registered_model": "never-trained"})
    client = MlflowClient(tracking_uri=f"sqlite:///{trained}/mlruns/mlflow.db")
    experiments = [e.name for e in client.search_experiments()]
    before = listing(cwd)
    run = churn("score", "--data", str(sim_dir), "--as-of", AS_OF, "--out", "scores", cwd=cwd)
    assert run.returncode == 2, run.err
    assert "models:/never-trained@champion" in run.err
    assert "The registry has no champion yet" in run.err and "--force" in run.err
    assert listing(cwd) == before
    assert [e.name for e in client.search_experiments()] == experiments


@pytest.mark.parametrize(
    ("model", "found"),
    [
        ("models:/churn-health/99", "Model Version (name=churn-health, version=99) not found"),
        ("models:/no-such-model/1", "Model Version (name=no-such-model, version=1) not found"),
        ("models:/churn-health@staging", "Registered model alias staging not found"),
        ("models:/m-0123456789abcdef", "Logged model with ID 'm-0123456789abcdef' not found"),
        ("runs:/0123456789abcdef0123456789abcdef/model", "Run with id=0123456789abcdef"),
        ("does/not/exist", "no such file or folder"),
    ],
)
def test_an_unknown_model_uri_names_the_option_and_lists_the_models(
    sim_dir: Path, trained: Path, tmp_path: Path, model: str, found: str
) -> None:
    cwd = scoring_dir(trained, tmp_path)
    before = listing(cwd)
    run = churn(
        "score", "--data", str(sim_dir), "--as-of", AS_OF, "--out", "s", "--model", model,
        cwd=cwd,
    )  # fmt: skip
    assert run.returncode == 2, run.err
    assert f"--model {model}: {found}" in run.err
    assert "Registered there: churn-health (version 1, champion 1)." in run.err
    assert "mlflow ui --backend-store-uri sqlite:///" in run.err
    assert listing(cwd) == before


# ---------------------------------------------------------------- the data do not fit


def test_a_table_the_model_needs_is_missing(sim_dir: Path, trained: Path, tmp_path: Path) -> None:
    data = copy_world(sim_dir, tmp_path / "no-tickets", drop="tickets")
    cwd = scoring_dir(trained, tmp_path)
    before = listing(cwd)
    run = churn("score", "--data", str(data), "--as-of", AS_OF, "--out", "scores", cwd=cwd)
    assert run.returncode == 2, run.err
    assert (
        "error: tickets: the model models:/churn-health@champion (version 1) was trained "
        "with the tickets table ("
    ) in run.err
    assert f"{data} has no tickets.parquet or tickets.csv. Add the tickets export" in run.err
    assert listing(cwd) == before, "no scores, no score history"


def test_nothing_to_score_names_the_setting_and_writes_nothing(
    sim_dir: Path, trained: Path, tmp_path: Path
) -> None:
    cwd = scoring_dir(trained, tmp_path)
    before = listing(cwd)
    run = churn("score", "--data", str(sim_dir), "--as-of", AS_OF, "--within", "0",
                "--out", "scores", cwd=cwd)  # fmt: skip
    assert run.returncode == 2, run.err
    assert (
        f"no account is eligible at --as-of {AS_OF}: no open contract term ends within "
        "labels.within_days (0) days of it; the next renewal is on 2025-07-"
    ) in run.err
    assert "Raise --within (labels.within_days) to at least" in run.err
    run = churn("score", "--data", str(sim_dir), "--as-of", "2010-07-01", "--out", "scores",
                cwd=cwd)  # fmt: skip
    assert run.returncode == 2, run.err
    assert "--as-of 2010-07-01: no contract term is open then" in run.err
    assert "the contract terms run from 20" in run.err and "Choose an --as-of between" in run.err
    assert listing(cwd) == before, "no empty scores directory, no score history"


def test_no_eligible_account_for_features_in_either_mode(sim_dir: Path, tmp_path: Path) -> None:
    """``churn features`` (no model needed) refuses an empty feature file in both modes;
    inactivity mode on a world whose events stop for the four months before the as-of."""
    cwd = workdir(tmp_path / "cwd")
    before = listing(cwd)
    run = churn("features", "--data", str(sim_dir), "--as-of", "2010-07-01", "--out", "f.parquet",
                cwd=cwd)  # fmt: skip
    assert run.returncode == 2 and "no contract term is open then" in run.err, run.err
    gap = copy_world(sim_dir, tmp_path / "gap")
    events = pd.read_parquet(gap / "events.parquet")
    day = events["ts"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d")
    events[(day < "2025-02-01") | (day >= "2025-06-01")].to_parquet(gap / "events.parquet")
    run = churn("features", "--data", str(gap), "--as-of", "2025-06-01", "--out", "f.parquet",
                "--label", "inactivity", cwd=cwd)  # fmt: skip
    assert run.returncode == 2, run.err
    assert (
        "--as-of 2025-06-01: no account has an event in the labels.active_days (90) days "
        "before it (2025-03-03 to 2025-05-31); the events run from "
    ) in run.err
    assert "or raise --active-days (labels.active_days)" in run.err
    assert listing(cwd) == before


def test_no_labelled_rows_say_what_to_add_or_set(sim_dir: Path, tmp_path: Path) -> None:
    """Training without contracts, with undecided terms only, or on too short a history
    (inactivity): exit 2, and no MLflow store is created."""
    cwd = workdir(tmp_path / "cwd")
    before = listing(cwd)
    no_contracts = copy_world(sim_dir, tmp_path / "no-contracts", drop="contracts")
    run = churn("train", "--data", str(no_contracts), cwd=cwd)
    assert run.returncode == 2, run.err
    assert "contracts: the renewal label (labels.label: renewal, the default) needs the " in run.err
    assert "Add contracts.parquet or contracts.csv, or use --label inactivity" in run.err

    undecided = copy_world(sim_dir, tmp_path / "undecided")
    terms = pd.read_parquet(undecided / "contracts.parquet").assign(outcome=None)
    terms.to_parquet(undecided / "contracts.parquet", index=False)
    run = churn("train", "--data", str(undecided), cwd=cwd)
    assert run.returncode == 2, run.err
    assert "no labelled rows" in run.err and "label" in run.err

    short = copy_world(sim_dir, tmp_path / "short")
    events = pd.read_parquet(short / "events.parquet")
    events = events[events["ts"] >= events["ts"].max() - pd.Timedelta(days=100)]
    events.to_parquet(short / "events.parquet", index=False)
    run = churn("train", "--data", str(short), "--label", "inactivity", cwd=cwd)
    assert run.returncode == 2, run.err
    assert "events: the inactivity label needs labels.active_days (90)" in run.err
    assert "labels.horizon_days (90)" in run.err and "the events span 10" in run.err
    assert "(--active-days, --horizon)" in run.err
    assert listing(cwd) == before, "no mlruns/ folder for a run that never started"


# ---------------------------------------------------------------- the Spark extra


BLOCKED = """\
import sys
sys.modules["pyspark"] = None  # what an environment without the spark extra does
sys.argv = ["churn", *sys.argv[1:]]
from pipelines.cli import main
main()
"""


def test_spark_without_the_extra_says_how_to_install_it(sim_dir: Path, tmp_path: Path) -> None:
    cwd = workdir(tmp_path)
    before = listing(cwd)
    args = ["features", "--data", str(sim_dir), "--as-of", AS_OF, "--out", "f.parquet",
            "--engine", "spark"]  # fmt: skip
    run = subprocess.run([sys.executable, "-c", BLOCKED, *args], capture_output=True,
                         text=True, timeout=300, cwd=cwd)  # fmt: skip
    err = " ".join(run.stderr.split())
    assert run.returncode == 2, err
    assert "error: engine.name: spark needs the spark extra" in err
    assert "pip install '.[spark]'" in err and "engine.name: duckdb" in err
    assert "Traceback" not in err
    assert listing(cwd) == before


@pytest.mark.skipif(importlib.util.find_spec("pyspark") is None, reason="pyspark not installed")
def test_spark_without_java_says_what_was_found(sim_dir: Path, tmp_path: Path) -> None:
    cwd = workdir(tmp_path)
    before = listing(cwd)
    exe = Path(sys.executable).with_name("churn")
    args = ["features", "--data", str(sim_dir), "--as-of", AS_OF, "--out", "f.parquet",
            "--engine", "spark"]  # fmt: skip
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java")}  # spark-class runs its java
    run = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300,
                         cwd=cwd, env=env)  # fmt: skip
    err = " ".join(run.stderr.split())
    assert run.returncode == 2, err
    assert f"engine.name: spark needs Java 17, and Java did not start (JAVA_HOME={tmp_path}" in err
    assert "engine.name: duckdb" in err
    assert listing(cwd) == before


# ---------------------------------------------------------------- success adds only its output


def test_scoring_writes_only_what_it_promises(sim_dir: Path, trained: Path, tmp_path: Path) -> None:
    """A successful score adds its scores directory and the score history, and no
    experiment or run to the store."""
    cwd = scoring_dir(trained, tmp_path)
    before = listing(cwd)
    client = MlflowClient(tracking_uri=f"sqlite:///{trained}/mlruns/mlflow.db")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = len(client.search_runs(experiments))
    run = churn("score", "--data", str(sim_dir), "--as-of", AS_OF, "--out", "scores", cwd=cwd)
    assert run.returncode == 0, run.err
    added = {p.split("/")[0] for p in listing(cwd) - before}
    assert added == {"scores", "score-history.parquet"}
    assert [e.experiment_id for e in client.search_experiments()] == experiments
    assert len(client.search_runs(experiments)) == runs


def test_plays_without_activities_exits_2_and_says_what_to_export(
    sim_dir: Path, trained: Path, tmp_path: Path
) -> None:
    data = copy_world(sim_dir, tmp_path / "no-activities", drop="activities")
    cwd = scoring_dir(trained, tmp_path)
    before = listing(cwd)
    run = churn("plays", "--data", str(data), "--out", "plays.csv", cwd=cwd)
    assert run.returncode == 2, run.err
    assert "activities: the data directory has no activities table" in run.err
    assert "activities.parquet or activities.csv" in run.err
    assert listing(cwd) == before, "no table written"
