"""Explanations, bands, plays and drift: the pieces that turn a probability into an action."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from features.catalog import catalog
from models.bands import assign_bands, choose_thresholds, health_score, threshold_quality
from models.columns import matrix
from models.drift import baseline, drift_table, psi
from models.explain import (
    change_since,
    contributions,
    describe,
    explain_rows,
    family_contributions,
    references,
)
from models.plays import PlayConfig, choose_play, priority
from models.synthetic import make_planted
from models.train import ChurnModel


@pytest.fixture(scope="module")
def fitted() -> tuple[ChurnModel, pd.DataFrame]:
    planted = make_planted(accounts=1200, seed=3)
    model = ChurnModel(monotone=True, seed=3, num_threads=1).fit(planted.frame, planted.features)
    return model, planted.frame


def test_shap_contributions_add_up_to_the_raw_output(fitted) -> None:  # type: ignore[no-untyped-def]
    model, frame = fitted
    X = matrix(frame, model.features_, model.categories_)
    contrib = contributions(model.booster_, X, model.n_estimators_)
    raw = model.booster_.predict(X, raw_score=True, num_iteration=model.n_estimators_)
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy(), raw, atol=1e-9)


def test_native_contributions_agree_with_shap_tree_explainer(fitted) -> None:  # type: ignore[no-untyped-def]
    shap = pytest.importorskip("shap")
    model, frame = fitted
    rows = frame.head(300)
    X = matrix(rows, model.features_, model.categories_)
    native = contributions(model.booster_, X, model.n_estimators_)
    # shap reads the same trees; categorical splits need the numeric codes LightGBM saw.
    coded = X.apply(lambda c: c.cat.codes.replace(-1, np.nan) if c.dtype == "category" else c)
    booster = model.booster_
    if model.n_estimators_ < booster.current_iteration():
        booster = booster.model_from_string(
            booster.model_to_string(num_iteration=model.n_estimators_)
        )
    explainer = shap.TreeExplainer(booster)
    values = explainer.shap_values(coded.to_numpy(dtype=float))
    values = values[1] if isinstance(values, list) else values
    np.testing.assert_allclose(values, native.drop(columns="bias").to_numpy(), atol=1e-6)
    base = np.ravel(explainer.expected_value)[-1]
    np.testing.assert_allclose(native["bias"].to_numpy(), base, atol=1e-6)


def test_planted_key_feature_gap_is_the_top_driver(fitted) -> None:  # type: ignore[no-untyped-def]
    model, frame = fitted
    X = matrix(frame, model.features_, model.categories_)
    contrib = contributions(model.booster_, X, model.n_estimators_)
    healthy = frame["label"] == 0
    refs = references(frame, model.features_, healthy)
    # Rows whose key-feature use is in the bottom decile and nothing else is off.
    low_key = frame["key_events_30d"] <= frame["key_events_30d"].quantile(0.1)
    calm = (frame["urgent_open"] == 0) & (frame["invoices_overdue"] == 0)
    rows = frame[low_key & calm]
    explained = explain_rows(rows, contrib.loc[rows.index], model.features_, refs)
    top = [r[0][0].family if r[0] else None for r in explained]
    share = np.mean([t == "depth" for t in top])
    assert share > 0.6, f"depth is the top driver for only {share:.0%} of low key-feature rows"
    risks, _ = explained[0]
    assert len(risks) <= 3
    assert all(a.contribution >= b.contribution for a, b in itertools.pairwise(risks))


def test_driver_text_names_value_and_healthy_reference() -> None:
    util = {f.name: f for f in catalog()}["utilisation_30d"]
    row = {"utilisation_30d": 3 / 40, "active_users_30d": 3.0, "seats": 40.0}
    text = describe(util, row, {"utilisation_30d": 0.55}, "Mid-Market")
    assert text == (
        "Licence utilisation (30 d): 8% (3 of 40 seats); healthy Mid-Market accounts: 55%"
    )
    days = {f.name: f for f in catalog()}["days_since_champion"]
    assert describe(days, {"days_since_champion": 41.0}, {"days_since_champion": 2.0}, None) == (
        "Days since the champion was active: 41 days; healthy accounts: 2 days"
    )


def test_family_contributions_sum_the_members() -> None:
    feats = catalog(windows=(30,))
    by = {f.name: f for f in feats}
    chosen = [by["events_30d"], by["active_days_30d"], by["utilisation_30d"]]
    contrib = pd.DataFrame(
        {"events_30d": [0.5], "active_days_30d": [0.25], "utilisation_30d": [-1.0], "bias": [-2.0]}
    )
    fam = family_contributions(contrib, chosen)
    assert fam.loc[0, "frequency"] == pytest.approx(0.75)
    assert fam.loc[0, "breadth"] == pytest.approx(-1.0)


def test_thresholds_from_precision_and_recall() -> None:
    # Sorted by p: the top 4 hold 3 churners (precision 0.75 at p >= 0.6); all 5 churners
    # are caught at p >= 0.2 (recall 1.0), 4 of 5 at p >= 0.3.
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    y = np.array([1, 1, 0, 1, 0, 0, 1, 1, 0, 0])
    yellow, red = choose_thresholds(p, y, red_precision=0.75, yellow_recall=0.8)
    assert red == 0.6
    assert yellow == 0.3
    q = threshold_quality(p, y, yellow, red).set_index("band")
    assert q.loc["red", "precision"] == pytest.approx(0.75)
    assert q.loc["yellow", "recall"] == pytest.approx(0.8)


def test_bands_and_health_score() -> None:
    p = np.array([0.05, 0.2, 0.35, 0.999])
    assert health_score(p).tolist() == [95, 80, 65, 0]
    seg = pd.Series(["SMB", "SMB", "Enterprise", "Enterprise"])
    assert assign_bands(p, seg, (0.15, 0.3)).tolist() == ["green", "yellow", "red", "red"]
    per = {"Enterprise": (0.4, 0.5)}
    assert assign_bands(p, seg, (0.15, 0.3), per).tolist() == ["green", "yellow", "green", "red"]


def test_plays_and_priority() -> None:
    cfg = PlayConfig()
    assert choose_play("support", "red", cfg).startswith("Escalate to the support lead")
    assert choose_play("support", "green", cfg) == cfg.healthy
    assert priority(50_000.0, 0.3) == pytest.approx(15_000.0)
    assert priority(float("nan"), 0.3) == 0.0


def test_psi_is_zero_for_the_same_population_and_large_for_a_shift(seed: int) -> None:
    rng = np.random.default_rng(seed)
    train = pd.DataFrame({"x": rng.normal(size=5000)})
    base = baseline(train, ["x"])
    same = drift_table(pd.DataFrame({"x": rng.normal(size=5000)}), base, {"x": "X"})
    shifted = drift_table(pd.DataFrame({"x": rng.normal(1.0, size=5000)}), base, {"x": "X"})
    assert same.loc[0, "psi"] < 0.02 and same.loc[0, "status"] == "ok"
    assert shifted.loc[0, "psi"] > 0.25 and shifted.loc[0, "status"] == "drift"
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0


def test_change_since_the_last_run_names_what_moved() -> None:
    ts0, ts1 = pd.Timestamp("2025-09-01", tz="UTC"), pd.Timestamp("2025-10-01", tz="UTC")
    prev = pd.DataFrame(
        {"account_id": ["A", "B"], "as_of": [ts0, ts0], "churn_probability": [0.1, 0.2],
         "support": [0.0, 0.1], "breadth": [0.2, 0.0]}
    )  # fmt: skip
    cur = pd.DataFrame(
        {"account_id": ["A", "C"], "as_of": [ts1, ts1], "churn_probability": [0.4, 0.3],
         "support": [1.2, 0.0], "breadth": [0.1, 0.0]}
    )  # fmt: skip
    text = change_since(prev, cur)
    assert text.iloc[0] == (
        "churn risk 10% -> 40% since 2025-09-01: support pain raised risk, "
        "breadth of adoption lowered risk"
    )
    assert text.iloc[1] == "", "not scored last time"
