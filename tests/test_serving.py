"""The registered model on its own: loaded and served outside this project, it answers like
``churn score``, and the scores name the registry version that made them.

A model is trained on a small simulated past and scores its renewals with ``churn score``'s
stage. Then a new virtual environment is made from the model's own ``requirements.txt``
only (``uv venv`` without the system's packages, ``uv pip install -r requirements.txt -c
constraints.txt``; this project is not installed there), and, from a folder outside the
repository and without ``PYTHONPATH``:

- ``mlflow.pyfunc.load_model`` on the model downloaded to a local folder predicts the same
  rows;
- ``mlflow models serve -m models:/churn-health@champion --env-manager local`` (that
  environment's MLflow) answers ``POST /invocations`` on a free loopback port.

Both must give ``churn score``'s values for the same accounts: probability (to 1e-12),
health score, band, drivers, protective factor and play. The environment is made once per
test session, in the session's temporary folder.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import quick_config
from mlflow import MlflowClient

from features.training import build_training_set
from features.validate import load
from models.scorer import ANSWER, FILES, PROTECTIVE, HealthScorer, request_rows
from pipelines import model_stages, training
from pipelines.config import ChurnConfig
from pipelines.scoring import scoring_set
from pipelines.scoring_model import load_scoring_model

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CUTOFF, AS_OF = date(2025, 6, 1), date(2025, 7, 1)
#: How long a new environment may take to install (from PyPI or uv's cache) and a server
#: to answer its first request, before the test fails saying so.
INSTALL_SECONDS, START_SECONDS = 900, 180


@pytest.fixture(scope="module")
def world(world150: Path) -> Path:
    return world150


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> ChurnConfig:
    store = tmp_path_factory.mktemp("mlruns")
    # 150 accounts decide 28 churned terms: enough for what is checked here (parity).
    few = {"min_churned": 10, "min_retained": 10}
    return quick_config(store, trials=2, model=few, scoring={"history": str(store / "h.parquet")})


@pytest.fixture(scope="module")
def trained(world: Path, cfg: ChurnConfig) -> training.TrainResult:
    ts = build_training_set(load(world).tables, cfg.labels, cfg.features, cutoff=CUTOFF)
    # Forced: the served champion is what is tested, not the gate.
    return training.run_training(ts, cfg, force=True)


@pytest.fixture(scope="module")
def scored(
    world: Path, cfg: ChurnConfig, trained: training.TrainResult, tmp_path_factory
) -> pd.DataFrame:
    """``churn score``'s scores (the champion, the default model), by account."""
    out = tmp_path_factory.mktemp("scores") / "scores"
    model_stages.score(world, AS_OF, out, cfg)
    return pd.read_parquet(out / "scores.parquet").set_index("account_id")


@pytest.fixture(scope="module")
def rows(world: Path, cfg: ChurnConfig, trained: training.TrainResult) -> pd.DataFrame:
    """The feature rows ``churn score`` scored, as a caller sends them to the model."""
    sm = load_scoring_model(trained.model_uri)
    ts = scoring_set(load(world).tables, AS_OF, sm, cfg)
    return request_rows(sm.features, ts.frame)


@pytest.fixture(scope="module")
def model_dir(trained: training.TrainResult, tmp_path_factory) -> Path:
    """The registered model, downloaded to a local folder."""
    dst = tmp_path_factory.mktemp("model")
    return Path(mlflow.artifacts.download_artifacts(trained.model_uri, dst_path=str(dst)))


