"""Scoring reads what it scores: the events of the look-back, the accounts asked for.

``features.usage.lookback_days`` claims that events older than it before ``as_of`` move no
feature; the whole feature query (every family) is run on all events and on the look-back
alone, for several configurations and days, and must agree exactly. The claim is not
vacuous: a look-back 30 days shorter moves features. One account alone, and several
days in one build, give the rows of the whole book's build of each day.
"""

from __future__ import annotations

from datetime import date, timedelta

import ibis
import numpy as np
import pandas as pd
import pytest

from features.build import feature_table
from features.config import FeatureConfig, LabelConfig
from features.read import connect
from features.scoring_set import build_scoring_set, scoring_snapshots
from features.usage import lookback_days

LABELS = LabelConfig(within_days=400)
TOP = ("login", "report_exported", "dashboard_viewed")
CONFIGS = {
    "default": FeatureConfig(top_events=len(TOP)),
    "long window, short champion": FeatureConfig(
        windows=(14, 200), champion_days=60, top_events=len(TOP)
    ),
    "short windows and champion": FeatureConfig(windows=(7, 30), champion_days=30, top_events=0),
}


def _tables(frames: dict[str, pd.DataFrame]) -> dict[str, ibis.Table]:
    ibis.set_backend(connect("duckdb", threads=1))
    return {name: ibis.memtable(frame) for name, frame in frames.items()}


def _days(frames: dict[str, pd.DataFrame]) -> list[date]:
    """Four days from a year into the history to its end."""
    first = frames["events"]["ts"].min().date() + timedelta(days=365)
    span = (frames["events"]["ts"].max().date() - first).days
    rng = np.random.default_rng(3)
    return sorted(first + timedelta(days=int(d)) for d in rng.integers(0, span, 4))


def _features(frames: dict[str, pd.DataFrame], as_of: date, cfg: FeatureConfig) -> pd.DataFrame:
    """Every feature of every account eligible at ``as_of``, straight from the query."""
    tables = _tables(frames)
    snaps = scoring_snapshots(tables, as_of, LABELS)
    snaps = snaps.mutate(
        snapshot_id=ibis.row_number().over(order_by=[snaps.account_id, snaps.contract_id])
    )
    expr, _ = feature_table(tables, snaps, cfg, TOP[: cfg.top_events])
    return expr.to_pandas().sort_values("snapshot_id").reset_index(drop=True)


def _recent(frames: dict[str, pd.DataFrame], as_of: date, days: int) -> dict[str, pd.DataFrame]:
    """The events of the ``days`` before ``as_of`` only (from that day's midnight, UTC)."""
    ev = frames["events"]
    start = pd.Timestamp(as_of - timedelta(days=days), tz="UTC")
    return {**frames, "events": ev[ev["ts"] >= start]}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_events_before_the_lookback_move_no_feature(
    sim_frames: dict[str, pd.DataFrame], name: str
) -> None:
    cfg = CONFIGS[name]
    compared = 0
    for as_of in _days(sim_frames):
        full = _features(sim_frames, as_of, cfg)
        recent = _features(_recent(sim_frames, as_of, lookback_days(cfg)), as_of, cfg)
        assert len(full) > 0, f"no account eligible at {as_of}"
        pd.testing.assert_frame_equal(recent, full, obj=f"{name}, features at {as_of}")
        compared += len(full)
    assert compared > 100


def _planted(frames: dict[str, pd.DataFrame], as_of: date) -> tuple[dict[str, pd.DataFrame], str]:
    """An account whose features sit on the edges of the look-back: its champion (500
    events) was last active 350 days before ``as_of``, and it has no event in the last 170
    days; every other event of the account is dropped."""
    ev = frames["events"]
    acc = _features(frames, as_of, CONFIGS["default"])["account_id"].iloc[0]
    start = pd.Timestamp(as_of, tz="UTC") - pd.Timedelta(days=170)
    mine = ev[(ev["account_id"] == acc) & (ev["ts"] < start)]
    champion = pd.concat([mine.iloc[[0]]] * 500, ignore_index=True).assign(
        user_id="planted-champion",
        ts=pd.Timestamp(as_of, tz="UTC") - pd.Timedelta(days=350),
    )
    kept = ev[ev["account_id"] != acc]
    return {**frames, "events": pd.concat([kept, mine, champion], ignore_index=True)}, acc


@pytest.mark.parametrize(
    ("name", "moved"),
    [
        ("default", "days_since_champion"),
        ("long window, short champion", "events_200d"),
        ("short windows and champion", "days_since_last_event"),
    ],
)
def test_the_lookback_is_exact_where_it_is_decided(
    sim_frames: dict[str, pd.DataFrame], name: str, moved: str
) -> None:
    """The property above is not vacuous: on an account planted at the edges, the look-back
    keeps every value, and 30 days fewer moves the feature that decides it (the champion's
    365 days by default, the longest window, the 180 days of ``days_since_last_event``)."""
    cfg = CONFIGS[name]
    as_of = _days(sim_frames)[-1]
    frames, acc = _planted(sim_frames, as_of)
    full = _features(frames, as_of, cfg)
    kept = _features(_recent(frames, as_of, lookback_days(cfg)), as_of, cfg)
    pd.testing.assert_frame_equal(kept, full)
    short = _features(_recent(frames, as_of, lookback_days(cfg) - 30), as_of, cfg)
    row = full["account_id"] == acc
    assert full.loc[row, moved].item() != short.loc[row, moved].item(), f"{name}: {moved}"


@pytest.mark.parametrize(
    "labels", [LABELS, LabelConfig(label="inactivity")], ids=["renewal", "inactivity"]
)
def test_one_account_and_several_days_give_the_whole_books_rows(
    sim_frames: dict[str, pd.DataFrame], labels: LabelConfig
) -> None:
    """Several days are one query (one snapshot expression over a table of the days): the
    rows of each day are those of that day alone, and one account's are the book's."""
    tables = _tables(sim_frames)
    cfg = CONFIGS["default"]
    days = _days(sim_frames)[:3]
    books = [build_scoring_set(tables, d, labels, cfg, TOP).frame for d in days]
    book = pd.concat(books).sort_values(["as_of", "account_id", "contract_id"])
    together = build_scoring_set(tables, days, labels, cfg, TOP).frame
    pd.testing.assert_frame_equal(together, book.reset_index(drop=True), check_categorical=False)
    some = sorted(set(books[0]["account_id"]) & set(books[-1]["account_id"]))[:2]
    assert len(some) == 2
    alone = build_scoring_set(tables, days, labels, cfg, TOP, accounts=some).frame
    expected = book[book["account_id"].isin(some)].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, expected, check_categorical=False)
    assert alone["as_of"].nunique() == len(days)
    # Without the model's events, the most common ones are still the book's, not those of
    # the account asked for: one whose own most common events differ from the book's.
    ev = sim_frames["events"]
    ev = ev[ev["ts"] < pd.Timestamp(days[-1], tz="UTC")]

    def top(frame: pd.DataFrame) -> list[str]:  # most events first, ties by name
        counts = frame["event"].value_counts().rename_axis("event").reset_index()
        return counts.sort_values(["count", "event"], ascending=[False, True])["event"].tolist()[:4]

    wide = FeatureConfig(top_events=4)
    whole = build_scoring_set(tables, days, labels, wide).frame
    odd = next(
        a for a in sorted(set(whole["account_id"])) if top(ev[ev["account_id"] == a]) != top(ev)
    )
    mine = build_scoring_set(tables, days, labels, wide, accounts=[odd]).frame
    expected = whole[whole["account_id"] == odd].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, expected, check_categorical=False)
