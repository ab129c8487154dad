"""MLflow Projects: the entry points match the CLI, and run end to end with ``mlflow run``.

The end-to-end tests run ``mlflow run <repo> -e <entry point> --env-manager local`` in a
subprocess against a temporary SQLite store, as a user would, and check the exit code, the
files written and the MLflow run (status FINISHED). ``train`` then ``score`` checks the
hand-over: the model is found through the registry (``models:/churn-health@champion``),
and the run of the ``train`` entry point is the run that logged it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer.main
import yaml
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.projects import _project_spec

from pipelines.cli import app

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
#: Entry point -> CLI verb (the others have the verb's name).
VERBS = {"main": "demo"}
ENTRY_POINTS = ("main", "simulate", "validate", "features", "train", "backtest", "score")
#: A value of the right kind for every parameter, to render each command in full.
SAMPLES = {
    "as_of": "2025-10-01", "engine": "duckdb", "label_mode": "renewal", "format": "csv",
    "force": "true", "model": "models:/churn-health/1", "within": "30", "horizon": "60",
    "active_days": "45", "trials": "2", "accounts": "60", "sim_accounts": "60", "seed": "3",
    "after_end": "true",
}  # fmt: skip
Simulated = tuple[Path, Path, subprocess.CompletedProcess[str]]
#: Environment variables through which MLflow hands its state to subprocesses.
MLFLOW_STATE = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_RUN_ID",
                "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")  # fmt: skip
TABLES = ("accounts", "contracts", "events", "tickets", "surveys", "sentiment", "invoices")
#: A training budget that runs in seconds on a tiny world.
#: A 60-account world decides about 25 churned terms: the minimum of outcomes a fold needs
#: is lowered so that it trains at all (a real book is held to 30).
TINY = {
    "engine": {"threads": 1},
    "scoring": {"waterfalls": 5},
    "model": {"trials": 1, "backtest_trials": 1, "tune_folds": 1, "backtest_folds": 1,
              "monotone": "on", "num_threads": 1, "min_churned": 5, "min_retained": 5,
              "bootstrap": 50},
}  # fmt: skip


def rendered_args(entry_point: str, params: dict[str, str], storage: Path) -> list[str]:
    """The argument list ``churn`` receives when MLflow runs ``entry_point`` with ``params``.

    MLflow's own code renders the command; bash runs it with ``churn`` replaced by a
    function that prints its arguments.
    """
    project = _project_spec.load_project(str(ROOT))
    command = project.get_entry_point(entry_point).compute_command(params, str(storage))
    shim = 'churn() { printf "%s\\0" "$@"; }; '
    out = subprocess.run(["bash", "-c", shim + command], capture_output=True, text=True, check=True)
    return out.stdout.split("\0")[:-1]


def parse(verb: str, args: list[str]) -> dict[str, Any]:
    """The CLI's parse of ``args`` (types, ranges, choices, required options), not run."""
    assert args[0] == verb, f"the command runs `churn {args[0]}`, expected `churn {verb}`"
    command = typer.main.get_command(app).commands[verb]  # type: ignore[attr-defined]
    return dict(command.make_context(verb, args[1:]).params)


def spec() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "MLproject").read_text(encoding="utf-8"))


def test_the_entry_points_are_the_stages() -> None:
    assert tuple(spec()["entry_points"]) == ENTRY_POINTS


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_every_cli_option_is_a_parameter(entry_point: str) -> None:
    """A new CLI option must be added to the MLproject too (and this test says which)."""
    verb = VERBS.get(entry_point, entry_point)
    command = typer.main.get_command(app).commands[verb]  # type: ignore[attr-defined]
    text = spec()["entry_points"][entry_point]["command"]
    options = [o for p in command.params for o in p.opts if o.startswith("--") and o != "--help"]
    missing = [o for o in options if not re.search(re.escape(o) + r"(?![\w-])", text)]
    assert not missing, f"MLproject entry point {entry_point!r} lacks {missing} of `churn {verb}`"


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_the_defaults_render_a_command_the_cli_accepts(entry_point: str, tmp_path: Path) -> None:
    """Only the required parameters given: the optional ones are left out, not passed empty."""
    params = spec()["entry_points"][entry_point]["parameters"]
    required = {
        k: str(tmp_path) if v == "path" else SAMPLES.get(k, str(tmp_path / k))
        for k, v in params.items()
        if isinstance(v, str) or "default" not in v
    }
    args = rendered_args(entry_point, required, tmp_path)
    assert "" not in args, args
    parsed = parse(VERBS.get(entry_point, entry_point), args)
    if entry_point == "simulate":
        assert parsed["accounts"] == 1000 and parsed["seed"] == 7  # MLflow passes "1000"
    if entry_point == "score":
        assert parsed["model"] == "models:/churn-health@champion"


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_every_parameter_reaches_its_cli_option(entry_point: str, tmp_path: Path) -> None:
    params = spec()["entry_points"][entry_point]["parameters"]
    config = tmp_path / "my settings.yaml"  # a space: values must stay one argument
    config.write_text("seed: 3\n", encoding="utf-8")
    given = {
        k: str(config) if k == "config" else str(tmp_path) if v == "path"
        else SAMPLES.get(k, str(tmp_path / k))
        for k, v in params.items()
    }  # fmt: skip
    parsed = parse(VERBS.get(entry_point, entry_point), rendered_args(entry_point, given, tmp_path))
    expected = {
        "config": config, "trials": 2, "within": 30, "horizon": 60, "active_days": 45,
        "label": "renewal", "engine": "duckdb", "format": "csv", "force": True,
        "model": "models:/churn-health/1", "accounts": 60, "seed": 3, "after_end": True,
    }  # fmt: skip
    expected = {k: v for k, v in expected.items() if k in parsed}
    if entry_point == "simulate":
        expected["fmt"] = expected.pop("format", "csv")
    assert {k: parsed[k] for k in expected} == expected


