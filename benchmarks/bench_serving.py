"""Issue 14 benchmark: the registered model served by ``mlflow models serve``.

A simulated book (``--accounts``) is trained with quick settings into a temporary MLflow
store and scored by ``churn score``'s stage; the champion is then served, as the README
says, from a new virtual environment holding only the model's ``requirements.txt``
(``--python`` reuses one), on a free loopback port:

    mlflow models serve -m models:/churn-health@champion -h 127.0.0.1 -p PORT --env-manager local

Measured: the cold start (seconds from starting the command to its first ``/ping`` and to
its first answer of one row; ``--cold`` starts), the latency of one row and of 1,000 rows
per request (p50 and p95 over ``--requests`` sequential requests) and the throughput of
1,000-row requests, the scorer in-process on the same 1,000 rows for comparison, and the
logged model's size on disk. The served answers are checked against ``churn score``'s.

    python benchmarks/bench_serving.py --accounts 1000 --out /tmp/w/bench_serving.md

Everything goes to a temporary folder, removed at the end (``--keep`` keeps it: the new
environment is about 0.9 GB); nothing is written into the repository. Requests go to
127.0.0.1 only, a bounded number of them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
QUICK = {"trials": 3, "backtest_trials": 1, "tune_folds": 2, "backtest_folds": 2,
         "monotone": "on", "bootstrap": 100}  # fmt: skip


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _split(frame: pd.DataFrame) -> bytes:
    data = frame.astype(object).where(frame.notna(), None).to_numpy().tolist()
    payload = {"dataframe_split": {"columns": list(frame.columns), "data": data}}
    return json.dumps(payload, allow_nan=False).encode()


def _post(url: str, body: bytes) -> Any:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _outside(python: Path, tracking_uri: str) -> dict[str, str]:
    """No PYTHONPATH, no user site: the server sees only its own environment."""
    hidden = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env |= {"PYTHONNOUSERSITE": "1", "MLFLOW_TRACKING_URI": tracking_uri,
            "PATH": f"{python.parent}{os.pathsep}{env.get('PATH', '')}"}  # fmt: skip
    return env


def _fresh_env(requirements: Path, folder: Path) -> tuple[Path, float]:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-r", str(requirements), "-c", str(ROOT / "constraints.txt")],
        check=True,
    )  # fmt: skip
    return python, time.perf_counter() - start


class Server:
    """``mlflow models serve`` of ``python``'s environment; stopped with its process group."""

    def __init__(self, python: Path, uri: str, tracking_uri: str, cwd: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.started = time.perf_counter()
        self.log = (cwd / f"serve-{self.port}.log").open("w")
        self.proc = subprocess.Popen(
            [str(python.parent / "mlflow"), "models", "serve", "-m", uri, "-p", str(self.port),
             "-h", "127.0.0.1", "--env-manager", "local"],
            cwd=cwd, env=_outside(python, tracking_uri), stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def wait(self, limit: float = 300.0) -> float:
        """Seconds from the start to the first answer of ``/ping``."""
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server stopped; see {self.log.name}")
            if time.perf_counter() - self.started > limit:
                raise SystemExit(f"no /ping answer in {limit:.0f} s; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.log.close()


def _timed(url: str, body: bytes, n: int, warm: int) -> list[float]:
    for _ in range(warm):
        _post(url, body)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        _post(url, body)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accounts", type=int, default=1000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--threads", type=int, default=2, help="training threads")
    p.add_argument("--python", type=Path, help="a Python of an environment made from the "
                   "model's requirements (default: make one)")  # fmt: skip
    p.add_argument("--cold", type=int, default=3, help="cold starts to time")
    p.add_argument("--requests", type=int, default=200, help="requests of one row")
    p.add_argument("--batches", type=int, default=20, help="requests of 1,000 rows")
    p.add_argument("--out", type=Path, help="also write the Markdown table here")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    try:
        text = measure(a, work)
    finally:
        if a.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(text)
    if a.out is not None:
        a.out.write_text(text, encoding="utf-8")


def measure(a: argparse.Namespace, work: Path) -> str:
    """Train, score, serve and time; the Markdown table of the figures."""
    import mlflow

    from features.validate import load
    from models.scorer import request_rows
    from pipelines import model_stages, stages, training
    from pipelines.config import load_config
    from pipelines.scoring import scoring_set
    from pipelines.scoring_model import load_scoring_model
    from simulator import SimConfig, simulate, write_world

    world = work / "world"
    write_world(simulate(SimConfig(accounts=a.accounts, seed=a.seed)), world)
    tracking_uri = f"sqlite:///{work / 'store' / 'mlflow.db'}"
    cfg = load_config(None, {
        "tracking": {"uri": tracking_uri}, "seed": a.seed,
        "model": QUICK | {"num_threads": a.threads}, "engine": {"threads": a.threads},
        "scoring": {"history": str(work / "history.parquet"), "waterfalls": 0},
    })  # fmt: skip
    clean = load(world)
    trained = training.run_training(stages.training_set(clean, cfg), cfg, force=True)
    as_of: date = SimConfig().end
    t = time.perf_counter()
    model_stages.score(world, as_of, work / "scores", cfg)
    t_batch = time.perf_counter() - t
    scores = pd.read_parquet(work / "scores" / "scores.parquet").set_index("account_id")
    sm = load_scoring_model(trained.model_uri)
    rows = request_rows(sm.features, scoring_set(clean.tables, as_of, sm, cfg).frame)
    rng = np.random.default_rng(a.seed)
    thousand = rows.iloc[rng.integers(0, len(rows), 1000)].reset_index(drop=True)

    model_dir = Path(mlflow.artifacts.download_artifacts(trained.model_uri,
                                                         dst_path=str(work / "model")))  # fmt: skip
    size = {part.name: sum(f.stat().st_size for f in part.rglob("*") if f.is_file())
            for part in model_dir.iterdir() if part.is_dir()}  # fmt: skip
    total = sum(f.stat().st_size for f in model_dir.rglob("*") if f.is_file())

    install = None
    python = a.python
    if python is None:
        python, install = _fresh_env(model_dir / "requirements.txt", work / "venv")
    uri = f"models:/{cfg.tracking.registered_model}@champion"
    body_one, body_all = _split(rows.head(1)), _split(rows)

    cold: list[tuple[float, float]] = []
    for _ in range(a.cold):
        server = Server(python, uri, tracking_uri, work)
        try:
            ping = server.wait()
            _post(f"{server.url}/invocations", body_one)
            cold.append((ping, time.perf_counter() - server.started))
        finally:
            server.stop()

    server = Server(python, uri, tracking_uri, work)
    try:
        server.wait()
        url = f"{server.url}/invocations"
        answers = pd.DataFrame(_post(url, body_all)["predictions"]).set_index("account_id")
        answers = answers.loc[scores.index]
        gap = float(np.abs(answers["churn_probability"] - scores["churn_probability"]).max())
        same = all((answers[c] == scores[c]).all() for c in ("band", "drivers", "play"))
        lat_one = _timed(url, body_one, a.requests, warm=5)
        lat_all = _timed(url, _split(thousand), a.batches, warm=2)
    finally:
        server.stop()
    inproc = []
    for _ in range(5):
        t = time.perf_counter()
        sm.scorer.answer(thousand)
        inproc.append(time.perf_counter() - t)

    ms = lambda s: f"{s * 1000:,.1f} ms"  # noqa: E731
    cold_ping = [c[0] for c in cold]
    cold_first = [c[1] for c in cold]
    table = [
        ("book", f"{a.accounts:,} simulated accounts, {len(rows)} scored at {as_of}, "
                 f"{len(sm.features)} features, {sm.model.n_estimators_} trees"),
        ("logged model on disk", f"{total / 1024:,.0f} KiB (" + ", ".join(
            f"{k}/ {v / 1024:,.0f} KiB" for k, v in sorted(size.items())) + ")"),
        ("new environment (venv + pip install -r requirements.txt)",
         "given (--python)" if install is None else f"{install:.1f} s"),
        ("cold start: command to first /ping (median, min-max)",
         f"{statistics.median(cold_ping):.2f} s ({min(cold_ping):.2f}-{max(cold_ping):.2f})"),
        ("cold start: command to first answer of one row",
         f"{statistics.median(cold_first):.2f} s ({min(cold_first):.2f}-{max(cold_first):.2f})"),
        ("1 row per request: latency p50 / p95",
         f"{ms(_percentile(lat_one, 50))} / {ms(_percentile(lat_one, 95))}"),
        ("1 row per request: throughput (sequential)",
         f"{1 / statistics.median(lat_one):,.0f} rows/s"),
        ("1,000 rows per request: latency p50 / p95",
         f"{ms(_percentile(lat_all, 50))} / {ms(_percentile(lat_all, 95))}"),
        ("1,000 rows per request: throughput",
         f"{1000 / statistics.median(lat_all):,.0f} rows/s"),
        ("the scorer in-process on the same 1,000 rows (p50)",
         f"{ms(statistics.median(inproc))} ({1000 / statistics.median(inproc):,.0f} rows/s)"),
        ("churn score's stage in-process (read, features, score, write; no waterfalls)",
         f"{t_batch:.1f} s"),
        ("served answers vs churn score", f"probability max diff {gap:.1e}; band, drivers, "
                                          f"play {'equal' if same else 'DIFFER'}"),
    ]  # fmt: skip
    lines = ["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in table)]
    command = "python benchmarks/bench_serving.py " + " ".join(sys.argv[1:])
    return f"Command: `{command}`\n\n" + "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
