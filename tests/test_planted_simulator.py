"""Planted signal on the simulator: at renewal time the model comes within 0.03 of the oracle.

Issue 4's acceptance test, on a world from :mod:`simulator` taken through the whole
pipeline (write the files, validate them, build the training set, backtest). The oracle is
the truth's ``true_churn_probability``: the churn probability given the simulator's
drivers, averaged over the per-term noise that no table reveals (``docs/simulator.md``,
"Outcome"). ``tests/test_models_planted.py`` holds the same bounds on a frame with a
planted formula; this file holds them on the simulated world itself.

Only the lead-0 snapshots are built and scored. The oracle's drivers read the 13 weeks
before the term's ``end_date`` and the champion's departure at any time in the term, so
the lead-0 snapshot (``as_of`` = the renewal date, the renewal-time score) is the only one
whose as-of date sees everything the oracle uses; a snapshot 30-180 days earlier would be
held to an oracle that knows its future.

Measured with this file's settings (6,000 accounts; about 5,100 scored renewals, 800 of
them churned; ROC AUC of the model / oracle / hand-weighted score, and the gap):

=====  ======================  =====
seed   model / oracle / hand   gap
=====  ======================  =====
42     0.819 / 0.834 / 0.658   0.016
1      0.816 / 0.835 / 0.690   0.019
7      0.815 / 0.839 / 0.678   0.024
2      0.823 / 0.840 / 0.690   0.017
5      0.828 / 0.851 / 0.684   0.023
3      0.822 / 0.845 / 0.679   0.023
11     0.817 / 0.841 / 0.666   0.024
=====  ======================  =====

The bootstrap standard error of the gap on these rows is about 0.0035. What remains is
spread over many imperfect proxies, none dominant: the drivers are key events *per seat*,
weekly active users per seat, invoices paid more than 30 days late and the latent health,
which the features see only in part (with the true logit added as a column the gap falls
to about 0.008). At 3,000 accounts the gap is 0.022-0.037 with a standard error of 0.006:
too close to the bound to test. The expected calibration error of the last fold
(about 1,300 rows) is 0.017-0.035, and the oracle's own is 0.015-0.031 on the same rows,
so it is not asserted here; ``tests/test_models_planted.py`` asserts it on a larger frame.

The file takes about 90 s on one thread, most of it simulating and building features.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.config import FeatureConfig, LabelConfig
from features.read import connect
from features.training import TrainingSet, build_training_set
from features.validate import load
from models.backtest import ALL, BacktestResult, backtest
from models.config import ModelConfig
from simulator import SimConfig, simulate, write_world

# Module-scoped fixtures cannot take the function-scoped ``seed`` fixture: same source.
SEED = int(os.environ.get("CHURN_TEST_SEED", "42"))
ACCOUNTS = 6_000


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainingSet, pd.Series]:
    """The lead-0 training set of a simulated world and the oracle of each of its rows."""
    root: Path = tmp_path_factory.mktemp("planted_world")
    sim = simulate(SimConfig(accounts=ACCOUNTS, seed=SEED))
    write_world(sim, root / "data", "parquet")
    truth = sim.truth.set_index("contract_id")["true_churn_probability"]
    del sim  # free the in-memory tables before the feature build: it sets the peak memory
    clean = load(root / "data", connect("duckdb", threads=1))
    ts = build_training_set(clean.tables, LabelConfig(lead_days=(0,)), FeatureConfig())
    return ts, ts.frame["contract_id"].map(truth)


@pytest.fixture(scope="module")
def result(world: tuple[TrainingSet, pd.Series]) -> BacktestResult:
    ts, oracle = world
    # One Optuna trial per fold (the default parameters): the procedure is still nested.
    cfg = ModelConfig(monotone="on", seed=SEED, num_threads=1, backtest_trials=1)
    return backtest(ts.frame, ts.features, cfg, oracle=oracle.to_numpy(float), num_threads=1)


def test_every_row_is_a_renewal_time_snapshot_with_a_true_probability(world):
    ts, oracle = world
    assert set(ts.frame["lead_days"]) == {0}
    assert (ts.frame["as_of"] == ts.frame["renewal_date"]).all()
    assert np.isfinite(oracle.to_numpy(float)).all()


def test_model_is_within_003_roc_auc_of_the_oracle_on_the_same_rows(result):
    model, oracle = result.summary("model"), result.summary("oracle")
    # About 800 churned renewals among the scored rows: enough for the gap to be
    # measured to about 0.0035 (bootstrap standard error).
    assert model["rows"] == oracle["rows"] > 4_000
    assert model["churned"] > 600
    assert oracle["roc_auc"] - model["roc_auc"] < 0.03


def test_model_beats_the_hand_weighted_health_score_by_010(result):
    model, health = result.summary("model"), result.summary("health_score")
    assert model["rows"] == health["rows"]
    assert model["roc_auc"] - health["roc_auc"] >= 0.10


def test_backtest_scores_four_quarterly_folds_at_lead_0(result):
    t = result.metrics
    folds = [f for f in t.fold.unique() if f != ALL]
    assert len(folds) == 4
    assert set(t.lead_days.dropna().astype(int)) == {0}
