"""A training run records what rebuilds its model, and ``churn train --from-run`` rebuilds it.

One model is trained for the module; the retrain reads only what that run recorded (its
settings and its data folder), from a working directory whose own settings have changed
since, and with the Optuna study deleted so that the tuning runs again from scratch.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import subprocess
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from test_exit_codes import AS_OF, QUICK, churn, workdir

from features.fingerprint import data_fingerprint
from pipelines.config import ChurnConfig
from pipelines.provenance import RECORD_FILE, settings_from_run

REPO = Path(__file__).resolve().parent.parent


def _run_id(out: str) -> str:
    found = re.search(r"MLflow run ([0-9a-f]{32})", out)
    assert found, out
    return found.group(1)


def _record(root: Path, run_id: str) -> dict:
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlruns/mlflow.db")
    return json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/{RECORD_FILE}"))


@pytest.fixture(scope="module")
def first(sim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = workdir(tmp_path_factory.mktemp("provenance"))
    run = churn("train", "--data", str(sim_dir), "--force", cwd=root)
    assert run.returncode == 0, run.err
    return root, _run_id(run.out)


def test_a_run_records_its_code_settings_data_and_packages(first, sim_dir):
    root, run_id = first
    record = _record(root, run_id)
    fp = data_fingerprint(sim_dir)
    assert record["data"]["digest"] == fp["digest"]
    assert record["data"]["files"] == fp["files"]
    assert record["data"]["path"] == str(sim_dir.resolve())
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True)  # fmt: skip
    assert record["code"]["git_commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    assert record["packages"]["lightgbm"] == md.version("lightgbm")
    assert record["packages"]["mlflow"] == md.version("mlflow")
    cfg = ChurnConfig.model_validate(record["config"])
    assert cfg.model.trials == QUICK["model"]["trials"]
    assert cfg.model.seed == cfg.seed, "the seed the model used, made explicit"
    tags = MlflowClient().get_run(run_id).data.tags
    assert tags["data_digest"] == fp["digest"]
    assert tags["code_commit"] == (record["code"]["git_commit"] or "unknown")


def test_from_run_rebuilds_the_same_model_with_the_runs_settings(first, tmp_path):
    root, run_id = first
    # Since the first run: other settings in the working directory, and no Optuna study
    # to resume, so the retrain tunes again.
    changed = {**QUICK, "seed": 11, "model": {**QUICK["model"], "trials": 3}}
    (root / "churn.yaml").write_text(yaml.safe_dump(changed), encoding="utf-8")
    (root / "mlruns" / "optuna.db").unlink()
    run = churn("train", "--from-run", run_id, "--force", cwd=root)
    assert run.returncode == 0, run.err
    assert f"with the settings and data of run {run_id}" in run.out
    again = _run_id(run.out)
    old, new = _record(root, run_id), _record(root, again)
    assert new["config"] == old["config"] and new["data"] == old["data"]
    params = [MlflowClient().get_run(r).data.params for r in (run_id, again)]
    assert params[0] == params[1]
    scores = []
    for version in (1, 2):
        out = tmp_path / f"v{version}"
        done = churn("score", "--data", old["data"]["path"], "--as-of", AS_OF, "--model",
                     f"models:/churn-health/{version}", "--out", str(out), cwd=root)  # fmt: skip
        assert done.returncode == 0, done.err
        scores.append(pd.read_parquet(out / "scores.parquet"))
    cols = ["account_id", "churn_probability", "health_score", "band", "drivers", "play"]
    pd.testing.assert_frame_equal(scores[0][cols], scores[1][cols])


def test_the_machine_keeps_its_engine_and_store():
    recorded = ChurnConfig.model_validate(
        {"seed": 3, "engine": {"threads": 8}, "tracking": {"uri": "sqlite:////elsewhere.db"}}
    )
    here = ChurnConfig.model_validate({"engine": {"threads": 1}})
    cfg = settings_from_run({"config": recorded.model_dump(mode="json")}, here)
    assert cfg.seed == 3 and cfg.engine.threads == 1 and cfg.tracking.uri is None


def test_an_unknown_run_or_a_run_without_a_record_is_a_user_error(first):
    root, _ = first
    run = churn("train", "--from-run", "0" * 32, cwd=root)
    assert run.returncode == 2
    assert f"--from-run {'0' * 32}: no such run in the MLflow store" in run.err
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlruns/mlflow.db")
    with mlflow.start_run() as bare:
        pass
    run = churn("train", "--from-run", bare.info.run_id, cwd=root)
    assert run.returncode == 2 and f"the run has no {RECORD_FILE}" in run.err
    run = churn("train", cwd=root)
    assert run.returncode == 2 and "--data: no data directory given" in run.err
    run = churn("train", "--from-run", bare.info.run_id, "--trials", "5", cwd=root)
    assert run.returncode == 2
    assert "cannot change them; drop --trials" in run.err