def test_force_accepts_only_true_or_false(tmp_path: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError) as err:
        rendered_args("train", {"data": str(tmp_path), "force": "yes"}, tmp_path)
    assert "force must be true or false" in err.value.stderr


# ---------------------------------------------------------------- end to end with `mlflow run`


def mlflow_run(
    entry_point: str, params: dict[str, str], store: Path
) -> subprocess.CompletedProcess[str]:
    """``mlflow run <repo> -e entry_point -P k=v ... --env-manager local`` against ``store``."""
    venv_bin = str(Path(sys.executable).parent)  # `churn` lives beside this Python
    # Nothing of this process's MLflow state (a registry URI left by an earlier test, a run)
    # may reach the run: the store is the only link.
    inherited = {k: v for k, v in os.environ.items() if k not in MLFLOW_STATE}
    env = {
        **inherited,
        "MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db",
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        "OMP_NUM_THREADS": "1",
    }
    args = [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", entry_point,
            "--env-manager", "local"]  # fmt: skip
    for key, value in params.items():
        args += ["-P", f"{key}={value}"]
    # cwd: MLflow puts the Default experiment's artifacts under ./mlruns of whoever creates
    # the store first.
    return subprocess.run(args, env=env, cwd=store, capture_output=True, text=True, timeout=600)


def client(store: Path) -> MlflowClient:
    """A client of ``store`` for runs and the registry (set apart: MLflow would otherwise
    take the registry from MLFLOW_REGISTRY_URI, which an earlier test may have left)."""
    uri = f"sqlite:///{store}/mlflow.db"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def project_run(store: Path, entry_point: str) -> Run:
    """The one MLflow run of ``entry_point`` in ``store``."""
    tracking = client(store)
    experiments = [e.experiment_id for e in tracking.search_experiments()]
    runs = tracking.search_runs(
        experiments, filter_string=f"tags.`mlflow.project.entryPoint` = '{entry_point}'"
    )
    assert len(runs) == 1, f"expected one run of {entry_point}, found {len(runs)}"
    return runs[0]


def explain(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Simulated:
    """``-e simulate`` once: (store, world, the finished process)."""
    store = tmp_path_factory.mktemp("mlproject")
    world = store / "w"
    done = mlflow_run("simulate", {"out": str(world), "accounts": "60"}, store)
    return store, world, done


def test_simulate_runs_end_to_end(simulated: Simulated) -> None:
    store, world, done = simulated
    assert done.returncode == 0, explain(done)
    assert all((world / f"{t}.parquet").is_file() for t in TABLES)
    assert pd.read_parquet(world / "accounts.parquet")["account_id"].nunique() == 60
    assert (store / "w-truth.parquet").is_file()  # beside the data directory, not in it
    run = project_run(store, "simulate")
    assert run.info.status == "FINISHED"
    assert run.data.params["accounts"] == "60" and run.data.params["out"] == str(world)


def test_validate_runs_on_the_simulated_world(
    simulated: Simulated,
) -> None:
    store, world, _ = simulated
    done = mlflow_run("validate", {"data": str(world)}, store)
    assert done.returncode == 0, explain(done)
    assert "No hard problems" in done.stdout
    assert project_run(store, "validate").info.status == "FINISHED"


def test_train_then_score_hand_over_through_the_registry(simulated: Simulated) -> None:
    """``train`` logs its model in the entry point's own run and makes it the champion
    (``force``: the gate is not what this tests, and a 60-account world proves little);
    ``score`` finds it by its default URI (the champion alias), with no path between them."""
    store, world, _ = simulated
    config = store / "tiny.yaml"
    # MLflow runs the command in the project folder: the score history goes to the store.
    history = store / "score-history.parquet"
    settings = TINY | {"scoring": TINY["scoring"] | {"history": str(history)}}
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    steps = [
        ("train", {"data": str(world), "config": str(config), "force": "true"}),
        ("score", {"data": str(world), "as_of": "2025-10-01", "out": str(store / "scores"),
                   "config": str(config)}),
    ]  # fmt: skip
    for entry_point, params in steps:
        done = mlflow_run(entry_point, params, store)
        assert done.returncode == 0, f"{entry_point}: {explain(done)}"
        # MLflow's bar for each artifact it reads back (logging the model) is not churn's.
        assert "Downloading artifacts" not in done.stderr, explain(done)
    train = project_run(store, "train")
    assert train.info.status == "FINISHED"
    champion = client(store).get_model_version_by_alias("churn-health", "champion")
    assert champion.run_id == train.info.run_id
    scores = pd.read_parquet(store / "scores" / "scores.parquet")
    assert history.is_file() and not (ROOT / "score-history.parquet").exists()
    assert len(scores) and set(scores["model_version"]) == {str(champion.version)}
    assert project_run(store, "score").data.params["model"] == "models:/churn-health@champion"
