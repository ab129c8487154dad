"""Band thresholds a CS team can work: chosen from held-out predictions, within capacity."""

from __future__ import annotations

import numpy as np
import pytest

from models.bands import BandConfig, choose_thresholds, thresholds_for
from models.metrics import band, band_precision, band_recall, band_share


def test_thresholds_by_hand_with_and_without_capacity_caps():
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 0])
    # Precision of "p >= t", riskiest first: 1, 1, .67, .75, .6, .5, .43, .38, .33, .3; the
    # lowest threshold still at 0.5 is 0.4 (6 rows). Recall: 1/3, 2/3, 2/3, 1, ...: 80% of
    # churners are caught from 0.6 on.
    yellow, red = choose_thresholds(p, y, red_precision=0.5, yellow_recall=0.8)
    assert red == 0.4 and yellow == 0.4  # yellow would start above red: no yellow band
    # At most 30% red: of 0.9, 0.8, 0.7 the lowest with precision >= 0.5 is 0.7. At most
    # 50% flagged: yellow may start at 0.5 at the lowest; recall asks for 0.6.
    yellow, red = choose_thresholds(p, y, 0.5, 0.8, max_red_share=0.3, max_flagged_share=0.5)
    assert (yellow, red) == (0.6, 0.7)
    # Caps tighter than recall: red and yellow together are at most 20% of the rows.
    yellow, red = choose_thresholds(p, y, 0.5, 0.8, max_red_share=0.1, max_flagged_share=0.2)
    assert (red, yellow) == (0.9, 0.8)


def test_ties_fall_on_one_side_and_a_constant_score_leaves_everyone_green():
    p = np.full(50, 0.2)
    y = (np.arange(50) < 10).astype(int)
    yellow, red = choose_thresholds(p, y, 0.5, 0.8, max_red_share=0.15, max_flagged_share=0.4)
    bands = band(p, (yellow, red))
    assert (bands == "green").all(), "a tie group larger than the cap is not flagged"


@pytest.mark.parametrize("base_rate", [0.05, 0.09, 0.10, 0.30])
def test_bands_leave_a_usable_split_at_any_base_rate(base_rate: float, seed: int):
    rng = np.random.default_rng(seed)
    n = 6000
    # Calibrated scores of a model with ROC AUC about 0.75: y ~ Bernoulli(p).
    logit = np.log(base_rate / (1 - base_rate)) - 0.4 + 1.1 * rng.normal(size=n)
    p = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < p).astype(int)
    cfg = BandConfig()
    yellow, red = thresholds_for(p, y, cfg)
    bands = band(p, (yellow, red))
    shares = {b: float(band_share(bands, b)) for b in ("red", "yellow", "green")}
    assert 0 < shares["red"] <= cfg.max_red_share
    assert shares["red"] + shares["yellow"] <= cfg.max_flagged_share
    assert shares["green"] >= 1 - cfg.max_flagged_share, "green is never empty"
    rates = {b: float(band_precision(y, bands, b)) for b in ("red", "yellow", "green")}
    assert rates["red"] > rates["yellow"] > rates["green"], rates
    assert rates["red"] > 1.5 * y.mean(), "a red call beats the base rate"
    recalls = [float(band_recall(y, bands, b)) for b in ("red", "yellow", "green")]
    assert sum(recalls) == pytest.approx(1.0)


def test_fixed_thresholds_are_used_as_given_and_must_come_in_pairs():
    p, y = np.array([0.1, 0.5]), np.array([0, 1])
    assert thresholds_for(p, y, BandConfig(yellow=0.2, red=0.6)) == (0.2, 0.6)
    with pytest.raises(ValueError, match="both fixed thresholds"):
        BandConfig(red=0.6)
    with pytest.raises(ValueError, match="max_red_share"):
        BandConfig(max_red_share=0.5, max_flagged_share=0.3)
