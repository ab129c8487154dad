"""Confidence-based performance estimates agree with labels drawn from calibrated scores."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from models.cbpe import (
    churn_count_interval,
    compare,
    estimate_performance,
    expected_auc,
    poisson_binomial_pmf,
)
from models.metrics import RED, band, band_precision, roc_auc


def book(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities (mean about 0.14), ARR, and bands with the top tenth red."""
    rng = np.random.default_rng(seed)
    p = rng.beta(1.0, 6.0, n)
    arr = np.round(rng.lognormal(10.0, 1.0, n))
    bands = band(p, (float(np.quantile(p, 0.7)), float(np.quantile(p, 0.9))))
    return p, arr, bands


def test_hand_computed_expected_auc_and_churners() -> None:
    # p = (0.9, 0.5, 0.2), ranked by p. Pairs (churner above renewer):
    # 0.9*0.5 + 0.9*0.8 + 0.5*0.8 = 1.57; E[#pos #neg] = 1.6*1.4 - (0.09+0.25+0.16) = 1.74.
    p = [0.9, 0.5, 0.2]
    assert expected_auc(p) == pytest.approx(1.57 / 1.74, abs=1e-12)
    # P(0..3 churners) by hand: 0.1*0.5*0.8, then 0.36+0.04+0.01, 0.36+0.09+0.01, 0.9*0.5*0.2.
    np.testing.assert_allclose(poisson_binomial_pmf(p), [0.04, 0.41, 0.46, 0.09], atol=1e-12)
    churners, method = churn_count_interval(p, level=0.9)
    # cdf (0.04, 0.45, 0.91, 1): the 5% quantile is 1 churner, the 95% quantile 3.
    assert churners.estimate == pytest.approx(1.6)
    assert (churners.low, churners.high, method) == (1.0, 3.0, "exact")


def test_hand_computed_expected_auc_with_tied_scores() -> None:
    # Scores (1, 1, 0): the tied pair counts one half in each order,
    # 0.6*0.9 + 0.6*0.9 + (0.6*0.4 + 0.4*0.6) / 2 = 1.32; E[#pos #neg] = 1.3*1.7 - 0.57 = 1.64.
    assert expected_auc([0.6, 0.6, 0.1], score=[1, 1, 0]) == pytest.approx(1.32 / 1.64)


def test_expected_auc_is_the_ratio_of_expected_wins_to_expected_pairs() -> None:
    """Against enumeration of all 2^4 label sets (an independent computation)."""
    p, score = np.array([0.7, 0.1, 0.4, 0.4]), np.array([3.0, 0.0, 2.0, 2.0])
    wins = pairs = 0.0
    for labels in itertools.product((0, 1), repeat=4):
        y = np.array(labels)
        chance = float(np.prod(np.where(y == 1, p, 1 - p)))
        pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        pairs += chance * pos.size * neg.size
        wins += chance * sum(
            1.0 if score[i] > score[j] else 0.5 if score[i] == score[j] else 0.0
            for i in pos
            for j in neg
        )
    assert expected_auc(p, score) == pytest.approx(wins / pairs, abs=1e-12)


def test_realized_figures_average_to_the_estimates(seed: int) -> None:
    """2,000 label sets drawn from calibrated p: realized means within 4 standard errors."""
    p, arr, bands = book(400, seed)
    est = estimate_performance(p, arr=arr, bands=bands, level=0.9, draws=2000, seed=seed)
    rng = np.random.default_rng(seed + 1)
    ys = (rng.random((2000, p.size)) < p).astype(float)
    realized = {
        "churners": ys.sum(axis=1),
        "arr_lost": ys @ arr,
        "auc": np.array([roc_auc(y, p) for y in ys]),
        "red_precision": np.array([band_precision(y, bands, RED) for y in ys]),
    }
    for metric, values in realized.items():
        expected = getattr(est, metric).estimate
        se = values.std(ddof=1) / math.sqrt(values.size)
        # The AUC is a ratio, E[W]/E[P]: its O(1/n) bias (about 1e-4 here) is within 4 SE.
        assert abs(values.mean() - expected) < 4 * se, (metric, values.mean(), expected, se)
        inside = np.mean(
            (values >= getattr(est, metric).low) & (values <= getattr(est, metric).high)
        )
        # Intervals are central 90% ranges of the realized figure (discrete ones: at least).
        assert 0.86 <= inside <= 0.97, (metric, inside)
    assert est.churners_method == "exact"
    assert est.n_red == int((bands == RED).sum())
    assert est.red_precision.estimate == pytest.approx(p[bands == RED].mean())
    assert est.red_recall.estimate == pytest.approx(p[bands == RED].sum() / p.sum())


