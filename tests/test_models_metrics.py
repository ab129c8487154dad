"""Metrics against hand-computed values, and the baselines' documented behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import metrics as m
from models.baselines import (
    HEALTH_WEIGHTS,
    EngagementScore,
    HealthScore,
    LogisticBaseline,
    health_band,
)
from simulator.synthetic import make_planted


def test_ece_equal_frequency_bins_by_hand():
    y = np.array([0, 0, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.9])
    # Three bins of two rows, sorted by p: {0.1,0.2}|y=0,0  {0.3,0.4}|y=1,0  {0.8,0.9}|y=1,1
    # |0.15-0| + |0.35-0.5| + |0.85-1| = 0.15 + 0.15 + 0.15, each weighted 2/6 -> 0.15.
    assert m.ece(y, p, bins=3) == pytest.approx(0.15)


def test_brier_and_log_loss_by_hand():
    y, p = np.array([1, 0]), np.array([0.8, 0.4])
    assert m.brier(y, p) == pytest.approx((0.2**2 + 0.4**2) / 2)
    assert m.log_loss(y, p) == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)


def test_roc_auc_is_the_share_of_correctly_ordered_pairs():
    y = np.array([1, 0, 1, 0])
    risk = np.array([0.9, 0.8, 0.3, 0.1])
    # Pairs (churner, renewer): (0.9,0.8) ok, (0.9,0.1) ok, (0.3,0.8) wrong, (0.3,0.1) ok -> 3/4.
    assert m.roc_auc(y, risk) == pytest.approx(0.75)
    assert np.isnan(m.roc_auc(np.zeros(4), risk))


def test_top_decile_lift_and_recall_by_hand():
    y = np.array([1] * 2 + [0] * 8 + [1] * 2 + [0] * 8)  # 20 rows, 4 churners, rate 0.2
    risk = np.linspace(1, 0, 20)  # rows 0-1 are the top decile, both churners
    lift, recall = m.top_share(y, risk, 0.1)
    assert lift == pytest.approx(1.0 / 0.2)
    assert recall == pytest.approx(2 / 4)


def test_red_arr_share_and_watermelon_rate_by_hand():
    y = np.array([1, 1, 1, 0])
    bands = np.array(["red", "green", "yellow", "green"])
    arr = np.array([100.0, 300.0, np.nan, 50.0])
    assert m.red_arr_share(y, bands, arr) == pytest.approx(100 / 400)
    assert m.watermelon_rate(y, bands) == pytest.approx(1 / 3)


def test_probability_bands_use_the_configured_thresholds():
    assert m.band([0.05, 0.10, 0.24, 0.25], (0.10, 0.25)).tolist() == [
        "green",
        "yellow",
        "yellow",
        "red",
    ]
    assert health_band(np.array([10.0, 40.0, 69.9, 70.0])).tolist() == [
        "red",
        "yellow",
        "yellow",
        "green",
    ]


@pytest.fixture(scope="module")
def planted():
    return make_planted(accounts=800, seed=5)


def test_health_score_is_a_weighted_mean_of_percentiles(planted):
    frame, feats = planted.frame, planted.features
    hs = HealthScore().fit(frame, feats)
    parts = hs.components_of(frame)
    assert set(parts.columns) == {"frequency", "breadth", "depth", "voice", "support"}
    # Row 0 by hand from its component scores and the documented weights.
    row = parts.iloc[0]
    known = row.dropna()
    w = np.array([HEALTH_WEIGHTS[c] for c in known.index])
    assert hs.score(frame.iloc[:1])[0] == pytest.approx((known.to_numpy() * w).sum() / w.sum())
    score = hs.score(frame)
    assert score.min() >= 0 and score.max() <= 100
    # Support is healthy when low: more urgent tickets, lower support score.
    more = frame.assign(urgent_open=frame["urgent_open"] + 5)
    assert (hs.components_of(more)["support"] <= parts["support"]).all()


def test_engagement_score_is_the_mean_of_three_percentiles(planted):
    pes = EngagementScore().fit(planted.frame, planted.features)
    parts = pes.components_of(planted.frame)
    assert list(parts.columns) == ["adoption", "stickiness", "growth"]
    np.testing.assert_allclose(pes.score(planted.frame), parts.mean(axis=1).to_numpy())


def test_baselines_refuse_frames_missing_their_columns(planted):
    frame, feats = planted.frame, planted.features
    for est in (HealthScore(), EngagementScore(), LogisticBaseline()):
        est.fit(frame, feats)
        with pytest.raises(ValueError, match=r"seen at fit time, yet now missing: .*_30d"):
            est.predict_risk(frame.drop(columns=["stickiness_30d", "events_30d"]))


def test_logistic_baseline_handles_missing_values_and_unseen_levels(planted):
    frame, feats = planted.frame, planted.features
    lr = LogisticBaseline().fit(frame, feats)
    new = frame.head(3).assign(nps_last=np.nan, plan=pd.Categorical(["new-plan"] * 3))
    p = lr.predict_risk(new)
    assert np.isfinite(p).all() and ((p > 0) & (p < 1)).all()


def test_fast_auc_and_average_precision_match_scikit_learn(seed):
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    # Rounded scores: many ties, where the definitions differ most easily.
    risk = np.round(rng.random(500) + 0.3 * y, 1)
    assert m.roc_auc(y, risk) == pytest.approx(roc_auc_score(y, risk), abs=1e-12)
    assert m.pr_auc(y, risk) == pytest.approx(average_precision_score(y, risk), abs=1e-12)
