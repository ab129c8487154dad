"""MLflow at the edge: where runs go, the pyfunc model, and the champion gate."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from models.champion import champion_gate
from models.config import ModelConfig
from models.synthetic import make_planted
from models.train import ChurnModel
from pipelines.config import TrackingConfig
from pipelines.tracking import (
    CHAMPION,
    log_churn_model,
    register_with_gate,
    resolve_tracking_uri,
    setup_tracking,
)

SEED = int(os.environ.get("CHURN_TEST_SEED", "42"))  # as the ``seed`` fixture (module scope)
GATE = ModelConfig()


def test_gate_promotes_within_tolerance_and_refuses_beyond():
    champ = {"roc_auc": 0.80, "brier": 0.120}
    assert champion_gate({"roc_auc": 0.796, "brier": 0.1215}, champ, GATE).promote
    worse_auc = champion_gate({"roc_auc": 0.794, "brier": 0.110}, champ, GATE)
    assert not worse_auc.promote and "ROC AUC 0.7940 vs 0.8000" in worse_auc.reason
    worse_brier = champion_gate({"roc_auc": 0.85, "brier": 0.1225}, champ, GATE)
    assert not worse_brier.promote and "Brier 0.1225 vs 0.1200" in worse_brier.reason
    forced = champion_gate({"roc_auc": 0.70, "brier": 0.2}, champ, GATE, force=True)
    assert forced.promote and forced.forced and forced.reason.startswith("forced")
    assert champion_gate({"roc_auc": 0.5, "brier": 0.3}, None, GATE).promote


def test_tracking_uri_order_config_then_environment_then_local_sqlite(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert resolve_tracking_uri(TrackingConfig(uri="sqlite:///x.db")) == "sqlite:///x.db"
    assert resolve_tracking_uri(TrackingConfig()) == "http://127.0.0.1:5999"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    uri = resolve_tracking_uri(TrackingConfig(), cwd=tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module (creating one takes seconds); the URI is restored."""
    root = tmp_path_factory.mktemp("mlflow")
    before = mlflow.get_tracking_uri()
    tracking = setup_tracking(TrackingConfig(uri=f"sqlite:///{root}/mlflow.db"))
    yield tracking, root
    mlflow.set_tracking_uri(before)


@pytest.fixture(scope="module")
def fitted():
    planted = make_planted(accounts=800, seed=SEED, lead_days=(0, 90))
    model = ChurnModel(learning_rate=0.1, seed=SEED).fit(planted.frame, planted.features)
    return planted, model


def _log(tracking, model, frame) -> tuple[str, str]:
    with mlflow.start_run(experiment_id=tracking.experiment_id) as run:
        info = log_churn_model(model, frame, top_events=("login",))
    return info.model_uri, run.info.run_id


def test_setup_puts_artifacts_beside_the_sqlite_store(store):
    tracking, root = store
    exp = mlflow.get_experiment(tracking.experiment_id)
    assert exp.artifact_location == (Path(root) / "artifacts").as_uri()
    assert tracking.optuna_storage == f"sqlite:///{root}/optuna.db"


def test_pyfunc_returns_the_calibrated_probabilities(store, fitted):
    tracking, _ = store
    planted, model = fitted
    uri, run_id = _log(tracking, model, planted.frame)
    loaded = mlflow.pyfunc.load_model(uri)
    assert loaded.metadata.signature is not None
    names = [f.name for f in planted.features]
    assert loaded.metadata.get_input_schema().input_names() == names
    rows = planted.frame[names].head(30).copy()
    for col in ("plan", "segment"):
        rows[col] = rows[col].astype(str)  # what a caller sends: plain strings
    out = loaded.predict(rows)
    np.testing.assert_allclose(
        out["churn_probability"].to_numpy(), model.predict_risk(planted.frame.head(30))
    )
    meta = mlflow.artifacts.load_dict(f"runs:/{run_id}/features.json")
    assert [f["name"] for f in meta["features"]] == names
    assert meta["top_events"] == ["login"]


def test_champion_alias_moves_only_for_a_challenger_that_is_not_worse(store, fitted):
    tracking, _ = store
    planted, model = fitted
    name = "gate-test"
    client = MlflowClient()

    def register(metrics: dict[str, float], force: bool = False):
        uri, run_id = _log(tracking, model, planted.frame.head(200))
        return register_with_gate(uri, run_id, metrics, name, GATE, force=force), run_id

    first, _ = register({"roc_auc": 0.80, "brier": 0.12})
    assert first.is_champion
    worse, worse_run = register({"roc_auc": 0.78, "brier": 0.12})
    assert not worse.is_champion
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == first.version
    assert client.get_run(worse_run).data.tags["is_champion"] == "false"
    better, _ = register({"roc_auc": 0.83, "brier": 0.11})
    assert better.is_champion and better.previous_champion == first.version
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == better.version
    forced, forced_run = register({"roc_auc": 0.60, "brier": 0.20}, force=True)
    assert forced.is_champion and forced.decision.forced
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == forced.version
    tags = client.get_run(forced_run).data.tags
    assert tags["champion_forced"] == "true" and "forced" in tags["champion_decision"]
    # The champion is loadable by alias.
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    names = [f.name for f in planted.features]
    frame = planted.frame[names].head(3).astype({"plan": str, "segment": str})
    assert isinstance(loaded.predict(frame), pd.DataFrame)
