"""The AIPW estimate of a play's effect recovers planted effects that a naive comparison misses.

The worlds are generated here, with a known effect on the churn probability and plays
assigned the way CSMs assign them: mostly to risky and large accounts. The baseline churn
probability lies in [0.15, 0.85] and the effect is added to it, so the effect is the same
for every account and the average over any subset (the overlap region) is the planted one.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.play_effects import (
    MIN_TREATED,
    PlayEffect,
    describe,
    estimate_effect,
)
from models.uncertainty import Interval

COVARIATES = ["p", "usage", "tickets", "arr", "segment"]


def world(n: int, effect: float, seed: int) -> pd.DataFrame:
    """Account-renewals where the play changes churn by ``effect`` (probability, not points).

    ``p`` is the model's calibrated point-in-time probability (here the true baseline risk).
    The play goes with probability sigmoid(-1 + 9 (p - 0.5) + z(log ARR)): risky and large
    accounts get it far more often, so the treated would churn more even without the play.
    """
    rng = np.random.default_rng(seed)
    segment = rng.choice(["smb", "mid", "ent"], size=n, p=[0.5, 0.3, 0.2])
    log_arr = rng.normal(9.5, 0.6, n) + np.select(
        [segment == "mid", segment == "ent"], [1.0, 2.0], 0.0
    )
    usage, tickets = rng.normal(0, 1, n), rng.normal(0, 1, n)
    risk = -0.3 - 1.0 * usage + 0.6 * tickets - 0.3 * (log_arr - 10.3)
    p0 = 0.15 + 0.7 / (1 + np.exp(-risk))
    propensity = 1 / (1 + np.exp(-(-1.0 + 9.0 * (p0 - 0.5) + (log_arr - 10.3))))
    treated = rng.random(n) < propensity
    churned = rng.random(n) < p0 + effect * treated
    return pd.DataFrame({
        "treated": treated.astype(int), "churned": churned.astype(int), "p": p0,
        "usage": usage, "tickets": tickets, "arr": np.exp(log_arr), "segment": segment,
    })  # fmt: skip


def estimate(frame: pd.DataFrame, **kw: object) -> PlayEffect:
    args: dict[str, object] = {
        "treatment": "treated",
        "outcome": "churned",
        "covariates": COVARIATES,
        "play": "Executive sponsor call",
    }
    return estimate_effect(frame, **(args | kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("estimand", ["att", "ate"])
@pytest.mark.parametrize("planted", [-0.10, 0.0, 0.08], ids=["helps", "null", "harms"])
def test_aipw_recovers_planted_effect_and_naive_does_not(
    planted: float, estimand: str, seed: int
) -> None:
    frame = world(3000, planted, seed)
    result = estimate(frame, seed=seed, n_boot=300, level=0.95, estimand=estimand)
    truth = 100 * planted
    assert result.ok, result.reason
    assert result.effect.low <= truth <= result.effect.high, result.effect
    assert abs(result.effect.estimate - truth) < 5.0
    # The naive difference is off by the confounding (the treated were riskier): outside
    # the AIPW interval and at least 8 points above the truth.
    assert not result.effect.low <= result.naive.estimate <= result.effect.high, result.naive
    assert result.naive.estimate - truth > 8.0
    assert result.n_treated_overlap >= MIN_TREATED
    # ATT trims only where the play was near certain; ATE also where it was near impossible.
    assert 0 < result.n_trimmed < result.n_units
    assert result.n_overlap <= result.n_units - result.n_trimmed
    if estimand == "ate":
        assert result.n_trimmed == result.n_units - result.n_overlap
    assert (
        result.overlap is not None
        and int(result.overlap.sum()) == result.n_units - result.n_trimmed
    )
    assert result.se > 0


def test_naive_says_a_helpful_play_hurts(seed: int) -> None:
    """The headline of the issue: a play that cuts churn by 10 points looks harmful raw."""
    result = estimate(world(3000, -0.10, seed), seed=seed, n_boot=200)
    assert result.naive.estimate > 0 > result.effect.high


def test_lightgbm_learner_recovers_the_helpful_play(seed: int) -> None:
    result = estimate(world(3000, -0.10, seed), seed=seed, n_boot=200, level=0.95,
                      learner="lightgbm")  # fmt: skip
    assert result.ok, result.reason
    assert result.effect.low <= -10.0 <= result.effect.high, result.effect


def test_interval_coverage_over_replications(seed: int) -> None:
    """20 small worlds: the 90% interval holds the planted -10 points in >= 80% of them."""
    hits = []
    for rep in range(20):
        frame = world(1500, -0.10, seed * 1000 + rep)
        result = estimate(frame, seed=rep, n_boot=200, level=0.9)
        hits.append(result.effect.low <= -10.0 <= result.effect.high)
    assert np.mean(hits) >= 0.8, f"coverage {np.mean(hits):.0%} over 20 worlds"


def no_overlap_world(seed: int) -> pd.DataFrame:
    """The play goes only to accounts above 0.8 risk, and every one of them gets it."""
    rng = np.random.default_rng(seed)
    frame = world(1500, 0.0, seed)
    treated = rng.random(len(frame)) < 0.2
    p = np.where(treated, rng.uniform(0.8, 0.95, len(frame)), rng.uniform(0.02, 0.8, len(frame)))
    return frame.assign(treated=treated.astype(int), p=p,
                        churned=(rng.random(len(frame)) < p).astype(int))  # fmt: skip


@pytest.mark.parametrize("learner", ["logistic", "lightgbm"])
def test_refuses_without_overlap(learner: str, seed: int) -> None:
    result = estimate(no_overlap_world(seed), seed=seed, n_boot=100, learner=learner)
    assert result.status == "no overlap"
    assert math.isnan(result.effect.estimate)
    assert result.n_treated_overlap < MIN_TREATED or result.n_untreated_overlap < MIN_TREATED
    assert result.reason.startswith("Executive sponsor call: only ")
    assert f"of {result.n_treated} treated" in result.reason
    # The naive difference is still shown: it is the figure the refusal protects against.
    assert result.naive.estimate > 30
    assert describe(result)[0].startswith("Executive sponsor call: no estimate (no overlap).")


def test_refuses_with_too_few_treated(seed: int) -> None:
    frame = world(800, -0.10, seed)
    frame = frame.assign(treated=0)
    frame.loc[frame.index[:8], "treated"] = 1
    result = estimate(frame, seed=seed)
    assert result.status == "too few"
    assert "8 treated and 792 untreated" in result.reason
    assert math.isnan(result.effect.estimate)


def test_same_seed_same_numbers(seed: int) -> None:
    frame = world(800, -0.10, seed)
    first, again = (estimate(frame, seed=seed, n_boot=100) for _ in range(2))
    assert first == again
    other = estimate(frame, seed=seed + 1, n_boot=100)
    assert other.effect != first.effect


def test_input_is_not_modified(seed: int) -> None:
    frame = world(400, 0.0, seed)
    before = frame.copy()
    estimate(frame, seed=seed, n_boot=50)
    pd.testing.assert_frame_equal(frame, before)


def test_missing_covariate_values_are_filled_and_flagged(seed: int) -> None:
    frame = world(3000, -0.10, seed)
    frame.loc[frame.index[::7], "usage"] = np.nan
    result = estimate(frame, seed=seed, n_boot=200, level=0.95)
    assert result.ok
    assert result.effect.low <= -10.0 <= result.effect.high


def test_bad_input_names_the_column_and_the_rule(seed: int) -> None:
    frame = world(200, 0.0, seed)
    with pytest.raises(ValueError, match=r"columns \['health'\] are not in the frame"):
        estimate(frame, covariates=["p", "health"])
    with pytest.raises(ValueError, match=r"treated must be 0/1 .* 1 rows are not"):
        estimate(frame.assign(treated=frame.treated.where(frame.index != 3, 2)))
    with pytest.raises(ValueError, match="churned must be 0/1"):
        estimate(frame.assign(churned=frame.churned.astype(float).where(frame.index != 3)))
    with pytest.raises(ValueError, match="no covariates given"):
        estimate(frame, covariates=[])


def effect_of(est: float, low: float, high: float, **kw: object) -> PlayEffect:
    fields: dict[str, object] = {
        "play": "Executive sponsor call", "status": "ok", "reason": "",
        "effect": Interval(est, low, high, 0.9), "naive": Interval(2.0, -1.0, 5.0, 0.9),
        "se": 3.0, "n_units": 500, "n_treated": 80, "n_untreated": 420,
        "n_treated_overlap": 62, "n_untreated_overlap": 150, "n_trimmed": 288, "trim": 0.1,
        "learner": "logistic", "folds": 5, "n_boot": 500, "seed": 0,
    } | kw  # fmt: skip
    return PlayEffect(**fields)  # type: ignore[arg-type]


def test_words_turn_churn_points_into_renewal_points() -> None:
    assert describe(effect_of(-8.2, -13.1, -2.6)) == [
        "Executive sponsor call: renewal odds +8 points [+3, +13] for accounts at similar "
        "risk, 212 accounts (62 with the play)"
    ]


def test_words_add_a_caveat_when_uncertain() -> None:
    crossing = describe(effect_of(-3.0, -8.4, 2.2))
    assert crossing[0].startswith("Executive sponsor call: renewal odds +3 points [-2, +8]")
    assert crossing[1] == (
        "Uncertain: the interval includes no effect at all; treat it as unproven until more "
        "renewals resolve."
    )
    wide = describe(effect_of(-15.0, -28.0, -3.0))
    assert wide[1].startswith("Uncertain: the interval is wider than 20 points;")
    both = describe(effect_of(4.0, -8.0, 16.0))
    assert both[0].startswith("Executive sponsor call: renewal odds -4 points [-16, +8]")
    assert "includes no effect at all and the interval is wider than 20 points" in both[1]
    assert describe(effect_of(-0.3, -4.0, 3.0))[0].startswith(
        "Executive sponsor call: renewal odds 0 points [-3, +4]"
    )


def test_words_of_a_refusal() -> None:
    refused = effect_of(float("nan"), float("nan"), float("nan"), status="no overlap",
                        reason="Executive sponsor call: only 3 of 80 treated ...")  # fmt: skip
    assert describe(refused) == [
        "Executive sponsor call: no estimate (no overlap). Executive sponsor call: only 3 of "
        "80 treated ..."
    ]
