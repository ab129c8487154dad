"""A team tracking server: ``churn train`` then ``churn score`` against a real ``mlflow server``
on PostgreSQL, over HTTP, with the artifacts uploaded through the server.

``tests/services.py`` starts PostgreSQL (Debian's package, in a temporary data directory,
on 127.0.0.1) and ``mlflow server --backend-store-uri postgresql+psycopg2://...
--artifacts-destination <tmp>/artifacts --serve-artifacts``; the ``churn`` command runs as
a user runs it (a subprocess, from a working directory) with ``MLFLOW_TRACKING_URI``
pointing at the server. The same training and scoring in the embedded default (a SQLite
store in the working directory) gives the reference: with the same seed and settings,
both paths must give the same scores. A machine without PostgreSQL or psycopg2 fails
here with what to install (``make test`` installs both), never skips.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow.artifacts
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from services import ServiceError, TeamServer, team_server
from test_exit_codes import AS_OF, QUICK

pytestmark = pytest.mark.slow

MODEL = "churn-health"
#: What MLflow hands to subprocesses: each run below gets only what it is given.
MLFLOW_STATE = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_RUN_ID",
                "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[TeamServer]:
    """PostgreSQL and ``mlflow server`` on it for this module; stopped and removed after."""
    try:
        with team_server() as running:
            yield running
    except ServiceError as err:
        pytest.fail(f"the team tracking server could not be started: {err}", pytrace=False)


def churn(*args: str, cwd: Path, tracking_uri: str | None) -> subprocess.CompletedProcess[str]:
    """``churn ARGS`` from ``cwd``, with ``MLFLOW_TRACKING_URI`` set to ``tracking_uri`` (or
    unset: the embedded SQLite store under ``cwd/mlruns``)."""
    env = {k: v for k, v in os.environ.items() if k not in MLFLOW_STATE}
    if tracking_uri is not None:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    exe = Path(sys.executable).with_name("churn")
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def train_and_score(
    sim_dir: Path, cwd: Path, tracking_uri: str | None, server: TeamServer
) -> tuple[str, str, pd.DataFrame]:
    """``churn train --force`` then ``churn score`` from ``cwd``: the version and run that
    ``train`` printed, and the scores."""
    cwd.mkdir()
    (cwd / "churn.yaml").write_text(yaml.safe_dump(QUICK), encoding="utf-8")
    where = f"against {tracking_uri}" if tracking_uri else "in the embedded SQLite store"
    train = churn("train", "--data", str(sim_dir), "--force", cwd=cwd, tracking_uri=tracking_uri)
    assert train.returncode == 0, f"churn train {where}:\n{train.stderr}\n{server.log_tails()}"
    registered = re.search(r"Registered version (\d+) \(champion\)", train.stdout)
    run = re.search(r"MLflow run ([0-9a-f]{32})\s+model models:/churn-health/(\d+)", train.stdout)
    assert registered and run, train.stdout
    assert run.group(2) == registered.group(1), train.stdout
    score = churn("score", "--data", str(sim_dir), "--as-of", AS_OF, "--out", "scores",
                  cwd=cwd, tracking_uri=tracking_uri)  # fmt: skip
    assert score.returncode == 0, f"churn score {where}:\n{score.stderr}\n{server.log_tails()}"
    scores = pd.read_parquet(cwd / "scores" / "scores.parquet")
    return registered.group(1), run.group(1), scores


def test_train_register_alias_and_score_through_the_team_server(
    server: TeamServer, sim_dir: Path, tmp_path: Path
) -> None:
    team = tmp_path / "team"
    version, run_id, scores = train_and_score(sim_dir, team, server.url, server)

    # The registry answers over HTTP with what churn train printed ...
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert (champion.version, champion.run_id) == (version, run_id)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["registered_version"] == version
    assert run.data.tags["is_champion"] == "true"

    # ... and it is PostgreSQL that holds it: the server's tables, read directly.
    import psycopg2

    with psycopg2.connect(server.backend_uri.replace("+psycopg2", "")) as con, con.cursor() as cur:
        cur.execute("SELECT version, run_id FROM model_versions WHERE name = %s", (MODEL,))
        assert cur.fetchall() == [(int(version), run_id)]
        cur.execute("SELECT alias, version FROM registered_model_aliases WHERE name = %s", (MODEL,))
        assert cur.fetchall() == [("champion", int(version))]
        cur.execute("SELECT status FROM runs WHERE run_uuid = %s", (run_id,))
        assert cur.fetchall() == [("FINISHED",)]
    assert not (team / "mlruns" / "mlflow.db").exists(), "no embedded store beside the server"

    # The artifacts went through the server (mlflow-artifacts:/ URIs) to its destination
    # on disk: the run's files and the model's.
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location.startswith("mlflow-artifacts:/"), experiment
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri
    run_dir = server.artifacts / run.info.artifact_uri.removeprefix("mlflow-artifacts:/")
    assert {"features.json", "scoring.json"} <= {p.name for p in run_dir.iterdir()}, run_dir
    source = champion.source or ""
    assert source.startswith("models:/m-"), source  # MLflow 3: a version of a logged model
    location = client.get_logged_model(source.removeprefix("models:/")).artifact_location
    assert location.startswith("mlflow-artifacts:/"), location
    model_dir = server.artifacts / location.removeprefix("mlflow-artifacts:/")
    mlmodel = (model_dir / "MLmodel").read_text(encoding="utf-8")
    assert f"run_id: {run_id}" in mlmodel and "python_function" in mlmodel, mlmodel
    assert (model_dir / "code" / "models").is_dir(), "the model's code travels with it"
    # What the server serves of the champion is, byte for byte, what is on its disk.
    served = mlflow.artifacts.download_artifacts(
        location, dst_path=str(tmp_path / "served"), tracking_uri=server.url
    )
    assert files(Path(served)) == files(model_dir)

    # churn score used the champion of the server ...
    assert len(scores) > 0
    assert set(scores["model_version"].astype(str)) == {version}

    # ... and scored what the same training scores in the embedded SQLite store.
    local = tmp_path / "local"
    local_version, _, reference = train_and_score(sim_dir, local, None, server)
    assert local_version == "1" and (local / "mlruns" / "mlflow.db").is_file()
    columns = ["account_id", "churn_probability", "health_score", "band", "drivers", "play"]
    got = scores[columns].sort_values("account_id").reset_index(drop=True)
    expected = reference[columns].sort_values("account_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
