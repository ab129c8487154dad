"""Point in time: no feature may change when data at or after the snapshot changes.

For random snapshot dates of a simulated world, every row dated at or after the snapshot is
deleted or changed (events, tickets created later, answers and resolutions that come later,
later surveys, sentiment, invoices and payments, later terms and the outcome of open terms,
attribute changes that take effect later, account dates that lie later), and every feature
of every eligible account must stay exactly the same. The training path obeys the same
rule at its cut-off: no training row, feature or label, moves when data at or after it
changes.
"""

from __future__ import annotations

from datetime import date, timedelta

import ibis
import numpy as np
import pandas as pd
import pytest

from features.config import FeatureConfig, LabelConfig
from features.read import connect
from features.scoring_set import build_scoring_set
from features.training import build_training_set

CASES = 6
FEATURES = FeatureConfig(top_events=5)


def _memtables(frames: dict[str, pd.DataFrame]) -> dict[str, ibis.Table]:
    # In-memory tables run on the default backend: make it a UTC, one-thread DuckDB.
    ibis.set_backend(connect("duckdb", threads=1))
    return {name: ibis.memtable(frame) for name, frame in frames.items()}


def _future(rng: np.random.Generator, cut: pd.Timestamp, n: int) -> pd.Series:
    """Random instants at or after ``cut``, up to a year later."""
    return pd.Series(cut + pd.to_timedelta(rng.integers(0, 365 * 86400, n), unit="s"))