def outside_env(python: Path | None = None) -> dict[str, str]:
    """The environment of a process that must not see this project: no ``PYTHONPATH``, no
    user site-packages, the new environment's ``bin`` first on ``PATH`` (``mlflow models
    serve`` starts ``uvicorn`` from it)."""
    hidden = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "MLFLOW_TRACKING_URI")
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env["PYTHONNOUSERSITE"] = "1"
    if python is not None:
        env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def uv() -> Path:
    """The uv installed beside this interpreter (``make install-dev``; the dev extra)."""
    found = Path(sys.executable).parent / "uv"
    if not found.is_file():
        pytest.fail(
            f"uv is not installed in {found.parent.parent}, and the serving tests make their "
            "new environment with it: run make install-dev, or pip install -c "
            "constraints.txt uv",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="session")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """``make(requirements.txt)``: the Python of a new virtual environment with only those
    requirements installed (made once per session and requirements)."""
    made: dict[str, Path] = {}

    def make(requirements: Path) -> Path:
        text = requirements.read_text(encoding="utf-8")
        if text in made:
            return made[text]
        folder = tmp_path_factory.mktemp("fresh-env")
        env, python, installer = outside_env(), folder / "venv" / "bin" / "python", uv()
        started = time.perf_counter()
        # uv, not pip: the same pinned packages in 1.5 s against 24 s (pip, --no-compile),
        # linked from the cache that make install-dev filled. Modules are not byte-compiled:
        # the few the test imports compile when first used.
        for args in (
            ["venv", "--quiet", "--python", sys.executable, str(python.parent.parent)],
            ["pip", "install", "--quiet", "--python", str(python), "-r", str(requirements),
             "-c", str(ROOT / "constraints.txt")],
        ):  # fmt: skip
            run = subprocess.run(
                [str(installer), *args], env=env, cwd=folder, capture_output=True, text=True,
                timeout=INSTALL_SECONDS,
            )  # fmt: skip
            assert run.returncode == 0, (
                f"uv {args[0]} could not make a new environment from the model's requirements "
                f"(PyPI or uv's cache is needed):\n{run.stderr[-3000:]}"
            )
        print(f"new environment from {requirements.name}: {time.perf_counter() - started:.1f} s")
        made[text] = python
        return python

    return make


def compare(answers: pd.DataFrame, scored: pd.DataFrame) -> None:
    """Each answered column against ``churn score``'s, account by account."""
    assert list(answers.columns) == ["account_id", *ANSWER]
    got = answers.set_index("account_id")
    assert sorted(got.index) == sorted(scored.index), "the accounts churn score scored"
    got = got.loc[scored.index]
    np.testing.assert_allclose(
        got["churn_probability"].to_numpy(float), scored["churn_probability"].to_numpy(float),
        rtol=0, atol=1e-12,
    )  # fmt: skip
    for col in ("health_score", "band", "drivers", "play", "top_driver"):
        assert got[col].tolist() == scored[col].tolist(), col
    # The protective factor closes the drivers text (the report reads it there).
    protective = [d.split(PROTECTIVE, 1)[1] if PROTECTIVE in d else "" for d in scored["drivers"]]
    assert got["protective_factor"].tolist() == protective
    assert set(got["band"]) <= {"green", "yellow", "red"} and len(got) > 10


# ---------------------------------------------------------------- what the model holds