def test_over_confident_score_promises_too_much(seed: int) -> None:
    """The assumption, documented: a score more extreme than the truth overstates the AUC."""
    rng = np.random.default_rng(seed)
    truth = rng.beta(1.0, 6.0, 400)
    logit = np.log(truth / (1 - truth))
    over = 1 / (1 + np.exp(-2.5 * (logit + 1.8)))  # same ranking, probabilities too extreme
    ys = (rng.random((500, truth.size)) < truth).astype(float)
    realized_auc = np.mean([roc_auc(y, over) for y in ys])
    assert expected_auc(over) - realized_auc > 0.05
    assert abs(expected_auc(truth) - realized_auc) < 0.01


def test_churner_interval_switches_to_normal_beyond_the_exact_size(seed: int) -> None:
    from models import cbpe

    p, _, _ = book(3000, seed)
    exact, _ = churn_count_interval(p)
    old = cbpe.EXACT_MAX
    try:
        cbpe.EXACT_MAX = 1000
        normal, method = churn_count_interval(p)
    finally:
        cbpe.EXACT_MAX = old
    assert method == "normal"
    assert abs(normal.low - exact.low) <= 1 and abs(normal.high - exact.high) <= 1


def test_compare_returns_errors_against_what_happened() -> None:
    p = np.array([0.9, 0.6, 0.3, 0.1])
    bands = np.array(["red", "red", "yellow", "green"])
    arr = np.array([100.0, 200.0, 300.0, 400.0])
    est = estimate_performance(p, arr=arr, bands=bands, draws=200, seed=0)
    checks = {c.metric: c for c in compare(est, [1, 0, 1, 0], p, arr=arr, bands=bands)}
    assert checks["churners"].realized == 2.0
    assert checks["churners"].error == pytest.approx(2.0 - 1.9)
    assert checks["churners"].within
    assert checks["arr_lost"].error == pytest.approx(400.0 - (90 + 120 + 90 + 40))
    # Realized AUC: churners at 0.9 and 0.3, renewers at 0.6 and 0.1: 3 of 4 pairs won.
    assert checks["auc"].realized == pytest.approx(0.75)
    assert checks["red_precision"].realized == 0.5
    assert checks["red_precision"].estimated == pytest.approx(0.75)
    assert checks["red_recall"].realized == 0.5
    assert checks["red_recall"].error == pytest.approx(0.5 - 1.5 / 1.9)


def test_all_zero_probabilities_give_zero_churners_and_an_explained_auc() -> None:
    est = estimate_performance(np.zeros(5), bands=["green"] * 5, draws=100)
    assert (est.churners.estimate, est.churners.low, est.churners.high) == (0.0, 0.0, 0.0)
    assert math.isnan(est.auc.estimate)
    assert "every probability is 0: no churner is expected" in est.notes[0]
    assert "no red accounts" in est.notes[1]


def test_single_account() -> None:
    est = estimate_performance([0.3], arr=[1000.0], bands=["red"], draws=100)
    assert (est.churners.low, est.churners.high) == (0.0, 1.0)
    assert est.churners.estimate == pytest.approx(0.3)
    assert est.arr_lost.estimate == pytest.approx(300.0)
    assert est.red_precision.estimate == pytest.approx(0.3)
    assert math.isnan(est.auc.estimate)
    assert est.notes == ("1 account(s): an AUC needs at least one churner and one renewer",)


def test_missing_arr_is_counted() -> None:
    est = estimate_performance([0.5, 0.5], arr=[100.0, np.nan], draws=0)
    assert est.arr_lost.estimate == 50.0 and est.n_arr_missing == 1


def test_bad_input_names_the_rule() -> None:
    with pytest.raises(ValueError, match=r"probabilities must be in \[0, 1\]; 2 are not"):
        estimate_performance([0.2, 1.5, np.nan])
    with pytest.raises(ValueError, match="score must be finite with one value per account"):
        estimate_performance([0.2, 0.4], score=[1.0])
    est = estimate_performance([0.2, 0.4], draws=0)
    with pytest.raises(ValueError, match="y must be 0/1 with one value per account"):
        compare(est, [0, 2], [0.2, 0.4])
