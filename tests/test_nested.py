"""Nested evaluation: nothing used to score a backtest fold comes from its validation period.

Every choice a fold makes (tree parameters, rounds, monotone constraints, calibration method
and calibrator, band thresholds) is made by the training procedure on the fold's training
rows alone. Two checks: an audit of the rows each fold's procedure read, and a property:
rewriting every outcome from a fold's cut-off on leaves that fold's choices and scores as
they were.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest

from features.errors import ChurnWarning
from models.backtest import backtest
from models.config import ModelConfig
from simulator.synthetic import make_planted

SEED = int(os.environ.get("CHURN_TEST_SEED", "42"))  # as the ``seed`` fixture (module scope)
CHOICES = ["n_estimators", "monotone", "calibration", "calibration_kind", "yellow", "red",
           "params"]  # fmt: skip


def _cfg(**more: object) -> ModelConfig:
    settings = {"monotone": "auto", "backtest_folds": 3, "backtest_trials": 3,
                "learning_rate": 0.1, "seed": SEED, "num_threads": 1, "bootstrap": 50}  # fmt: skip
    return ModelConfig(**(settings | more))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def planted() -> pd.DataFrame:
    return make_planted(accounts=1500, seed=SEED, lead_days=(0, 30, 90)).frame


@pytest.fixture(scope="module")
def features():  # type: ignore[no-untyped-def]
    return make_planted(accounts=10, seed=SEED).features


@pytest.fixture(scope="module")
def result(planted, features):  # type: ignore[no-untyped-def]
    return backtest(planted, features, _cfg())


@pytest.mark.parametrize("purge_days", [None, 60])
def test_no_row_a_fold_read_lies_in_or_after_its_validation_period(planted, features, purge_days):
    res = backtest(planted, features, _cfg(purge_days=purge_days, backtest_trials=1))
    frame = planted.reset_index(drop=True)
    assert res.kind == "out_of_time" and len(res.plan.folds) == 3
    for fold in res.plan.folds:
        used = frame.loc[res.rows_used[fold.name]]
        valid = frame.loc[fold.valid]
        assert len(used) > 1000
        assert used["label_known_at"].max() < fold.cutoff <= valid["as_of"].min()
        assert used["as_of"].max() < fold.cutoff
        if purge_days:
            assert used["as_of"].max() < fold.cutoff - pd.Timedelta(days=purge_days)
        assert not set(used.index) & set(valid.index)


def test_rewriting_the_future_changes_no_choice_of_an_earlier_fold(planted, features, result):
    rng = np.random.default_rng(SEED)
    first = result.plan.folds[0]
    later = (planted["label_known_at"] >= first.cutoff).to_numpy()
    # Every outcome known from the first cut-off on is redrawn at random, and the later rows'
    # features are scrambled too: a procedure that peeked would choose differently.
    rewritten = planted.copy()
    rewritten.loc[later, "label"] = rng.integers(0, 2, int(later.sum()))
    rewritten.loc[later, "events_30d"] = rng.permutation(planted.loc[later, "events_30d"])
    with warnings.catch_warnings():
        # Random outcomes can leave a later fold's trees ranking worse than chance, which
        # the model warns about; that fold is not what this test reads.
        warnings.simplefilter("ignore", ChurnWarning)
        again = backtest(rewritten, features, _cfg())
    before = result.folds.set_index("fold").loc[first.name, CHOICES]
    after = again.folds.set_index("fold").loc[first.name, CHOICES]
    pd.testing.assert_series_equal(before, after)
    # Its scores move only where the scored rows' own features were scrambled.
    a = result.scores[result.scores["fold"] == first.name]
    b = again.scores[again.scores["fold"] == first.name]
    same_features = ~later[a["row"].to_numpy()]
    np.testing.assert_array_equal(a["model"].to_numpy()[same_features],
                                  b["model"].to_numpy()[same_features])  # fmt: skip
    # And the rewrite is not vacuous: later folds do choose differently.
    assert not result.folds.iloc[-1][CHOICES].equals(again.folds.iloc[-1][CHOICES])


def test_a_young_book_is_checked_on_held_out_accounts_never_seen(planted, features):
    # 400 accounts, nine months of outcomes: no cut-off has 30 churned terms on both sides.
    few = planted["account_id"].isin(planted["account_id"].unique()[:400])
    cycle = planted[few & (planted["label_known_at"] >= pd.Timestamp("2025-04-01", tz="UTC"))]
    res = backtest(cycle, features, _cfg(backtest_trials=1))
    assert res.kind == "cross_fitted" and len(res.plan.skipped) == 3
    frame = cycle.reset_index(drop=True)
    for fold in res.plan.folds:
        seen = set(frame.loc[res.rows_used[fold.name], "account_id"])
        assert not seen & set(frame.loc[fold.valid, "account_id"])
    assert set(res.folds["calibration_kind"]) <= {"out_of_time", "cross_fitted"}
    assert res.summary("model")["rows"] == len(cycle), "every row scored once"
    assert res.summary("model")["roc_auc"] > 0.6  # 400 accounts, about 60 churned terms
