"""Fixtures shared by the tests: a seed used everywhere and a tiny, valid, hand-made data set."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from ibis.backends import BaseBackend

# Tests share the machine with other work (and ``make test`` runs two workers): one thread
# each keeps them fast and deterministic, for this process and the commands it starts.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("CHURN_MAX_THREADS", "1")
# SQL remembered across processes (features.compiled) lives in a folder of this run's own,
# removed at the end: a cache left by an earlier run would hide the cost of compiling.
if "CHURN_SQL_CACHE" not in os.environ:
    os.environ["CHURN_SQL_CACHE"] = tempfile.mkdtemp(prefix="churn-sql-")
    atexit.register(shutil.rmtree, os.environ["CHURN_SQL_CACHE"], ignore_errors=True)


#: Marks of the tests that run local Spark: skipped only where pyspark or Java is missing.
SPARK = [
    pytest.mark.spark,
    pytest.mark.skipif(
        importlib.util.find_spec("pyspark") is None,
        reason="pyspark is not installed (pip install -e '.[spark]', or make install-dev)",
    ),
    pytest.mark.skipif(
        shutil.which("java") is None, reason="java is not on PATH (Spark needs Java 17)"
    ),
]


def quick_config(store: Path, trials: int, model: dict[str, Any] | None = None,
                 **more: Any) -> Any:  # fmt: skip
    """Settings that train a model in seconds: few trials and folds (one trial per backtest
    fold), one thread, a SQLite MLflow store in ``store``. ``model`` overrides model
    settings; ``more`` adds top-level settings (e.g. ``seed``)."""
    from pipelines.config import load_config

    settings = {"trials": trials, "backtest_trials": 1, "tune_folds": 2, "backtest_folds": 2,
                "monotone": "on", "num_threads": 1, "bootstrap": 100} | (model or {})  # fmt: skip
    if "seed" in more:
        settings["seed"] = more["seed"]
    # Five waterfalls, not fifty: each is a matplotlib PNG (about 0.1 s), and no test needs more.
    scoring = {"waterfalls": 5} | more.pop("scoring", {})
    return load_config(
        None,
        {"tracking": {"uri": f"sqlite:///{store}/mlflow.db"}, "model": settings,
         "scoring": scoring, **more},
    )  # fmt: skip


@pytest.fixture
def seed() -> int:
    """The seed of every randomised test, so a failure reproduces (override: CHURN_TEST_SEED)."""
    return int(os.environ.get("CHURN_TEST_SEED", "42"))


def _utc(*values: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), utc=True, format="ISO8601"))


def tiny_tables() -> dict[str, pd.DataFrame]:
    """Two accounts, three terms and a few rows of each optional table, all valid."""
    return {
        "accounts": pd.DataFrame(
            {
                "account_id": ["A1", "A2"],
                "created_at": _utc("2023-01-01", "2023-06-15T12:00:00"),
                "name": ["Acme", "Globex"],
                "segment": ["SMB", "Enterprise"],
                "csm": ["Dana", "Eli"],
                "plan": ["pro", "enterprise"],
            }
        ),
        "contracts": pd.DataFrame(
            {
                "contract_id": ["C1", "C2", "C3"],
                "account_id": ["A1", "A1", "A2"],
                "start_date": pd.to_datetime(["2023-01-01", "2024-01-01", "2023-06-15"]).date,
                "end_date": pd.to_datetime(["2024-01-01", "2025-01-01", "2024-06-15"]).date,
                "arr": [12000.0, 15000.0, 90000.0],
                "seats": pd.array([10, 12, 200], dtype="Int64"),
                "outcome": ["expanded", None, "churned"],
            }
        ),
        "events": pd.DataFrame(
            {
                # The last event (December) marks the end of the data, after every other row.
                "account_id": ["A1", "A1", "A2", "A2", "A1"],
                "user_id": ["u1", "u2", "u9", "u9", "u1"],
                "ts": _utc(
                    "2023-03-01T09:00:00",
                    "2023-03-02T10:30:00",
                    "2023-07-01T08:00:00",
                    "2023-07-03T17:45:00",
                    "2023-12-01T09:00:00",
                ),
                "event": ["login", "report_exported", "login", "dashboard_viewed", "login"],
                "value": [30.0, None, 12.5, 4.0, 2.0],
            }
        ),
        "tickets": pd.DataFrame(
            {
                "ticket_id": ["T1", "T2"],
                "account_id": ["A1", "A2"],
                "created_at": _utc("2023-04-01T10:00:00", "2023-08-01T10:00:00"),
                "first_response_at": _utc("2023-04-01T11:00:00", "2023-08-02T10:00:00"),
                "resolved_at": pd.Series(pd.to_datetime(["2023-04-03T10:00:00", None], utc=True)),
                "priority": ["normal", "urgent"],
                "csat": pd.array([4, None], dtype="Int64"),
            }
        ),
        "surveys": pd.DataFrame(
            {
                "account_id": ["A1", "A2"],
                "user_id": ["u1", None],
                "ts": _utc("2023-05-01", "2023-09-01"),
                "kind": ["nps", "csat"],
                "score": [9.0, 2.0],
            }
        ),
        "sentiment": pd.DataFrame(
            {
                "account_id": ["A1", "A2"],
                "ts": _utc("2023-05-01", "2023-09-01"),
                "sentiment": ["green", "red"],
            }
        ),
        "invoices": pd.DataFrame(
            {
                "invoice_id": ["I1", "I2"],
                "account_id": ["A1", "A2"],
                "issued_at": _utc("2023-01-01", "2023-06-15"),
                "due_at": _utc("2023-01-31", "2023-07-15"),
                "paid_at": pd.Series(pd.to_datetime(["2023-01-20", None], utc=True)),
                "amount": [12000.0, 90000.0],
            }
        ),
    }


def write_tables(tables: dict[str, pd.DataFrame], out: Path, fmt: str = "parquet") -> Path:
    """Write tables the way a user's export would: one file per table."""
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if fmt == "csv":
            frame.to_csv(out / f"{name}.csv", index=False, date_format="%Y-%m-%dT%H:%M:%S%z")
        else:
            frame.to_parquet(out / f"{name}.parquet", index=False)
    return out