def test_the_logged_model_holds_its_scorer_as_plain_files_and_no_pickle(
    model_dir: Path, trained: training.TrainResult
) -> None:
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    flavor = mlmodel["flavors"]["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model", "logged as code"
    assert (model_dir / Path(flavor["model_code_path"]).name).is_file()
    assert not [p for p in model_dir.rglob("*") if p.suffix in (".pkl", ".pickle")]
    assert sorted(p.name for p in (model_dir / "code").iterdir()) == ["features", "models"]
    files = {name: model_dir / "artifacts" / file for name, file in FILES.items()}
    assert files["booster"].read_text().startswith("tree\nversion=")  # LightGBM's text
    model = json.loads(files["model"].read_text())
    assert model["calibrator"]["method"] in ("isotonic", "platt")
    assert model["plays"]["healthy"] and model["plays"]["by_family"]["support"]
    run_context = mlflow.artifacts.load_dict(f"runs:/{trained.run_id}/scoring.json")
    assert json.loads(files["scoring"].read_text()) == run_context
    requirements = (model_dir / "requirements.txt").read_text().split()
    assert all("==" in r for r in requirements), "pinned"
    assert {r.split("==")[0] for r in requirements} == {
        "mlflow", "lightgbm", "numpy", "pandas", "scipy", "pydantic",
    }  # fmt: skip
    size = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    print(f"logged model: {size / 1024:.0f} KiB on disk")
    assert size < 5 * 2**20


def test_the_scorer_reproduces_the_fitted_model_bit_for_bit(seed: int, tmp_path: Path) -> None:
    """Isotonic and Platt calibrators as JSON numbers, trees as LightGBM's model string:
    the same probabilities as the fitted model, and the same answers after a round trip
    through the files."""
    from models.train import ChurnModel
    from simulator.synthetic import make_planted

    planted = make_planted(accounts=400, seed=seed, lead_days=(0, 90))
    frame = planted.frame
    context = {"thresholds": {"yellow": 0.1, "red": 0.3}, "references": {}}
    for method in ("isotonic", "platt"):
        model = ChurnModel(calibration=method, learning_rate=0.1, seed=seed, max_rounds=60)
        model.fit(frame, planted.features)
        scorer = HealthScorer.from_model(model, context)
        assert scorer.calibrator.method == method
        assert np.array_equal(scorer.predict_risk(frame), model.predict_risk(frame)), method
        again = HealthScorer.load(scorer.save(tmp_path / method))
        pd.testing.assert_frame_equal(again.score(frame).answers, scorer.score(frame).answers)


def test_the_protective_mark_is_the_reports() -> None:
    from pipelines.report import PROTECTIVE as REPORT

    assert PROTECTIVE == REPORT, "the report splits the drivers text on it"


# ---------------------------------------------------------------- outside this project


def test_a_new_environment_loads_the_model_and_answers_like_churn_score(
    model_dir: Path,
    rows: pd.DataFrame,
    scored: pd.DataFrame,
    fresh_python: Callable[[Path], Path],
    tmp_path: Path,
) -> None:
    python = fresh_python(model_dir / "requirements.txt")
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    script = tmp_path / "load.py"
    script.write_text(
        "import importlib.util, sys\n"
        "import mlflow.pyfunc, pandas as pd\n"
        "assert importlib.util.find_spec('pipelines') is None, 'the project is importable'\n"
        "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "model.predict(pd.read_parquet(sys.argv[2])).to_parquet(sys.argv[3])\n"
        "import models\n"
        "print(models.__file__)\n",
        encoding="utf-8",
    )
    run = subprocess.run(
        [str(python), str(script), str(model_dir), "rows.parquet", "answers.parquet"],
        cwd=tmp_path, env=outside_env(python), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    # The model's own copy of the code, not this checkout's.
    assert run.stdout.strip() == str(model_dir / "code" / "models" / "__init__.py")
    compare(pd.read_parquet(tmp_path / "answers.parquet"), scored)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, payload: dict[str, Any]) -> tuple[int, Any]:
    body = json.dumps(payload, allow_nan=False).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def split(frame: pd.DataFrame) -> dict[str, Any]:
    """``frame`` as MLflow's ``dataframe_split`` input; missing values as JSON null."""
    data = frame.astype(object).where(frame.notna(), None).to_numpy().tolist()
    return {"dataframe_split": {"columns": list(frame.columns), "data": data}}


@pytest.fixture
def server(
    model_dir: Path,
    cfg: ChurnConfig,
    trained: training.TrainResult,
    fresh_python: Callable[[Path], Path],
    tmp_path: Path,
) -> Iterator[tuple[str, float, Path]]:
    """``mlflow models serve -m models:/churn-health@champion`` of the new environment, on a
    free loopback port: its URL, the seconds from start to a first answer of ``/ping``, and
    its working folder. Stopped (its whole process group) after the test."""
    python = fresh_python(model_dir / "requirements.txt")
    port = free_port()
    env = outside_env(python) | {"MLFLOW_TRACKING_URI": str(cfg.tracking.uri)}
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    log = (tmp_path / "serve.log").open("w")
    uri = f"models:/{cfg.tracking.registered_model}@champion"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(python.parent / "mlflow"), "models", "serve", "-m", uri, "-p", str(port),
         "-h", "127.0.0.1", "--env-manager", "local"],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.perf_counter() - started < START_SECONDS, "the server did not start"
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        yield url, time.perf_counter() - started, cwd
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        log.close()


