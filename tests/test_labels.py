"""Labels and snapshots: never used before they are known, and equal to a direct computation."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.config import FeatureConfig, LabelConfig
from features.training import build_training_set
from features.validate import load

FEW = FeatureConfig(top_events=0, windows=(30,))


@pytest.fixture(scope="module")
def clean(sim_dir: Path):  # type: ignore[no-untyped-def]
    return load(sim_dir)


def test_renewal_labels_are_known_before_the_cutoff(clean, sim_frames) -> None:  # type: ignore[no-untyped-def]
    cutoff = date(2025, 3, 1)
    frame = build_training_set(clean.tables, LabelConfig(), FEW, cutoff=cutoff).frame
    cut = pd.Timestamp(cutoff, tz="UTC")
    assert (frame["label_known_at"] < cut).all(), "a label known after the cut-off was used"
    assert (
        frame["as_of"] + pd.to_timedelta(frame["lead_days"], unit="D") == frame["label_known_at"]
    ).all()

    contracts = sim_frames["contracts"]
    ends = pd.to_datetime(contracts["end_date"]).dt.tz_localize("UTC")
    eligible = contracts[contracts["outcome"].notna() & (ends < cut)]
    assert set(frame["contract_id"]) <= set(eligible["contract_id"])
    # Every decided term long enough for a 30-day lead appears, with its outcome as label.
    by_term = frame.groupby("contract_id")["label"].first()
    expected = (eligible.set_index("contract_id")["outcome"] == "churned").astype(int)
    assert (by_term == expected.loc[by_term.index]).all()
    assert len(by_term) == len(eligible)
    assert set(frame["lead_days"]) == set(LabelConfig().lead_days)


def test_an_earlier_cutoff_only_removes_rows(clean) -> None:  # type: ignore[no-untyped-def]
    late = build_training_set(clean.tables, LabelConfig(), FEW, cutoff=date(2025, 6, 1)).frame
    early = build_training_set(clean.tables, LabelConfig(), FEW, cutoff=date(2024, 12, 1)).frame
    assert 0 < len(early) < len(late)
    keys = ["contract_id", "as_of"]
    merged = early.merge(late, on=keys, suffixes=("", "_late"))
    assert len(merged) == len(early), "rows of an earlier cut-off are a subset"
    assert (merged["events_30d"] == merged["events_30d_late"]).all(), "and do not change"


def test_inactivity_labels_match_a_direct_computation(clean, sim_frames) -> None:  # type: ignore[no-untyped-def]
    labels = LabelConfig(label="inactivity", horizon_days=60, active_days=45)
    frame = build_training_set(clean.tables, labels, FEW, cutoff=date(2025, 9, 1)).frame
    events = sim_frames["events"][["account_id", "ts"]]
    day = events["ts"].dt.floor("D")
    rows = []
    for as_of in sorted(frame["as_of"].unique()):
        active_before = events[(day < as_of) & (day >= as_of - pd.Timedelta(days=45))]
        after = events[(day >= as_of) & (day < as_of + pd.Timedelta(days=60))]
        seen_after = set(after["account_id"])
        for acc in sorted(set(active_before["account_id"])):
            rows.append((acc, as_of, int(acc not in seen_after)))
    direct = pd.DataFrame(rows, columns=["account_id", "as_of", "label"])
    got = frame[["account_id", "as_of", "label"]].astype({"label": "int64"})
    got = got.sort_values(["as_of", "account_id"]).reset_index(drop=True)
    direct = direct.sort_values(["as_of", "account_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, direct, check_dtype=False)
    assert 0.005 < direct["label"].mean() < 0.5, "churned accounts go quiet: some labels are 1"
    # Snapshots are first-of-month and the horizon passed before the cut-off.
    assert (frame["as_of"].dt.day == 1).all()
    assert (frame["label_known_at"] <= pd.Timestamp("2025-09-01", tz="UTC")).all()


def test_cohort_columns_are_present_and_sane(clean) -> None:  # type: ignore[no-untyped-def]
    frame = build_training_set(clean.tables, LabelConfig(), FEW).frame
    assert set(frame["segment"]) == {"SMB", "Mid-Market", "Enterprise"}
    assert frame["cohort_month"].str.fullmatch(r"\d{4}-\d{2}").all()
    assert set(frame["tenure_bucket"]) <= {"<1y", "1-2y", "2-3y", "3y+"}
    assert frame["signup_quarter"].str.fullmatch(r"\d{4}Q[1-4]").all()
    assert np.issubdtype(frame["lead_days"].dtype, np.integer)
