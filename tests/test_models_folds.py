"""Time-ordered folds: cut-offs, purge and the absence of label leakage across folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.config import LabelConfig
from models.config import ModelConfig, label_horizon
from models.folds import cutoffs, latest_split, time_folds, train_mask
from models.synthetic import make_planted

DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_planted(accounts=600, seed=3).frame


def _label_windows_reach_validation(frame: pd.DataFrame, train: np.ndarray, valid: np.ndarray):
    """Rows of training whose [as_of, label_known_at] window reaches the validation period."""
    start = frame.loc[valid, "as_of"].min()
    t = frame.loc[train]
    return t[(t["label_known_at"] >= start) | (t["as_of"] >= start)]


@pytest.mark.parametrize("purge_days", [None, 0, 30, 180])
def test_no_training_label_window_reaches_its_validation_period(frame, purge_days):
    folds = time_folds(frame, k=4, step_days=91, purge_days=purge_days)
    assert len(folds) == 4
    for fold in folds:
        leaked = _label_windows_reach_validation(frame, fold.train, fold.valid)
        assert leaked.empty, f"fold {fold.name}: {len(leaked)} training labels overlap"
        assert not (fold.train & fold.valid).any()
        # The same contract term never sits on both sides of a cut-off.
        both = set(frame.loc[fold.train, "contract_id"]) & set(frame.loc[fold.valid, "contract_id"])
        assert not both


def test_purge_keeps_a_gap_of_purge_days_before_the_cutoff(frame):
    cut = pd.Timestamp("2025-01-01", tz="UTC")
    mask = train_mask(frame, cut, purge_days=120)
    assert frame.loc[mask, "as_of"].max() < cut - 120 * DAY
    # Without a purge, every row whose label is known before the cut-off is used.
    full = train_mask(frame, cut, purge_days=None)
    assert full.sum() == (frame["label_known_at"] < cut).sum() > mask.sum()


def test_validation_rows_are_in_their_window_and_labelled_by_the_data_end(frame):
    folds = time_folds(frame, k=4, step_days=91)
    end = frame["label_known_at"].max()
    for fold in folds:
        v = frame.loc[fold.valid]
        assert (v["as_of"] >= fold.cutoff).all() and (v["as_of"] < fold.until).all()
        assert (v["label_known_at"] <= end).all()
    # Folds do not overlap, so their rows can be pooled.
    stacked = np.vstack([f.valid for f in folds])
    assert (stacked.sum(axis=0) <= 1).all()


def test_default_cutoffs_are_quarterly_over_the_last_year():
    end = pd.Timestamp("2026-01-01", tz="UTC")
    cuts = cutoffs(end, k=4, step_days=91)
    assert [c.strftime("%Y-%m-%d") for c in cuts] == [
        "2025-01-02",
        "2025-04-03",
        "2025-07-03",
        "2025-10-02",
    ]


def test_latest_split_holds_out_the_latest_share_out_of_time(frame):
    train, held, cut = latest_split(frame, share=0.2)
    assert 0.15 < held.mean() < 0.25
    assert (frame.loc[train, "label_known_at"] < cut).all()
    assert (frame.loc[held, "as_of"] >= cut).all()


def test_label_horizon_is_the_longest_lead_in_renewal_mode_else_the_horizon():
    assert label_horizon(LabelConfig(lead_days=(0, 30, 180))) == 180
    assert label_horizon(LabelConfig(label="inactivity", horizon_days=60)) == 60


def test_too_short_a_history_says_what_to_change(frame):
    short = frame[frame["label_known_at"] < pd.Timestamp("2023-06-01", tz="UTC")]
    with pytest.raises(ValueError, match="history is too short: lower backtest_folds"):
        time_folds(short, k=4, step_days=91)


def test_model_config_rejects_unordered_bands():
    with pytest.raises(ValueError, match="bands must be two probabilities"):
        ModelConfig(bands=(0.3, 0.1))