def test_the_served_champion_answers_like_churn_score(
    server: tuple[str, float, Path], rows: pd.DataFrame, scored: pd.DataFrame
) -> None:
    url, ready, cwd = server
    status, body = post(f"{url}/invocations", split(rows))
    assert status == 200, body
    compare(pd.DataFrame(body["predictions"]), scored)
    print(f"served model: /ping answered {ready:.1f} s after the start")

    # One account alone gets the answer it gets in the batch.
    status, body = post(f"{url}/invocations", split(rows.head(1)))
    assert status == 200, body
    one = body["predictions"][0]
    assert one["account_id"] == rows["account_id"].iloc[0]
    assert one["drivers"] == scored.loc[one["account_id"], "drivers"]
    # Without account_id (optional): the same answer, without the id.
    status, body = post(f"{url}/invocations", split(rows.drop(columns="account_id").head(1)))
    assert status == 200 and "account_id" not in body["predictions"][0]
    assert body["predictions"][0]["play"] == scored.loc[one["account_id"], "play"]

    # A feature column missing: the caller's error, named.
    status, body = post(f"{url}/invocations", split(rows.drop(columns="events_30d").head(3)))
    assert status == 400
    assert "events_30d" in body["message"] and "required" in body["message"]
    assert not list(cwd.iterdir()), "serving wrote nothing where it runs"


# ---------------------------------------------------------------- a version that means something


def test_scores_and_history_record_the_registry_version_and_the_model_id(
    world: Path, cfg: ChurnConfig, trained: training.TrainResult, tmp_path: Path
) -> None:
    """Whichever URI names the model (alias, version, logged model, run), the scores and
    the history record the registry version and the MLflow model id."""
    name = cfg.tracking.registered_model
    assert trained.model_uri == f"models:/{name}/{trained.version}"
    assert trained.model_id.startswith("m-")
    uris = [None, trained.model_uri, f"models:/{trained.model_id}",
            f"runs:/{trained.run_id}/model"]  # fmt: skip
    history = tmp_path / "history.parquet"
    run = cfg.model_copy(update={"scoring": cfg.scoring.model_copy(update={"history": history})})
    client = MlflowClient(cfg.tracking.uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    logged = len(client.search_logged_models(experiment_ids=experiments))
    for i, uri in enumerate(uris):
        scores = model_stages.score(world, AS_OF, tmp_path / f"s{i}", run, model_uri=uri).scores
        assert (scores["model_version"] == trained.version).all(), uri
        assert (scores["model_id"] == trained.model_id).all(), uri
        written = pd.read_parquet(tmp_path / f"s{i}" / "scores.parquet")
        assert (written["model_id"] == trained.model_id).all()
        kept = pd.read_parquet(history)
        assert (kept["model_version"] == trained.version).all(), uri
        assert (kept["model_id"] == trained.model_id).all(), uri
    assert len(client.search_logged_models(experiment_ids=experiments)) == logged, "none new"


def test_churn_train_prints_the_registry_uri(
    world: Path, cfg: ChurnConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    monkeypatch.chdir(tmp_path)
    settings = {"tracking": {"uri": cfg.tracking.uri}, "model": cfg.model.model_dump(mode="json")}
    (tmp_path / "churn.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    result = CliRunner().invoke(app, ["train", "--data", str(world), "--force"],
                                terminal_width=200)  # fmt: skip
    assert result.exit_code == 0, result.output
    name = cfg.tracking.registered_model
    version = MlflowClient().get_model_version_by_alias(name, "champion").version
    line = next(x for x in result.output.splitlines() if x.startswith("MLflow run"))
    assert f"model models:/{name}/{version}  (and models:/{name}@champion)" in line
    assert "logged model m-" in line and "models:/m-" not in result.output