@pytest.fixture
def tiny() -> dict[str, pd.DataFrame]:
    return tiny_tables()


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated world on disk (Parquet), shared by the tests of one session."""
    from simulator import SimConfig, simulate, write_world

    out = tmp_path_factory.mktemp("sim") / "world"
    write_world(simulate(SimConfig(accounts=120, seed=11)), out)
    return out


@pytest.fixture(scope="session")
def world150(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 150-account simulated world (seed 7) the scoring-parity tests train and score on
    (Spark against DuckDB, served against batch); read only."""
    from simulator import SimConfig, simulate, write_world

    out = tmp_path_factory.mktemp("world150") / "data"
    write_world(simulate(SimConfig(accounts=150, seed=7)), out)
    return out


@pytest.fixture(scope="session")
def sim_frames(sim_dir: Path) -> dict[str, pd.DataFrame]:
    """The small simulated world as pandas frames, with plain string columns."""
    frames = {}
    for name in ("accounts", "contracts", "events", "tickets", "surveys", "sentiment", "invoices"):
        frame = pd.read_parquet(sim_dir / f"{name}.parquet")
        for col in frame.columns:
            if isinstance(frame[col].dtype, pd.CategoricalDtype):
                frame[col] = frame[col].astype("str")
        frames[name] = frame
    return frames


@contextmanager
def local_spark(cores: int, **options: str) -> Iterator[BaseBackend]:
    """Local Spark for a test module, stopped at the end; ``churn`` reuses the session it
    finds running. Python workers (``spark_udf``, ``mapInPandas``) run this interpreter,
    not PATH's python3."""
    from pyspark.sql import SparkSession

    from features.read import connect

    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON", sys.executable))
        con = connect("spark", master=f"local[{cores}]", **options)
        session = SparkSession.getActiveSession()
        assert session is not None
        session.sparkContext.setLogLevel("ERROR")  # keep the output to failures
        try:
            yield con
        finally:
            session.stop()


#: The longest test files, started first: ``make test`` hands whole files to two workers
#: (``--dist loadfile``), and a long file started last would leave one worker idle. In order
#: of their measured time, longest first (one run of 2026-12-07, timestamps per worker);
#: ``make test`` keeps this order (``--no-loadscope-reorder``).
SLOW_FIRST = (
    "test_spark_cluster.py", "test_serving.py", "test_young_books.py", "test_scoring.py",
    "test_team_server.py", "test_exports_fuzz.py", "test_spark_scoring.py",
    "test_point_in_time.py", "test_plays_planted.py", "test_notebooks.py",
    "test_planted_simulator.py", "test_spark_parity.py", "test_contract.py", "test_windows.py",
    "test_models_planted.py", "test_scoring_scope.py", "test_mlproject.py",
    "test_training_pipeline.py", "test_activities.py", "test_simulator_terms.py",
    "test_provenance.py", "test_messy_files.py", "test_exit_codes.py",
    "test_training_simulated.py", "test_later_facts.py", "test_object_store_paths.py",
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
