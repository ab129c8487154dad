"""The ``train`` and ``backtest`` stages end to end on a planted training set, into MLflow."""

from __future__ import annotations

import os

import mlflow
import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient

from models.config import ModelConfig
from models.synthetic import make_planted
from pipelines.config import ChurnConfig, TrackingConfig
from pipelines.training import backtest, fingerprint, train

SEED = int(os.environ.get("CHURN_TEST_SEED", "42"))  # as the ``seed`` fixture (module scope)


@pytest.fixture(scope="module")
def planted():
    return make_planted(accounts=2500, seed=SEED, lead_days=(0, 30, 90))


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    return ChurnConfig(
        seed=SEED,
        tracking=TrackingConfig(uri=f"sqlite:///{root}/mlflow.db"),
        model=ModelConfig(trials=2, backtest_folds=3, learning_rate=0.1, seed=SEED, num_threads=1),
    )


@pytest.fixture(scope="module")
def first(planted, cfg, tmp_path_factory):
    before = mlflow.get_tracking_uri()
    out = tmp_path_factory.mktemp("out")
    result = train(planted, cfg, out_dir=out, oracle=planted.frame["oracle"])
    yield result, out
    mlflow.set_tracking_uri(before)


def test_train_registers_the_first_model_as_champion(first):
    result, _ = first
    assert result.version == "1" and result.is_champion
    assert 0.5 < result.metrics["roc_auc"] <= 1.0
    assert result.metrics["roc_auc"] > result.baselines["health_score"] + 0.05
    assert result.calibration in ("isotonic", "platt")


def test_train_logs_params_metrics_artifacts_and_the_data_fingerprint(first, cfg):
    result, out = first
    mlflow.set_tracking_uri(cfg.tracking.uri)
    run = MlflowClient().get_run(result.run_id)
    assert run.data.params["label"] == "renewal"
    assert run.data.params["model.trials"] == "2"
    assert "lgb_num_leaves" in run.data.params and "monotone_decision" in run.data.params
    assert run.data.metrics["backtest_model_roc_auc"] == pytest.approx(result.metrics["roc_auc"])
    assert "backtest_health_score_roc_auc" in run.data.metrics
    assert "backtest_oracle_roc_auc" in run.data.metrics
    assert run.data.tags["is_champion"] == "true"
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.digest
    files = {a.path for a in MlflowClient().list_artifacts(result.run_id)}
    assert {"backtest", "tuning", "feature_dictionary.json", "features.json"} <= files
    assert "scoring.json" in files  # what `churn score` reads beside the trees
    plots = {a.path for a in MlflowClient().list_artifacts(result.run_id, "backtest/plots")}
    assert "backtest/plots/calibration.png" in plots
    table = pd.read_csv(out / "backtest" / "metrics.csv")
    assert {"fold", "lead_days", "segment", "scorer", "roc_auc", "ece"} <= set(table.columns)


def test_an_interrupted_tuning_resumes_its_study(first, planted, cfg):
    # A larger budget in the settings (as `churn train --trials 3` gives) continues the study.
    more = cfg.model_copy(update={"model": cfg.model.model_copy(update={"trials": 3})})
    assert fingerprint(planted, more.model) == fingerprint(planted, cfg.model)
    again = train(planted, more)
    storage = f"sqlite:///{cfg.tracking.uri.removeprefix('sqlite:///').rsplit('/', 1)[0]}/optuna.db"
    study = optuna.load_study(
        study_name=f"churn-{fingerprint(planted, cfg.model)}", storage=storage
    )
    # Two trials from the first run plus one more: a budget, not two fresh studies.
    # (A different seed or learning rate is a different study.)
    other = cfg.model.model_copy(update={"learning_rate": 0.2})
    assert fingerprint(planted, other) != fingerprint(planted, cfg.model)
    assert len(study.trials) == 3
    assert again.version == "2"


def test_the_run_seed_is_the_model_seed_unless_set():
    from pipelines.training import model_settings

    assert model_settings(ChurnConfig(seed=11)).seed == 11
    assert model_settings(ChurnConfig(seed=11, model=ModelConfig(seed=3))).seed == 3


def test_backtest_stage_reuses_the_champion_parameters(first, planted, cfg):
    run = backtest(planted, cfg)
    champion = MlflowClient().get_model_version_by_alias(cfg.tracking.registered_model, "champion")
    assert run.params, "the champion's tuned parameters were not found"
    assert str(run.params["num_leaves"]) in champion.tags["tuned_params"]
    logged = MlflowClient().get_run(run.run_id)
    assert logged.data.tags["stage"] == "backtest"
    assert "backtest_model_roc_auc" in logged.data.metrics
