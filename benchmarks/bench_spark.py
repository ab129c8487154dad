"""Issue 18 benchmark: ``churn score`` and ``churn train`` on DuckDB, local Spark and a
standalone Spark cluster on loopback, side by side in one run.

    python benchmarks/bench_spark.py --store /tmp/demo \\
        --data /tmp/demo/out/world /tmp/bench/book10k --as-of 2026-01-01

``--store`` is a folder where ``churn demo`` ran: its MLflow champion scores every world.
Each command runs as a user runs it, in its own process from a temporary working folder
whose ``churn.yaml`` names the engine (and, for the cluster, ``spark://127.0.0.1:PORT``).
The cluster (a master and one 2-core worker, :mod:`tests.spark_cluster`) is started once
and stopped at the end. For each run the table gives:

* the wall time, imports, validation, model loading and writing included;
* the peak resident memory of the driver: the ``churn`` process and its children (on
  ``local[2]`` the JVM holds the executors too; on the cluster the executors run under the
  worker, apart);
* the number of Spark jobs and stages, and when the first job started after the
  application did, read from Spark's event log.

Training runs the quick settings of the tests (one Optuna trial, two folds), so that the
feature build, not the tuning, is most of it. Scores on Spark are checked against
DuckDB's: the largest difference in churn probability is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from spark_cluster import SPARK_DEFAULTS, standalone_cluster  # the tests' own cluster

#: For both Spark modes: the tests' cluster settings (spark-defaults.conf), and the event
#: log this script reads.
SPARK_SETTINGS = {
    **SPARK_DEFAULTS,
    "spark.eventLog.enabled": "true",
    "spark.eventLog.compress": "false",  # Spark 4 compresses it (zstd) by default
}
QUICK_MODEL = {"trials": 1, "backtest_trials": 1, "tune_folds": 2, "backtest_folds": 2,
               "monotone": "on", "num_threads": 2, "bootstrap": 100}  # fmt: skip


def _churn() -> str:
    found = shutil.which("churn", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("churn is not installed beside this Python: run make install")
    return found


def _yaml(path: Path, settings: dict) -> None:
    # JSON is YAML.
    path.write_text(json.dumps(settings), encoding="utf-8")


def _peak_rss(proc: subprocess.Popen) -> int:
    """Poll ``proc`` and its children until it exits; the peak of their summed RSS."""
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    return peak


def _events(log_dir: Path) -> dict[str, float]:
    """Jobs, stages and the first job's start (s after the application's) from the event
    log in ``log_dir`` (Spark 4 rolls it into a folder of ``events_N_...`` files)."""
    logs = sorted(log_dir.rglob("events_*"))
    lines = [line for log in logs for line in log.read_text(errors="replace").splitlines()]
    jobs = stages = 0
    start = first = None
    for line in lines:
        event = json.loads(line)
        kind = event.get("Event")
        if kind == "SparkListenerApplicationStart":
            start = event["Timestamp"]
        elif kind == "SparkListenerJobStart":
            jobs += 1
            first = event["Submission Time"] if first is None else first
        elif kind == "SparkListenerStageCompleted":
            stages += 1
    out: dict[str, float] = {"jobs": jobs, "stages": stages}
    if start is not None and first is not None:
        out["first_job_s"] = (first - start) / 1000
    return out


def run(args: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """``churn ARGS`` in ``cwd``: wall time, peak driver memory and Spark's counts."""
    start = time.perf_counter()
    with (cwd / "churn.log").open("w") as log:
        proc = subprocess.Popen([_churn(), *args], cwd=cwd, env=env, stdout=log, stderr=log)
        peak = _peak_rss(proc)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        text = (cwd / "churn.log").read_text(errors="replace")
        raise SystemExit(f"churn {' '.join(args)} failed ({proc.returncode}):\n{text[-6000:]}")
    events = cwd / "events"
    counts = _events(events) if events.exists() else {}
    return {"seconds": seconds, "peak_gib": peak / 2**30, **counts}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, required=True, help="where churn demo ran")
    p.add_argument("--data", type=Path, nargs="+", required=True)
    p.add_argument("--as-of", required=True)
    p.add_argument("--engines", nargs="+", default=["duckdb", "local", "cluster"],
                   choices=["duckdb", "local", "cluster"])  # fmt: skip
    p.add_argument("--commands", nargs="+", default=["score", "train"],
                   choices=["score", "train"])  # fmt: skip
    a = p.parse_args()
    store = f"sqlite:///{(a.store / 'mlruns' / 'mlflow.db').resolve()}"
    rows = []
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-spark-")))
        masters = {"local": "local[2]"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        if "cluster" in a.engines:
            cluster = stack.enter_context(standalone_cluster(root / "cluster"))
            masters["cluster"] = cluster.master
            env = {k: v for k, v in cluster.env().items() if not k.startswith("MLFLOW_")}
        for data in a.data:
            scores: dict[str, Path] = {}
            for command in a.commands:
                for engine in a.engines:
                    cwd = root / f"{data.name}-{command}-{engine}"
                    cwd.mkdir()
                    settings: dict = {"engine": {"threads": 2, "name": "duckdb"}}
                    run_env = dict(env)
                    if engine != "duckdb":
                        settings["engine"] = {"threads": 2, "name": "spark",
                                              "spark_master": masters[engine]}  # fmt: skip
                        conf = cwd / "spark-conf"
                        conf.mkdir()
                        (cwd / "events").mkdir()
                        lines = {**SPARK_SETTINGS, "spark.eventLog.dir": f"file://{cwd}/events"}
                        (conf / "spark-defaults.conf").write_text(
                            "".join(f"{k} {v}\n" for k, v in lines.items()), encoding="utf-8"
                        )
                        run_env["SPARK_CONF_DIR"] = str(conf)
                    if command == "score":
                        settings["tracking"] = {"uri": store}
                        args = ["score", "--data", str(data), "--as-of", a.as_of,
                                "--out", "scores"]  # fmt: skip
                    else:
                        settings["tracking"] = {"uri": f"sqlite:///{cwd}/mlruns/mlflow.db"}
                        settings["model"] = QUICK_MODEL
                        args = ["train", "--data", str(data), "--force"]
                    _yaml(cwd / "churn.yaml", settings)
                    print(f"{data.name} {command} {engine} ...", flush=True)
                    got = run(args, cwd, run_env)
                    if command == "score":
                        scores[engine] = cwd / "scores" / "scores.parquet"
                        got["accounts"] = len(pd.read_parquet(scores[engine]))
                    rows.append({"world": data.name, "command": command, "engine": engine, **got})
                    print(f"  {got}", flush=True)
            if "duckdb" in scores:
                ref = pd.read_parquet(scores["duckdb"]).set_index("account_id")
                for engine, path in scores.items():
                    other = pd.read_parquet(path).set_index("account_id").loc[ref.index]
                    diff = (other.churn_probability - ref.churn_probability).abs().max()
                    print(f"{data.name}: {engine} against DuckDB, largest difference {diff:.2e}")
    base = {(r["world"], r["command"]): r["seconds"] for r in rows if r["engine"] == "duckdb"}
    columns = ["world", "command", "engine", "accounts", "seconds", "x DuckDB", "peak GiB",
               "jobs", "stages", "first job s"]  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|---" * len(columns) + "|")
    for r in rows:
        ratio = r["seconds"] / base[(r["world"], r["command"])] if base else float("nan")
        cells = [r["world"], r["command"], r["engine"], f"{r.get('accounts', '')}",
                 f"{r['seconds']:.1f}", f"{ratio:.2f}", f"{r['peak_gib']:.2f}",
                 f"{r.get('jobs', '')}", f"{r.get('stages', '')}",
                 f"{r['first_job_s']:.1f}" if "first_job_s" in r else ""]  # fmt: skip
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
