"""Explanations, bands, plays and drift: the pieces that turn a probability into an action."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from features.catalog import catalog
from models.bands import assign_bands, choose_thresholds, health_score, threshold_quality
from models.columns import matrix
from models.drift import baseline, drift_table, psi
from models.explain import (
    ALL_SEGMENTS,
    Driver,
    contributions,
    describe,
    displayed,
    explain_rows,
    family_contributions,
    format_value,
    references,
)
from models.explain_change import change_since
from models.plays import PlayConfig, choose_play, priority
from models.train import ChurnModel
from simulator.synthetic import make_planted


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


Explained = list[tuple[list[Driver], Driver | None]]


@pytest.fixture(scope="module")
def book() -> tuple[pd.DataFrame, Explained, pd.DataFrame, dict[str, dict[str, float]]]:
    """A planted book explained by a real model: trained on the earlier snapshots, scoring
    a few thousand of the later ones. Returns the rows, their drivers, the contributions
    and the references."""
    planted = make_planted(accounts=1500, seed=5)
    frame = planted.frame
    cut = frame["as_of"].quantile(0.7)
    train = frame[frame["label_known_at"] < cut]
    model = ChurnModel(learning_rate=0.1, num_threads=1).fit(train, planted.features)
    rows = frame[frame["as_of"] >= cut].head(4000)
    X = matrix(rows, model.features_, model.categories_)
    contrib = contributions(model.booster_, X, model.n_estimators_)
    refs = references(train, model.features_, train["label"] == 0)
    return rows, explain_rows(rows, contrib, model.features_, refs), contrib, refs


def _reads_as(d: Driver, side: str) -> bool:
    """An independent reading of a driver: is its value on ``side`` of its reference, both
    as numbers (strictly) and as the sentence prints them (different texts)?"""
    f = {f.name: f for f in catalog(static_columns=("plan", "segment"))}[d.feature]
    assert d.reference is not None and isinstance(d.value, float)
    if format_value(f, d.value) == format_value(f, d.reference):
        return False
    lower = d.value < d.reference
    higher = d.value > d.reference
    unhealthy = lower if d.healthy == "higher" else higher
    healthy = higher if d.healthy == "higher" else lower
    return unhealthy if side == "unhealthy" else healthy


def test_no_driver_contradicts_its_reference_over_a_planted_book(book) -> None:  # type: ignore[no-untyped-def]
    rows, explained, contrib, refs = book
    assert len(rows) >= 2000
    by = {f.name: f for f in catalog(static_columns=("plan", "segment"))}
    wrong, compared, restated = [], 0, 0
    for (_, row), (risks, protective) in zip(rows.iterrows(), explained, strict=True):
        shown = [(d, "unhealthy") for d in risks]
        shown += [(protective, "healthy")] if protective is not None else []
        for d, side in shown:
            f = by[d.feature]
            value = row[d.feature]
            seg_refs = refs.get(row["segment"]) or refs[ALL_SEGMENTS]
            if d.reference is None:
                # Shown without a comparison only where no side can be read.
                assert (
                    f.healthy == "none" or f.categorical or d.feature not in seg_refs
                    or value is None or (isinstance(value, float) and math.isnan(value))
                ), d.text  # fmt: skip
                continue
            compared += 1
            assert d.value == value and d.reference == seg_refs[d.feature], d.text
            assert format_value(f, d.value) in d.text and format_value(f, d.reference) in d.text
            if not _reads_as(d, side):
                wrong.append(d.text)
            # Stated by a member other than the family's largest mover: the rule at work.
            members = [n for n in contrib.columns if n in by and by[n].family == d.family]
            c = contrib.loc[row.name, members]
            restated += d.feature != (c.idxmax() if side == "unhealthy" else c.idxmin())
    assert not wrong, f"{len(wrong)} of {compared} drivers contradict their reference: {wrong[:5]}"
    assert compared > 0.7 * sum(len(r) for r, _ in explained), "most drivers are compared"
    assert restated > 10, "the book exercises the rule: some families change their member"
    with_risk = np.mean([len(risks) > 0 for risks, _ in explained])
    assert with_risk > 0.9, f"only {with_risk:.0%} of the rows get a risk driver"
    assert np.mean([len(risks) for risks, _ in explained]) > 2.0
    assert np.mean([p is not None for _, p in explained]) > 0.9


def test_a_driver_that_used_to_contradict_is_stated_by_a_member_that_does_not() -> None:
    by = {f.name: f for f in catalog(windows=(30,))}
    names = ["active_users_30d", "utilisation_30d", "events_30d", "days_since_last_event",
             "urgent_open", "key_share_30d", "nps_last"]  # fmt: skip
    feats = [by[n] for n in names]
    ref = {"active_users_30d": 5.0, "utilisation_30d": 0.55, "events_30d": 60.0,
           "days_since_last_event": 2.0, "urgent_open": 0.0, "key_share_30d": 0.28,
           "nps_last": 8.0}  # fmt: skip
    refs = {ALL_SEGMENTS: ref, "SMB": ref}
    frame = pd.DataFrame(
        {"segment": ["SMB", "SMB"], "seats": [30.0, 30.0],
         "active_users_30d": [6.0, 3.0], "utilisation_30d": [0.2, 0.548],
         "events_30d": [100.0, 100.0], "days_since_last_event": [1.0, 1.0],
         "urgent_open": [0.0, 0.0], "key_share_30d": [0.40, 0.40],
         "nps_last": [9.0, np.nan]}
    )  # fmt: skip
    contrib = pd.DataFrame(
        {"active_users_30d": [0.8, 0.3], "utilisation_30d": [0.3, 0.8],
         "events_30d": [0.5, 0.0], "days_since_last_event": [0.1, 0.0],
         "urgent_open": [-0.6, -0.6], "key_share_30d": [-0.2, -0.2],
         "nps_last": [0.0, 0.4], "bias": [-2.0, -2.0]}
    )  # fmt: skip
    (risks, protective), (risks2, protective2) = explain_rows(frame, contrib, feats, refs)
    # Before: "Active users (30 d): 6 users; healthy SMB accounts: 5 users" and "Events
    # (30 d): 100 events; healthy SMB accounts: 60 events" as risks, and "Urgent tickets
    # open: 0 tickets; healthy SMB accounts: 0 tickets" as protective.
    assert [d.text for d in risks] == [
        "Licence utilisation (30 d): 20% (6 of 30 seats); healthy SMB accounts: 55%"
    ], "breadth is stated by utilisation; frequency has no true member and is skipped"
    assert (risks[0].family, risks[0].contribution) == ("breadth", pytest.approx(1.1))
    assert (risks[0].value, risks[0].reference, risks[0].healthy) == (0.2, 0.55, "higher")
    assert protective is not None
    assert protective.text == "Key-feature share (30 d): 40%; healthy SMB accounts: 28%"
    assert protective.family == "depth", "0 urgent tickets against 0 is on no side"
    # 55% against 55% is on no side either (0.548 < 0.55 as numbers, not as read); a
    # missing NPS answer is stated without a comparison.
    assert [d.text for d in risks2] == [
        "Active users (30 d): 3 users; healthy SMB accounts: 5 users",
        "Last NPS answer: none recorded",
    ]
    assert (risks2[1].value, risks2[1].reference) == (None, None)
    assert protective2 is not None and protective2.family == "depth"


@pytest.mark.parametrize(
    "name",
    ["active_users_30d", "utilisation_30d", "events_change_30d", "nps_last", "arr",
     "days_since_last_event", "first_response_hours_90d", "sentiment_last"],
)  # fmt: skip
def test_displayed_values_differ_exactly_when_their_texts_do(name: str, seed: int) -> None:
    f = {f.name: f for f in catalog()}[name]
    rng = np.random.default_rng(seed)
    scale = {"utilisation_30d": 1.0, "events_change_30d": 1.0, "sentiment_last": 3.0}
    # Values near the rounding boundaries of every kind, and a few exact ties.
    a = np.round(rng.uniform(-0.5, 12, 400) * scale.get(name, 20), 3)
    a = np.concatenate([a, [0.0, 0.005, 0.015, 0.125, 0.145, 0.15, 2.5, 9.95, 9.96, 10.0]])
    b = np.concatenate([a[1:], a[:1]])
    da, db = displayed(f, a), displayed(f, b)
    for x, y, dx, dy in zip(a, b, da, db, strict=True):
        same_text = format_value(f, float(x)) == format_value(f, float(y))
        assert same_text == (dx == dy), (x, y, format_value(f, float(x)), dx, dy)
        if x < y:
            assert dx <= dy, "rounding keeps the order"


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
    # No side to read: a feature healthy in neither direction, or a missing value.
    renewal = {f.name: f for f in catalog()}["days_to_renewal"]
    assert describe(renewal, {"days_to_renewal": 30.0}, {"days_to_renewal": 120.0}, None) == (
        "Days to renewal: 30 days"
    )
    assert describe(days, {"days_since_champion": None}, {"days_since_champion": 2.0}, None) == (
        "Days since the champion was active: none recorded"
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


@pytest.mark.parametrize("lacking", ["nan", "column"])
def test_a_family_missing_last_time_counts_as_zero_and_is_still_named(lacking: str) -> None:
    # The previous run had no support features: its history holds NaN there (runs of
    # different models share one file), or no such column at all.
    ts0, ts1 = pd.Timestamp("2025-09-01", tz="UTC"), pd.Timestamp("2025-10-01", tz="UTC")
    prev = pd.DataFrame(
        {"account_id": ["A"], "as_of": [ts0], "churn_probability": [0.1],
         "support": [np.nan], "breadth": [0.2], "billing": [0.3]}
    )  # fmt: skip
    if lacking == "column":
        prev = prev.drop(columns="support")
    cur = pd.DataFrame(
        {"account_id": ["A"], "as_of": [ts1], "churn_probability": [0.4],
         "support": [1.2], "breadth": [0.1]}
    )  # fmt: skip
    # The biggest mover (support, +1.2) comes first; billing, gone today, counts as 0 (-0.3).
    assert change_since(prev, cur).iloc[0] == (
        "churn risk 10% -> 40% since 2025-09-01: support pain raised risk, billing lowered risk"
    )


def test_a_model_change_is_split_into_the_models_part_and_the_accounts() -> None:
    ts0, ts1 = pd.Timestamp("2025-09-01", tz="UTC"), pd.Timestamp("2025-10-01", tz="UTC")
    prev = pd.DataFrame(
        {"account_id": ["A", "B", "C"], "as_of": [ts0] * 3,
         "churn_probability": [0.2, 0.3, 0.1], "model_version": ["3", "3", "4"],
         "support": [0.1, 0.0, 0.0], "breadth": [0.4, 0.0, 0.0]}
    )  # fmt: skip
    cur = pd.DataFrame(
        {"account_id": ["A", "B", "C"], "as_of": [ts1] * 3,
         "churn_probability": [0.35, 0.3, 0.15], "model_version": ["4"] * 3,
         "support": [1.0, 0.0, 0.3], "breadth": [0.3, 0.0, 0.0]}
    )  # fmt: skip
    # Today's model (version 4) on A's values of 2025-09-01; B's previous row lacks
    # features that version 4 reads, so it has no such row.
    rescored = pd.DataFrame(
        {"account_id": ["A"], "churn_probability": [0.25], "support": [0.2], "breadth": [0.6]}
    )
    text = change_since(prev, cur, rescored=rescored)
    # Model: 20% -> 25% (+5 pts) on the same values; account: 25% -> 35% (+10 pts) with the
    # same model, moved by support (1.0 - 0.2 = +0.8) and breadth (0.3 - 0.6 = -0.3).
    assert text.iloc[0] == (
        "churn risk 20% -> 35% since 2025-09-01, with a new model (version 3 -> 4): "
        "+5 pts from the model (20% -> 25% on the values of 2025-09-01), "
        "+10 pts from the account (25% -> 35%): support pain raised risk, "
        "breadth of adoption lowered risk"
    )
    assert text.iloc[1] == (
        "churn risk 30% -> 30% since 2025-09-01, with a new model (version 3 -> 4) whose "
        "features differ from the previous model's, so the move cannot be split into the "
        "model's part and the account's"
    )
    assert text.iloc[2] == "churn risk 10% -> 15% since 2025-09-01: support pain raised risk"
