"""Folds: cut-offs, purge, no label leakage, folds laid where the labels are, and the
held-out-accounts fallback when the history is too short for any out-of-time fold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.config import LabelConfig
from features.errors import ContractError
from models.config import ModelConfig, label_horizon
from models.folds import (
    TooFewLabels,
    account_folds,
    count_outcomes,
    cutoffs,
    latest_split,
    outcome_ids,
    plan_folds,
    require_outcomes,
    time_folds,
    train_mask,
)
from simulator.synthetic import make_planted

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
    folds, skipped = time_folds(frame, k=4, step_days=91, purge_days=purge_days)
    assert len(folds) == 4 and not skipped
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
    folds, _ = time_folds(frame, k=4, step_days=91)
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


MONTHS = ["2024-01-01", "2024-02-01", "2024-03-01", "2024-03-01", "2024-01-01", "2024-02-01"]


def test_an_outcome_is_a_term_in_renewal_mode_and_a_snapshot_in_inactivity_mode():
    # Three snapshots of one churned term, one of a renewed term; two inactivity snapshots.
    frame = pd.DataFrame(
        {
            "account_id": ["A", "A", "A", "B", "C", "C"],
            "contract_id": ["T1", "T1", "T1", "T2", None, None],
            "as_of": pd.to_datetime(MONTHS, utc=True),
            "label": [1, 1, 1, 0, 1, 0],
        }
    )
    ids = outcome_ids(frame)
    assert len(set(ids[:3])) == 1 and len(set(ids)) == 4
    counts = count_outcomes(frame, np.ones(6, bool), ids)
    # By hand: churned = T1 and C's January window; retained = T2 and C's February window.
    assert (counts.churned, counts.retained) == (2, 2)


def test_a_cutoff_without_enough_outcomes_is_skipped_with_the_counts(frame):
    # A young book: only the outcomes of the last 15 months are known.
    young = frame[frame["as_of"] >= pd.Timestamp("2024-10-01", tz="UTC")].reset_index(drop=True)
    folds, skipped = time_folds(young, k=4, step_days=91, min_churned=30, min_retained=30)
    assert skipped and folds, (len(folds), [s.reason for s in skipped])
    first = skipped[0]
    assert first.cutoff < folds[0].cutoff
    assert "training part has" in first.reason and "needs 30 and 30" in first.reason
    for fold in folds:
        for mask in (fold.train, fold.valid):
            c = count_outcomes(young, mask, outcome_ids(young))
            assert c.churned >= 30 and c.retained >= 30


def test_no_usable_cutoff_falls_back_to_folds_of_held_out_accounts(frame, seed):
    # One renewal cycle: nothing is known before the first cut-off's validation period.
    cycle = frame[frame["label_known_at"] >= pd.Timestamp("2025-04-01", tz="UTC")]
    cycle = cycle.reset_index(drop=True)
    plan = plan_folds(cycle, 4, 91, None, min_churned=30, min_retained=30, cv_folds=4, seed=seed)
    assert plan.kind == "cross_fitted" and len(plan.folds) == 4 and len(plan.skipped) == 4
    assert plan.describe().startswith("4 folds of held-out accounts; 4 cut-offs skipped")
    owner = np.full(len(cycle), -1)
    for i, fold in enumerate(plan.folds):
        held = set(cycle.loc[fold.valid, "account_id"])
        assert not held & set(cycle.loc[fold.train, "account_id"]), "an account on both sides"
        assert (owner[fold.valid] == -1).all()
        owner[fold.valid] = i
    assert (owner >= 0).all(), "every row is held out exactly once"
    # Seeded: the same folds every run, other folds with another seed.
    again = account_folds(cycle, 4, seed)
    assert all((a.valid == b.valid).all() for a, b in zip(plan.folds, again, strict=True))
    other = account_folds(cycle, 4, seed + 1)
    assert any((a.valid != b.valid).any() for a, b in zip(plan.folds, other, strict=True))


def test_too_few_outcomes_to_fit_anything_names_the_counts_and_the_setting(frame):
    few = frame[frame["account_id"].isin(frame["account_id"].unique()[:40])]
    counts = count_outcomes(few, np.ones(len(few), bool), outcome_ids(few))
    with pytest.raises(TooFewLabels) as err:
        require_outcomes(few, 30, 30)
    assert isinstance(err.value, ContractError), "a user error: the CLI exits 2"
    message = str(err.value)
    assert f"holds {counts.churned} churned and {counts.retained} retained outcomes" in message
    assert "model.min_churned" in message
    unlabelled = frame.assign(label=np.nan)
    with pytest.raises(TooFewLabels, match="no labelled rows"):
        require_outcomes(unlabelled, 30, 30)


def test_latest_split_holds_out_the_latest_share_out_of_time(frame):
    train, held, cut = latest_split(frame, share=0.2)
    assert 0.15 < held.mean() < 0.25
    assert (frame.loc[train, "label_known_at"] < cut).all()
    assert (frame.loc[held, "as_of"] >= cut).all()


def test_label_horizon_is_the_longest_lead_in_renewal_mode_else_the_horizon():
    assert label_horizon(LabelConfig(lead_days=(0, 30, 180))) == 180
    assert label_horizon(LabelConfig(label="inactivity", horizon_days=60)) == 60


def test_model_config_rejects_a_minimum_of_outcomes_too_small_to_check_anything():
    with pytest.raises(ValueError, match="min_churned"):
        ModelConfig(min_churned=2)
