"""A real Spark standalone cluster on loopback for the tests: one master, one 2-core worker.

Both daemons are started from the pyspark installation (``bin/spark-class``), as a user
starts a small cluster by hand; each runs in its own process group, which is killed when
the fixture ends, whatever happened. Executors then run in their own JVMs, with their own
Python workers, apart from the driver: what a cluster adds over ``local[2]``.

Nothing is skipped: a cluster that does not come up fails the test with the daemons' logs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

#: How long the daemons may take to start and the worker to register (a JVM each, on a
#: shared 2-core machine).
START_TIMEOUT = 120.0
WORKER_CORES, WORKER_MEMORY = 2, "2g"

#: The cluster's own settings, as an administrator keeps them in ``spark-defaults.conf``:
#: few shuffle partitions for data of a few MB (200 by default), and no optimising JIT in
#: the short-lived JVMs (as the local session of ``features.spark`` does).
SPARK_DEFAULTS = {
    "spark.sql.shuffle.partitions": "4",
    "spark.executor.memory": "1g",
    "spark.executor.cores": "2",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m",
    "spark.executor.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m",
}


@dataclass(frozen=True)
class Cluster:
    """A running standalone cluster: its master URL, the master's web UI and the logs."""

    master: str
    web: str
    logs: Path
    #: The worker's work folder: one sub-folder per application, one per executor.
    work: Path

    def state(self) -> dict:
        """The master's view of the cluster (its ``/json`` endpoint)."""
        with urllib.request.urlopen(f"{self.web}/json", timeout=5) as answer:
            return dict(json.load(answer))

    def env(self) -> dict[str, str]:
        """The environment of a driver of this cluster: this interpreter for the Python
        workers of the executors, and loopback for the driver, which executors call back."""
        return {**os.environ, **spark_env(), "PYSPARK_PYTHON": python()}

    def log_text(self) -> str:
        """Every daemon log, for a failure message."""
        return "\n".join(
            f"==== {p.name}\n{p.read_text(errors='replace')[-6000:]}"
            for p in sorted(self.logs.glob("*.log"))
        )


def python() -> str:
    """This virtual environment's interpreter (it has the project installed), for the
    executors' Python workers: not PATH's python3."""
    return sys.executable


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def spark_env() -> dict[str, str]:
    """Spark's variables for loopback: daemons, executors and driver on 127.0.0.1."""
    return {"SPARK_HOME": str(spark_home()), "SPARK_LOCAL_IP": "127.0.0.1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _daemon(args: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """Run ``spark-class ARGS`` in its own process group; kill the group on the way out."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(spark_home() / "bin" / "spark-class"), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a process group of its own: the JVM and its launcher
        )
        try:
            yield proc
        finally:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=15)
                    break
                except subprocess.TimeoutExpired:
                    continue


@contextmanager
def standalone_cluster(root: Path) -> Iterator[Cluster]:
    """Start a master and one worker on loopback under ``root``; stop both on exit.

    Raises ``pytest.fail`` (with the logs) when a daemon exits or the worker has not
    registered with the master within :data:`START_TIMEOUT` seconds.
    """
    logs, work = root / "logs", root / "work"
    logs.mkdir(parents=True)
    work.mkdir()
    port, web_port, worker_web = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        **spark_env(),
        # The daemons' own heap (not the executors'): they only keep the cluster's books.
        "SPARK_DAEMON_MEMORY": "256m",
        "SPARK_LOG_DIR": str(logs),
        "SPARK_WORKER_DIR": str(work),
        # Executors start this interpreter's Python workers (also set by each driver).
        "PYSPARK_PYTHON": python(),
    }
    cluster = Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{web_port}", logs, work)
    master_args = ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                   "--port", str(port), "--webui-port", str(web_port)]  # fmt: skip
    worker_args = ["org.apache.spark.deploy.worker.Worker", cluster.master,
                   "--host", "127.0.0.1", "--cores", str(WORKER_CORES),
                   "--memory", WORKER_MEMORY, "--webui-port", str(worker_web),
                   "--work-dir", str(work)]  # fmt: skip
    with ExitStack() as stack:
        master = stack.enter_context(_daemon(master_args, logs / "master.log", env))
        worker = stack.enter_context(_daemon(worker_args, logs / "worker.log", env))
        _wait_for_worker(cluster, (master, worker))
        yield cluster


def _wait_for_worker(cluster: Cluster, daemons: tuple[subprocess.Popen, ...]) -> None:
    """Return once the master lists one ALIVE worker with its cores; fail with the logs."""
    deadline, seen = time.monotonic() + START_TIMEOUT, "nothing (the master did not answer)"
    while time.monotonic() < deadline:
        for proc in daemons:
            if proc.poll() is not None:
                pytest.fail(
                    f"a Spark daemon exited with code {proc.returncode} while the cluster "
                    f"was starting ({' '.join(map(str, proc.args))}):\n{cluster.log_text()}",
                    pytrace=False,
                )
        try:
            state = cluster.state()
        except OSError:
            time.sleep(0.5)
            continue
        alive = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]
        seen = f"{len(alive)} alive worker(s), status {state.get('status')}"
        if alive and alive[0].get("cores") == WORKER_CORES:
            return
        time.sleep(0.5)
    pytest.fail(
        f"the Spark worker did not register with {cluster.master} within {START_TIMEOUT:.0f} "
        f"s; the master's /json shows {seen}:\n{cluster.log_text()}",
        pytrace=False,
    )


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A standalone master and one 2-core, 2 GB worker on loopback, for one test module."""
    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster")) as cluster:
        yield cluster
