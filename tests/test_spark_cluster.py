"""``churn train`` and ``churn score`` on a real standalone Spark cluster give DuckDB's scores.

A master and one 2-core worker run on loopback (:mod:`spark_cluster`); ``churn`` runs as a
user runs it, in its own interpreter (``python -m pipelines.cli``) from a working directory
whose ``churn.yaml`` names the cluster (``engine.spark_master: spark://127.0.0.1:PORT``).
The features are then computed, and the scores, drivers and plays made, by executors in
their own JVMs and Python workers: the model, the code and the settings must reach
processes that share nothing with the driver. DuckDB, in this process, scores the same
``--as-of`` with the model the cluster trained; its scores are the reference (checked in
``test_scoring.py``).

The world is the 150-account world shared with ``test_spark_scoring.py`` and the settings
those of ``test_exit_codes.py`` (one trial), so the module stays within a few minutes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from conftest import SPARK
from spark_cluster import SPARK_DEFAULTS, Cluster, spark_cluster  # noqa: F401  (the fixture)
from test_exit_codes import AS_OF, QUICK, churn, workdir
from test_spark_scoring import assert_same_scores

pytestmark = SPARK

#: A 150-account world decides 28 churned terms: below the default minimum of outcomes
#: (30), and enough for what this test checks (as in test_spark_scoring.py).
MODEL = {**QUICK["model"], "min_churned": 10, "min_retained": 10}
#: One command on the cluster: starting the driver, planning and running the feature
#: queries, training or scoring. Far above what it takes (see the module's durations).
COMMAND_TIMEOUT = 600


@dataclass(frozen=True)
class Runs:
    """The scores directories of both engines, and what the cluster saw."""

    spark: Path
    duckdb: Path
    cluster: Cluster
    seconds: dict[str, float]


def on_cluster(cluster: Cluster, conf: Path, *args: str, cwd: Path) -> float:
    """Run ``churn ARGS`` in its own interpreter against ``cluster``; its wall time.

    Fails with the command's output and the daemons' logs unless it exits 0.
    """
    # Other tests of this worker export MLflow's variables; churn.yaml alone decides here.
    env = {k: v for k, v in cluster.env().items() if not k.startswith("MLFLOW_")}
    env["SPARK_CONF_DIR"] = str(conf)
    start = time.monotonic()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", *args], cwd=cwd, env=env,
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired as err:
        pytest.fail(
            f"churn {' '.join(args)} did not finish within {COMMAND_TIMEOUT} s on "
            f"{cluster.master}:\n{err.stderr}\n{cluster.log_text()}",
            pytrace=False,
        )
    if run.returncode != 0:
        pytest.fail(
            f"churn {' '.join(args)} exited {run.returncode} on {cluster.master}:\n"
            f"{run.stdout[-4000:]}\n{run.stderr[-8000:]}\n{cluster.log_text()}",
            pytrace=False,
        )
    return time.monotonic() - start


@pytest.fixture(scope="module")
def runs(world150: Path, spark_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Runs:  # noqa: F811
    """Train on the cluster, then score the same ``AS_OF`` on the cluster and on DuckDB."""
    root = tmp_path_factory.mktemp("cluster-runs")
    conf = root / "spark-conf"
    conf.mkdir()
    (conf / "spark-defaults.conf").write_text(
        "".join(f"{k} {v}\n" for k, v in SPARK_DEFAULTS.items()), encoding="utf-8"
    )
    engine = {"name": "spark", "spark_master": spark_cluster.master}
    store = {"uri": f"sqlite:///{root}/train/mlruns/mlflow.db"}
    trained = workdir(root / "train", model=MODEL, engine={**QUICK["engine"], **engine},
                      tracking=store)  # fmt: skip
    seconds = {}
    seconds["train"] = on_cluster(
        spark_cluster, conf, "train", "--data", str(world150), "--force",
        cwd=trained,
    )  # fmt: skip
    scoring = workdir(root / "spark", tracking=store, engine={**QUICK["engine"], **engine})
    seconds["score"] = on_cluster(
        spark_cluster, conf, "score", "--data", str(world150), "--as-of", AS_OF,
        "--out", "scores", "--engine", "spark", cwd=scoring,
    )  # fmt: skip
    reference = workdir(root / "duckdb", tracking=store)
    ran = churn("score", "--data", str(world150), "--as-of", AS_OF, "--out", "scores",
                "--engine", "duckdb", cwd=reference)  # fmt: skip
    assert ran.returncode == 0, ran.err
    print(f"wall time on {spark_cluster.master}: " + ", ".join(
        f"{k} {v:.0f} s" for k, v in seconds.items()))  # fmt: skip
    return Runs(scoring / "scores", reference / "scores", spark_cluster, seconds)


def test_cluster_scores_equal_the_duckdb_scores(runs: Runs) -> None:
    spark, duckdb = (pd.read_parquet(d / "scores.parquet") for d in (runs.spark, runs.duckdb))
    assert_same_scores(spark, duckdb)
    # Built from the same scores by the same code: the same bytes.
    for name in ("scores.csv", "drift.csv", "report.html"):
        assert (runs.spark / name).read_bytes() == (runs.duckdb / name).read_bytes(), name


def test_the_work_ran_on_the_cluster_executors(runs: Runs) -> None:
    """Both commands were applications of the cluster, each with an executor process of
    its own on the worker (a JVM started by the worker, logging into its work folder)."""
    apps = runs.cluster.state()["completedapps"]
    assert [a["name"] for a in apps] == ["churn-health", "churn-health"], apps
    assert all(a["state"] == "FINISHED" for a in apps), apps
    for app in apps:
        executors = list((runs.cluster.work / app["id"]).iterdir())
        assert executors, f"no executor of {app['id']} ran on the worker"
        stderr = (executors[0] / "stderr").read_text(errors="replace")
        assert "CoarseGrainedExecutorBackend" in stderr, stderr[-2000:]
