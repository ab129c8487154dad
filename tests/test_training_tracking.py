"""MLflow at the edge: where runs go, the pyfunc model, and the champion gate."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from models.champion import GateDecision, champion_gate, compare, first_model_gate
from models.train import ChurnModel
from pipelines.config import TrackingConfig
from pipelines.tracking import (
    CHAMPION,
    log_churn_model,
    register_with_gate,
    resolve_tracking_uri,
    setup_tracking,
)
from simulator.synthetic import make_planted

SEED = int(os.environ.get("CHURN_TEST_SEED", "42"))  # as the ``seed`` fixture (module scope)


def _rows(seed: int, n_accounts: int = 1500) -> tuple[np.ndarray, ...]:
    """Outcomes, a good and a worse churn probability, and accounts (two rows each)."""
    rng = np.random.default_rng(seed)
    accounts = np.repeat(np.arange(n_accounts), 2)
    truth = 1 / (1 + np.exp(-(-1.5 + 1.2 * rng.normal(size=accounts.size))))
    y = (rng.random(accounts.size) < truth).astype(float)
    noisy = 1 / (1 + np.exp(-(np.log(truth / (1 - truth)) + 1.5 * rng.normal(size=y.size))))
    return y, truth, noisy, accounts


def test_gate_promotes_only_a_challenger_better_on_identical_rows(seed):
    y, good, worse, accounts = _rows(seed)
    better = compare("same rows", y, good, worse, accounts, n_boot=200, seed=seed)
    assert better.auc.estimate > 0 and better.auc.low > 0 and better.verdict == "better"
    # Brier: the true probability has the lower one, so the difference is negative.
    assert better.brier is not None and better.brier.high < 0
    decision = champion_gate([better], "3")
    assert decision.promote and not decision.forced
    assert decision.reason.startswith("better than champion v3 (same rows: 3,000 snapshots")

    backwards = compare("same rows", y, worse, good, accounts, n_boot=200, seed=seed)
    assert backwards.verdict == "worse"
    refused = champion_gate([backwards], "3")
    assert not refused.promote and refused.reason.startswith("worse than champion v3")
    # One comparison worse, another better: never promoted.
    assert not champion_gate([better, backwards], "3").promote


def test_a_tie_keeps_the_champion_and_force_is_said_loudly(seed):
    y, good, _, accounts = _rows(seed)
    same = compare("same rows", y, good, good, accounts, n_boot=100, seed=seed)
    assert (same.auc.estimate, same.auc.low, same.auc.high) == (0.0, 0.0, 0.0)
    assert same.verdict == "tie"
    tie = champion_gate([same], "3")
    assert not tie.promote and "a tie with champion v3, which stays" in tie.reason
    forced = champion_gate([same], "3", force=True)
    assert forced.promote and forced.forced and forced.reason.startswith("FORCED (--force)")
    nothing = champion_gate([], "3", unavailable="the champion predicts another label")
    assert not nothing.promote and "another label" in nothing.reason


def test_a_first_model_must_beat_both_baselines(seed):
    y, good, worse, accounts = _rows(seed)
    versus = [
        compare("hand-weighted health score", y, good, worse, accounts, probabilities=False,
                n_boot=50, seed=seed),
        compare("logistic baseline", y, good, worse, accounts, n_boot=50, seed=seed),
    ]  # fmt: skip
    assert first_model_gate(versus).promote
    losing = [versus[0], compare("logistic baseline", y, worse, good, accounts, n_boot=50)]
    refused = first_model_gate(losing)
    assert not refused.promote
    assert "does not beat the logistic baseline on its own backtest" in refused.reason
    assert "registered without the champion alias" in refused.reason
    assert first_model_gate(losing, force=True).forced


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


#: The smallest scoring context a model can be logged with (``churn train`` logs the whole
#: record of its backtest: pipelines.context.scoring_context).
CONTEXT = {"thresholds": {"yellow": 0.1, "red": 0.3}, "references": {}}


def _log(tracking, model, frame) -> tuple[str, str]:
    with mlflow.start_run(experiment_id=tracking.experiment_id) as run:
        info = log_churn_model(model, frame, CONTEXT, top_events=("login",))
    return info.model_uri, run.info.run_id


class _Zeros(mlflow.pyfunc.PythonModel):
    """A pyfunc model that is no churn-health model."""

    def predict(self, context, model_input: pd.DataFrame, params=None) -> list[float]:
        return [0.0] * len(model_input)


def test_a_model_scoring_cannot_use_is_a_user_error_that_says_what_to_do(store, fitted):
    from features.errors import ContractError
    from pipelines.scoring_model import load_scoring_model
    from pipelines.tracking import ChurnPyfunc

    tracking, _ = store
    planted, model = fitted
    # A model of the first pyfunc (pickled), logged by hand without the run's scoring.json.
    with mlflow.start_run(experiment_id=tracking.experiment_id) as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=ChurnPyfunc(model))
        mlflow.log_dict({"top_events": []}, "features.json")
    with pytest.raises(ContractError, match=f"the run {run.info.run_id} of .* has no scoring.json"):
        load_scoring_model(info.model_uri)
    # Trained by the pipeline before the nested backtest: its record lacks the evaluation.
    uri, _ = _log(tracking, model, planted.frame.head(200))
    older = r"older version of churn-health.*lacks evaluation, band_quality.*Retrain it"
    with pytest.raises(ContractError, match=older):
        load_scoring_model(uri)
    # Another kind of model altogether.
    with mlflow.start_run(experiment_id=tracking.experiment_id):
        other = mlflow.pyfunc.log_model(name="model", python_model=_Zeros())
    with pytest.raises(ContractError, match=r"was not logged by churn train .*no churn-health"):
        load_scoring_model(other.model_uri)
    # No champion in the registry: what the alias needs and how to score without it.
    with pytest.raises(ContractError, match=r"The registry has no champion yet.*--force"):
        load_scoring_model("models:/no-such-model@champion")


def test_a_model_of_the_first_pickled_pyfunc_still_scores(store, fitted):
    """Versions registered before the self-contained model (a pickled ``ChurnPyfunc``, the
    context in the run's ``scoring.json``) still load, with the run's files and the default
    plays, and score as the fitted model does."""
    from pipelines.scoring_model import load_scoring_model
    from pipelines.tracking import ChurnPyfunc

    tracking, _ = store
    planted, model = fitted
    context = CONTEXT | {"evaluation": {}, "band_quality": []}
    with mlflow.start_run(experiment_id=tracking.experiment_id):
        info = mlflow.pyfunc.log_model(name="model", python_model=ChurnPyfunc(model))
        mlflow.log_dict({"top_events": ["login"]}, "features.json")
        mlflow.log_dict(context, "scoring.json")
    sm = load_scoring_model(info.model_uri)
    assert sm.top_events == ("login",) and sm.context == context
    assert sm.version == info.model_id, "not registered: the logged model's id"
    frame = planted.frame.head(50)
    np.testing.assert_array_equal(sm.scorer.predict_risk(frame), model.predict_risk(frame))


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
    schema = loaded.metadata.get_input_schema()
    assert schema.required_input_names() == names
    assert schema.optional_input_names() == ["account_id"], "segment is a feature here"
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


def test_champion_alias_moves_only_when_the_decision_promotes(store, fitted):
    tracking, _ = store
    planted, model = fitted
    name = "gate-test"
    client = MlflowClient()

    def register(promote: bool, forced: bool = False):
        uri, run_id = _log(tracking, model, planted.frame.head(200))
        decision = GateDecision(promote, forced, f"decided: promote={promote}")
        metrics = {"roc_auc": 0.8, "brier": 0.12}
        return register_with_gate(uri, run_id, metrics, name, decision), run_id

    first, _ = register(True)
    assert first.is_champion
    kept, kept_run = register(False)
    assert not kept.is_champion
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == first.version
    tags = client.get_run(kept_run).data.tags
    assert tags["is_champion"] == "false" and tags["champion_decision"] == "decided: promote=False"
    forced, forced_run = register(True, forced=True)
    assert forced.is_champion
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == forced.version
    assert client.get_run(forced_run).data.tags["champion_forced"] == "true"
    version = client.get_model_version(name, forced.version)
    assert version.tags["champion_forced"] == "true" and version.tags["backtest_roc_auc"]
    # The champion is loadable by alias.
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    names = [f.name for f in planted.features]
    frame = planted.frame[names].head(3).astype({"plan": str, "segment": str})
    assert isinstance(loaded.predict(frame), pd.DataFrame)


def test_the_model_carries_its_pins_and_loading_names_what_differs(store, fitted):
    """MLflow's own requirement check is skipped at load (it scans every installed
    package); the pins the model carries are compared with what is installed instead."""
    import importlib.metadata as md

    from pipelines.scoring_model import version_mismatches
    from pipelines.tracking import REQUIREMENTS

    tracking, _ = store
    planted, model = fitted
    uri, _ = _log(tracking, model, planted.frame)
    pins = mlflow.models.get_model_info(uri).metadata["requirements"]
    assert pins == [f"{p}=={md.version(p)}" for p in REQUIREMENTS]
    assert version_mismatches(pins) == []
    lgb = md.version("lightgbm")
    assert version_mismatches(["lightgbm==0.0.1", "no-such-package==1"]) == [
        f"lightgbm==0.0.1; installed: {lgb}",
        "no-such-package==1; installed: not installed",
    ]
