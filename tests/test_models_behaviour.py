"""Behavioural tests of the fitted model: monotone in usage, blind to undeclared columns,
strict about its inputs, and reproducible."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from models.backtest import backtest
from models.config import ModelConfig
from models.train import ChurnModel
from simulator.synthetic import make_planted

#: Features whose "higher is healthy" declaration covers recent usage.
USAGE = ("events_30d", "active_days_30d", "active_users_30d", "utilisation_30d",
         "key_events_30d", "stickiness_30d", "distinct_events_30d")  # fmt: skip


@pytest.fixture
def planted(seed):
    return make_planted(accounts=1500, seed=seed, lead_days=(0, 30, 90))


def _model(seed: int, **kw) -> ChurnModel:
    return ChurnModel(learning_rate=0.1, seed=seed, num_threads=1, **kw)


def test_less_recent_usage_never_lowers_churn_probability(planted, seed):
    frame, feats = planted.frame, planted.features
    model = _model(seed, monotone=True, calibration="isotonic").fit(frame, feats)
    before = model.predict_risk(frame)
    for factor in (0.5, 0.1, 0.0):
        lower = frame.assign(**{c: frame[c] * factor for c in USAGE})
        after = model.predict_risk(lower)
        assert (after >= before - 1e-12).all(), f"usage x{factor} lowered a churn probability"
    # And the change is not vacuous: cutting usage raises risk for some accounts.
    assert (model.predict_risk(frame.assign(**{c: 0.0 for c in USAGE})) > before).any()


def test_a_column_from_the_future_is_not_used(planted, seed):
    frame, feats = planted.frame, planted.features
    rng = np.random.default_rng(seed)
    # Named like a feature, computed from the outcome: a leak if the model read it.
    leaky = frame.assign(events_next_30d=frame["label"] + rng.normal(0, 0.1, len(frame)))
    model = _model(seed).fit(leaky, feats)
    assert "events_next_30d" not in model.booster_.feature_name()
    assert list(model.booster_.feature_name()) == [f.name for f in feats]
    flipped = leaky.assign(events_next_30d=1 - leaky["events_next_30d"])
    np.testing.assert_array_equal(model.predict_risk(leaky), model.predict_risk(flipped))


def test_scoring_a_frame_without_a_fitted_feature_names_it(planted, seed):
    model = _model(seed).fit(planted.frame, planted.features)
    with pytest.raises(ValueError, match="Feature names seen at fit time, yet now missing: "
                                         "key_share_30d, nps_last"):  # fmt: skip
        model.predict_proba(planted.frame.drop(columns=["key_share_30d", "nps_last"]))


def test_training_on_a_frame_without_a_declared_feature_names_it(planted, seed):
    with pytest.raises(ValueError, match="lacks declared feature columns: urgent_open"):
        _model(seed).fit(planted.frame.drop(columns=["urgent_open"]), planted.features)


def test_unfitted_model_says_so(planted):
    with pytest.raises(ValueError, match="not fitted yet"):
        ChurnModel().predict_risk(planted.frame)


def test_estimator_contract(planted, seed):
    model = _model(seed, params={"num_leaves": 7})
    assert clone(model).get_params() == model.get_params()
    fitted = model.fit(planted.frame, planted.features)
    assert fitted is model
    assert model.params == {"num_leaves": 7}  # fit does not touch the parameters
    proba = model.predict_proba(planted.frame.head(50))
    assert proba.shape == (50, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert model.calibration_ in ("isotonic", "platt")


def test_new_category_levels_and_missing_values_are_scored(planted, seed):
    import pandas as pd

    model = _model(seed).fit(planted.frame, planted.features)
    rows = planted.frame.head(4).assign(plan=pd.Categorical(["unheard-of"] * 4), nps_last=np.nan)
    p = model.predict_risk(rows)
    assert np.isfinite(p).all()


def test_same_seed_same_model_and_same_metrics(seed):
    planted = make_planted(accounts=1500, seed=seed, lead_days=(0, 30, 90))
    a = _model(seed).fit(planted.frame, planted.features)
    b = _model(seed).fit(planted.frame, planted.features)
    assert a.model_string == b.model_string
    np.testing.assert_array_equal(a.predict_risk(planted.frame), b.predict_risk(planted.frame))
    cfg = ModelConfig(monotone="on", backtest_folds=2, learning_rate=0.1, seed=seed,
                      backtest_trials=2)  # fmt: skip
    m1 = backtest(planted.frame, planted.features, cfg, num_threads=1).metrics
    m2 = backtest(planted.frame, planted.features, cfg, num_threads=1).metrics
    assert m1.equals(m2)
    # A different seed gives a different model (the seed is really used).
    c = _model(seed + 1).fit(planted.frame, planted.features)
    assert c.model_string != a.model_string
