"""The review notebooks run end to end on a small demo world, and are committed clean.

A session fixture builds what ``make demo`` builds, smaller: a simulated world, a champion
trained with a few Optuna trials in a temporary MLflow store, and a scores directory. Each
notebook then runs in a fresh kernel with ``CHURN_DATA``, ``CHURN_SCORES`` and
``MLFLOW_TRACKING_URI`` pointing at it; a cell error, including a failed key assertion
(e.g. "the model beats the hand-weighted score"), fails the test.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import mlflow
import nbformat
import pytest
from conftest import quick_config
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from features.validate import load
from pipelines import model_stages, training
from simulator import SimConfig, simulate, write_world

pytestmark = pytest.mark.slow

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
SEED = int(os.environ.get("CHURN_TEST_SEED", "42"))  # as the ``seed`` fixture (session scope)
#: Not fewer: with 300 accounts (~1,000 out-of-time snapshots over two folds) the model's
#: lead over the hand-weighted score is within noise; it was behind on 2 of 5 seeds tried,
#: so 02's key assertion would test the seed rather than the pipeline. With 600 it led on
#: every seed tried (by 0.02 to 0.15 ROC AUC).
ACCOUNTS = 600
AS_OF = date(2025, 10, 1)  # inside the simulated world (it ends 2026-01-01)
CELL_TIMEOUT = 300  # seconds


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A demo world, a champion and a scores directory; the notebooks' environment."""
    root = tmp_path_factory.mktemp("demo")
    world = root / "world"
    write_world(simulate(SimConfig(accounts=ACCOUNTS, seed=SEED)), world)
    uri = f"sqlite:///{root}/mlruns/mlflow.db"
    cfg = quick_config(
        root / "mlruns", trials=3, seed=SEED, engine={"threads": 1},
        scoring={"history": str(root / "score-history.parquet")},
    )  # fmt: skip
    # The stages point MLflow at this store, and MLflow exports that to os.environ for
    # subprocesses: put both back so that no later test reaches this store by accident.
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        # Forced: the notebooks need a champion, and the gate is tested on its own.
        training.run_training(load(world), cfg, force=True)
        model_stages.score(world, AS_OF, root / "scores", cfg)
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return {
        "CHURN_DATA": str(world),
        "CHURN_SCORES": str(root / "scores"),
        "MLFLOW_TRACKING_URI": uri,
    }


def test_there_are_three_notebooks() -> None:
    names = [p.stem for p in NOTEBOOKS]
    assert names == ["01-explore-cohorts", "02-model-review", "03-account-review"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        and (cell.outputs or cell.execution_count is not None or "execution" in cell.metadata)
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} have outputs or execution counts. Commit notebooks clean: "
        "jupyter nbconvert --clear-output --inplace notebooks/*.ipynb"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_a_key_cell_that_asserts(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    checks = [c for c in nb.cells if c.cell_type == "code" and "\nassert " in f"\n{c.source}"]
    assert checks, f"{path.name}: no code cell asserts anything; add a key check"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_the_demo_world(
    path: Path, demo: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in demo.items():
        monkeypatch.setenv(name, value)  # the kernel inherits this environment
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)  # as left by an earlier test
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},  # run where Jupyter would
    )
    try:
        client.execute()
    except CellExecutionError as err:
        pytest.fail(f"{path.name} failed on the demo world:\n{err}", pytrace=False)
