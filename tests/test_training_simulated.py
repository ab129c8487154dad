"""Integration: simulated world -> validated tables -> training set -> train -> score.

The world is small (500 accounts) to keep the suite short, so the figures are loose; the
planted-signal bounds are pinned in ``test_models_planted.py``.
"""

from __future__ import annotations

import os
from datetime import date

import mlflow
import numpy as np
import pytest

from features.scoring_set import build_scoring_set
from features.validate import load
from models.config import ModelConfig
from pipelines.config import ChurnConfig, TrackingConfig
from pipelines.training import run_training
from pipelines.training_inputs import as_training_set
from simulator import SimConfig, simulate, write_world

SEED = int(os.environ.get("CHURN_TEST_SEED", "42"))  # as the ``seed`` fixture (module scope)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    sim = simulate(SimConfig(accounts=500, seed=SEED))
    write_world(sim, root / "data", "parquet")
    return sim, load(root / "data"), root


@pytest.fixture(scope="module")
def trained(world):
    sim, clean, root = world
    cfg = ChurnConfig(
        seed=SEED,
        tracking=TrackingConfig(uri=f"sqlite:///{root}/mlruns/mlflow.db"),
        model=ModelConfig(trials=2, backtest_trials=1, seed=SEED, num_threads=1),
    )
    ts = as_training_set(clean, cfg)
    truth = sim.truth.set_index("contract_id")["true_churn_probability"]
    oracle = ts.frame["contract_id"].map(truth).to_numpy(float)
    before = mlflow.get_tracking_uri()
    result = run_training(ts, cfg, oracle=oracle)
    yield cfg, ts, oracle, result
    mlflow.set_tracking_uri(before)


def test_training_set_rows_all_have_a_true_probability(trained):
    _, ts, oracle, _ = trained
    assert len(ts.frame) > 1000
    assert np.isfinite(oracle).all()


def test_model_beats_the_hand_weighted_score_on_the_simulated_world(trained):
    *_, result = trained
    assert result.version == "1"
    beats = [result.metrics["roc_auc"] > result.baselines[b] for b in ("health_score", "logistic")]
    assert result.is_champion == all(beats), result.decision
    assert result.metrics["roc_auc"] > result.baselines["health_score"]
    assert result.metrics["roc_auc"] > 0.65
    assert result.baselines["oracle"] >= result.metrics["roc_auc"] - 0.02


def test_the_champion_scores_a_scoring_set_from_the_same_world(world, trained):
    _, clean, _ = world
    cfg, ts, _, _ = trained
    scoring = build_scoring_set(
        clean.tables, date(2025, 12, 1), cfg.labels, cfg.features, top_events=ts.top_events
    )
    assert len(scoring.frame) > 0
    model = mlflow.pyfunc.load_model(f"models:/{cfg.tracking.registered_model}/1")
    names = [f.name for f in ts.features]
    rows = scoring.frame[names].copy()
    for f in ts.features:
        if f.categorical:
            rows[f.name] = rows[f.name].astype(object).where(rows[f.name].notna(), None)
    p = model.predict(rows)["churn_probability"].to_numpy()
    assert p.shape == (len(rows),) and ((p >= 0) & (p <= 1)).all()