@pytest.fixture(scope="module")
def frames(sim_frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The simulated world with attributes that change (``account_history``: a tier and a
    head count) and an account date that may lie after a snapshot (``onboarded_at``)."""
    rng = np.random.default_rng(5)
    out = dict(sim_frames)
    acc = sim_frames["accounts"].copy()
    n = len(acc)
    acc["onboarded_at"] = acc["created_at"] + pd.to_timedelta(rng.integers(0, 500, n), unit="D")
    out["accounts"] = acc
    first, last = sim_frames["events"]["ts"].min(), sim_frames["events"]["ts"].max()
    span = int((last - first).total_seconds())
    rows = 4 * n
    out["account_history"] = pd.DataFrame(
        {
            "account_id": np.repeat(acc["account_id"].to_numpy(), 4),
            "column": np.tile(["tier", "tier", "employees", "employees"], n),
            "value": np.where(
                np.tile([True, True, False, False], n),
                rng.choice(["bronze", "silver", "gold"], rows),
                rng.integers(5, 500, rows).astype(str),
            ),
            "valid_from": first + pd.to_timedelta(rng.integers(0, span, rows), unit="s"),
        }
    )
    return out


def perturb_future(
    frames: dict[str, pd.DataFrame], as_of: date, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    """Delete half the rows dated at or after ``as_of`` and scramble every later fact."""
    cut = pd.Timestamp(as_of, tz="UTC")
    out = {k: v.copy() for k, v in frames.items()}

    def drop_and_shift(name: str, col: str) -> pd.DataFrame:
        f = out[name]
        later = f[col] >= cut
        keep = ~later | (rng.random(len(f)) < 0.5)
        f = f[keep].reset_index(drop=True)
        later = f[col] >= cut
        f.loc[later, col] = _future(rng, cut, int(later.sum())).to_numpy()
        return f

    ev = drop_and_shift("events", "ts")
    later = ev["ts"] >= cut
    ev.loc[later, "event"] = rng.choice(["login", "report_exported", "brand_new"], later.sum())
    ev.loc[later, "user_id"] = "someone-new"
    out["events"] = ev

    tk = drop_and_shift("tickets", "created_at")
    for col in ("first_response_at", "resolved_at"):
        later = tk[col] >= cut
        tk.loc[later, col] = _future(rng, cut, int(later.sum())).to_numpy()
        # Keep the table valid (no answer before creation); an empty cell stays empty.
        tk[col] = tk[col].where(tk[col].isna() | (tk[col] >= tk["created_at"]), tk["created_at"])
    resolved_later = ~(tk["resolved_at"] < cut)
    tk.loc[resolved_later, "csat"] = rng.integers(1, 6, int(resolved_later.sum()))
    tk.loc[tk["created_at"] >= cut, "priority"] = "urgent"
    out["tickets"] = tk

    sv = drop_and_shift("surveys", "ts")
    later = sv["ts"] >= cut
    sv.loc[later & (sv["kind"] == "nps"), "score"] = 0.0
    out["surveys"] = sv

    se = drop_and_shift("sentiment", "ts")
    se.loc[se["ts"] >= cut, "sentiment"] = "red"
    out["sentiment"] = se

    inv = drop_and_shift("invoices", "issued_at")
    inv["due_at"] = inv["due_at"].where(
        inv["issued_at"] < cut, inv["issued_at"] + pd.Timedelta(days=30)
    )
    paid_later = inv["paid_at"] >= cut
    inv.loc[paid_later, "paid_at"] = pd.NaT
    out["invoices"] = inv

    ct = out["contracts"]
    starts = pd.to_datetime(ct["start_date"]).dt.tz_localize("UTC")
    ends = pd.to_datetime(ct["end_date"]).dt.tz_localize("UTC")
    ct = ct[(starts < cut) | (rng.random(len(ct)) < 0.5)].copy()
    starts = pd.to_datetime(ct["start_date"]).dt.tz_localize("UTC")
    ends = pd.to_datetime(ct["end_date"]).dt.tz_localize("UTC")
    ct.loc[starts >= cut, "arr"] = 1.0
    # The outcome of a term still open at the snapshot is the future: flip it.
    open_then = ends > cut
    ct.loc[open_then, "outcome"] = np.where(
        ct.loc[open_then, "outcome"] == "churned", "renewed", "churned"
    )
    out["contracts"] = ct.reset_index(drop=True)

    if "account_history" in out:
        hist = drop_and_shift("account_history", "valid_from")
        later = hist["valid_from"] >= cut
        hist.loc[later, "value"] = np.where(hist.loc[later, "column"] == "tier", "platinum", "1")
        out["account_history"] = hist
        acc = out["accounts"].copy()
        later = acc["onboarded_at"] >= cut
        acc.loc[later, "onboarded_at"] = _future(rng, cut, int(later.sum())).to_numpy()
        out["accounts"] = acc
    return out


def _snapshot_days(frames: dict[str, pd.DataFrame], seed: int) -> list[date]:
    rng = np.random.default_rng(seed)
    first = frames["events"]["ts"].min().date() + timedelta(days=120)
    span = (frames["events"]["ts"].max().date() - first).days
    return sorted(first + timedelta(days=int(d)) for d in rng.integers(0, span, CASES))


@pytest.mark.parametrize("label", ["renewal", "inactivity"])
def test_rows_at_or_after_the_snapshot_change_no_feature(
    frames: dict[str, pd.DataFrame], seed: int, label: str
) -> None:
    labels = LabelConfig(label=label, within_days=400)
    rng = np.random.default_rng(seed)
    original = _memtables(frames)
    top = ("login", "report_exported", "dashboard_viewed", "page_viewed", "workflow_created")
    checked = 0
    for as_of in _snapshot_days(frames, seed):
        before = build_scoring_set(original, as_of, labels, FEATURES, top).frame
        changed = _memtables(perturb_future(frames, as_of, rng))
        after = build_scoring_set(changed, as_of, labels, FEATURES, top).frame
        assert len(before) > 0, f"no eligible account at {as_of}"
        assert {"tier", "employees", "days_since_onboarded_at"} <= set(before.columns)
        pd.testing.assert_frame_equal(before, after, obj=f"features at {as_of}")
        checked += len(before)
    assert checked > 100, "enough snapshots were compared to mean something"


def test_the_perturbation_does_change_later_snapshots(
    frames: dict[str, pd.DataFrame], seed: int
) -> None:
    """The property test could not fail if the perturbation changed nothing: check it does,
    in the attributes too."""
    labels = LabelConfig(within_days=400)
    as_of = _snapshot_days(frames, seed)[0]
    top = ("login",)
    later = as_of + timedelta(days=60)
    original = build_scoring_set(_memtables(frames), later, labels, FEATURES, top).frame
    rng = np.random.default_rng(seed)
    changed = build_scoring_set(
        _memtables(perturb_future(frames, as_of, rng)), later, labels, FEATURES, top
    ).frame
    assert not original.equals(changed)
    both = original.merge(changed, on=["account_id", "contract_id"], suffixes=("", "_new"))
    for col in ("tier", "employees", "days_since_onboarded_at"):
        assert not both[col].astype("str").equals(both[f"{col}_new"].astype("str")), col


@pytest.mark.parametrize("label", ["renewal", "inactivity"])
def test_data_at_or_after_the_cut_off_moves_no_training_row(
    frames: dict[str, pd.DataFrame], seed: int, label: str
) -> None:
    """The training set at a cut-off (as a backtest fold builds it): every row, its features,
    label and cohort, is the same whatever happens on and after the cut-off."""
    labels = LabelConfig(label=label)
    rng = np.random.default_rng(seed)
    original = _memtables(frames)
    checked = 0
    for cut in _snapshot_days(frames, seed)[-2:]:
        before = build_training_set(original, labels, FEATURES, cutoff=cut).frame
        changed = _memtables(perturb_future(frames, cut, rng))
        after = build_training_set(changed, labels, FEATURES, cutoff=cut).frame
        assert before["label"].sum() > 0, f"no churned row before {cut}"
        pd.testing.assert_frame_equal(before, after, obj=f"training set at {cut}")
        checked += len(before)
    assert checked > 300
