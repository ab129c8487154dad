"""CS plays planted with known true effects (``docs/simulator.md``, "CS plays and their true
effects").

The plays draw from a generator of their own: terms without a play keep exactly the
outcome of the world without plays, and only treated terms can flip. The effects in the
truth are the planted ones, the activities sit where the timing rules put them, and the
assignment leans on risky and large accounts, so the naive treated-minus-untreated
comparison is biased upward.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator import (
    PLAY_KEYS,
    PLAY_TEXTS,
    PlayEffects,
    SimConfig,
    World,
    simulate,
    write_world,
)

ACCOUNTS = 300
END = pd.Timestamp("2026-01-01", tz="UTC")
DAY = pd.Timedelta(days=1)
TEXT_TO_KEY = {text: key for key, text in PLAY_TEXTS.items()}


@pytest.fixture(scope="module")
def sim_seed() -> int:
    """The one seed of these tests, so that any failure reproduces (``SIM_SEED`` overrides)."""
    return int(os.environ.get("SIM_SEED", "7"))


@pytest.fixture(scope="module")
def on(sim_seed: int) -> World:
    return simulate(SimConfig(accounts=ACCOUNTS, seed=sim_seed))


@pytest.fixture(scope="module")
def off(sim_seed: int) -> World:
    return simulate(SimConfig(accounts=ACCOUNTS, seed=sim_seed, plays=PlayEffects(enabled=False)))


@pytest.fixture(scope="module")
def big(sim_seed: int) -> World:
    """The default size, for the comparisons that need a few hundred treated terms."""
    return simulate(SimConfig(accounts=1000, seed=sim_seed))


def _decided(world: World) -> pd.DataFrame:
    """Decided terms: the truth joined to the contract's dates and ARR."""
    t = world.truth[world.truth["outcome"].notna()].set_index("contract_id")
    c = world.tables["contracts"].set_index("contract_id")
    t = t.join(c[["start_date", "arr"]])
    t["end_ts"] = pd.to_datetime(t["end_date"]).dt.tz_localize("UTC")
    t["d_ts"] = t["end_ts"] - 120 * DAY  # annual terms: the decision is 120 days before
    t["churned"] = (t["outcome"] == "churned").astype(float)
    return t


def _activities(world: World) -> pd.DataFrame:
    a = world.tables["activities"]
    return a.assign(key=a["play"].map(lambda p: TEXT_TO_KEY.get(p, p)))


# --- determinism and the rest of the world ---------------------------------------------------


def test_same_seed_same_plays_another_seed_other_plays(sim_seed: int) -> None:
    a = simulate(SimConfig(accounts=120, seed=sim_seed))
    b = simulate(SimConfig(accounts=120, seed=sim_seed))
    other = simulate(SimConfig(accounts=120, seed=sim_seed + 1))
    pd.testing.assert_frame_equal(a.tables["activities"], b.tables["activities"])
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert len(a.tables["activities"]) > 50
    assert not a.tables["activities"]["ts"].equals(other.tables["activities"]["ts"])


def test_untreated_terms_keep_their_outcome_and_only_treated_terms_flip(
    on: World, off: World
) -> None:
    a, b = on.truth.set_index("contract_id"), off.truth.set_index("contract_id")
    common = a.index.intersection(b.index)
    assert len(common) > 0.97 * len(b)
    # Every term both worlds hold has the same drivers, noise and probability ...
    cols = ["true_churn_probability", "churn_probability_with_noise", "contrib_noise"]
    pd.testing.assert_frame_equal(a.loc[common, cols], b.loc[common, cols])
    keep = ["account_id", "start_date", "end_date", "arr", "seats"]
    ca = on.tables["contracts"].set_index("contract_id").loc[common, keep]
    pd.testing.assert_frame_equal(
        ca, off.tables["contracts"].set_index("contract_id").loc[common, keep]
    )
    pd.testing.assert_frame_equal(on.tables["accounts"], off.tables["accounts"])
    # ... and the same outcome unless a play ran on it and moved its probability across
    # the uniform the outcome was drawn with.
    decided = a.loc[common, "outcome"].notna()
    flipped = decided & (a.loc[common, "outcome"] != b.loc[common, "outcome"])
    assert flipped.sum() >= 1
    assert a.loc[common][flipped]["play"].notna().all()
    untreated = decided & a.loc[common, "play"].isna()
    assert untreated.sum() > 200
    assert (a.loc[common][untreated]["outcome"] == b.loc[common][untreated]["outcome"]).all()
    # A flip is churned <-> not churned, in the direction of the play's effect.
    moved = a.loc[common][flipped]
    saved = moved["outcome"] != "churned"
    assert (moved.loc[saved, "p_churn"] < moved.loc[saved, "p_churn_without_play"]).all()
    assert (moved.loc[~saved, "p_churn"] > moved.loc[~saved, "p_churn_without_play"]).all()
    # Accounts whose outcomes never flipped keep every event row.
    gone = set(a.loc[common][flipped]["account_id"]) | set(a.index.difference(common).str[:7])
    for name in ("events", "surveys", "sentiment", "invoices"):
        # Categories (user ids) differ when a flipped account gains users: compare values.
        ev_a, ev_b = (w.tables[name].astype({"account_id": str}) for w in (on, off))
        if name == "events":
            ev_a, ev_b = (e.astype({"user_id": str, "event": str}) for e in (ev_a, ev_b))
        same_a = ev_a[~ev_a["account_id"].isin(gone)].reset_index(drop=True)
        same_b = ev_b[~ev_b["account_id"].isin(gone)].reset_index(drop=True)
        # Ticket and invoice ids are numbered in time order over all accounts.
        same_a, same_b = (x.drop(columns=["invoice_id"], errors="ignore") for x in (same_a, same_b))
        pd.testing.assert_frame_equal(same_a, same_b, obj=name)


def test_switched_off_plays_leave_no_activities(off: World) -> None:
    assert len(off.tables["activities"]) == 0
    assert list(off.tables["activities"].columns) == [
        "account_id", "ts", "play", "owner", "channel", "note",
    ]  # fmt: skip
    t = off.truth[off.truth["outcome"].notna()]
    assert t["play"].isna().all()
    assert (t["p_churn"] == t["p_churn_without_play"]).all()


# --- the planted effects ---------------------------------------------------------------------


def test_the_planted_effects_are_exact_in_the_truth(on: World) -> None:
    t = _decided(on)
    p = t["p_churn_without_play"]
    # exec_sponsor: -8 points, clipped at 0.001.
    np.testing.assert_allclose(
        t["effect_exec_sponsor"], np.maximum(p - 0.08, 0.001) - p, atol=1e-12
    )
    unclipped = p - 0.08 >= 0.001
    assert unclipped.sum() > 100
    np.testing.assert_allclose(t.loc[unclipped, "effect_exec_sponsor"], -0.08, atol=1e-12)
    # support: -12 points where an urgent or high ticket was open at the decision, else 0.
    ticket = t["ticket_open_at_decision"].astype(bool)
    assert 20 < ticket.sum() < len(t) / 2
    np.testing.assert_allclose(
        t.loc[ticket, "effect_support"], np.maximum(p[ticket] - 0.12, 0.001) - p[ticket], atol=1e-12
    )
    assert (t.loc[~ticket, "effect_support"] == 0.0).all()
    # checkin_email does nothing; renewal_discount +5 points.
    assert (t["effect_checkin_email"] == 0.0).all()
    np.testing.assert_allclose(
        t["effect_renewal_discount"], np.minimum(p + 0.05, 0.999) - p, atol=1e-12
    )
    # The probability the outcome was drawn with is the one without the play plus its effect.
    treated = t["play"].notna()
    run = np.array([t.iloc[i][f"effect_{k}"] for i, k in enumerate(t["play"].fillna(PLAY_KEYS[0]))])
    np.testing.assert_allclose((t["p_churn"] - p)[treated], run[treated.to_numpy()], atol=1e-15)
    assert (t.loc[~treated, "p_churn"] == p[~treated]).all()


def test_the_assignment_reads_what_the_tables_show_before_the_decision(on: World) -> None:
    """Recomputed from the tables, independently of the simulator: the latest sentiment
    and the open urgent/high tickets strictly before midnight UTC of ``end - 120 days``."""
    t = _decided(on).reset_index()
    np.testing.assert_array_equal(
        pd.to_datetime(t["decision_date"]).dt.tz_localize("UTC"), t["d_ts"]
    )
    s = on.tables["sentiment"].sort_values("ts")
    q = t[["contract_id", "account_id", "d_ts"]].sort_values("d_ts")
    latest = pd.merge_asof(
        q, s, left_on="d_ts", right_on="ts", by="account_id", allow_exact_matches=False
    ).set_index("contract_id")["sentiment"]
    expected = latest.reindex(t["contract_id"]).fillna("none").to_numpy()
    assert (t["sentiment_at_decision"].to_numpy() == expected).all()

    tk = on.tables["tickets"]
    hot = tk[tk["priority"].isin(["high", "urgent"])]
    pairs = q.merge(hot, on="account_id")
    is_open = (pairs["created_at"] < pairs["d_ts"]) & (
        pairs["resolved_at"].isna() | (pairs["resolved_at"] >= pairs["d_ts"])
    )
    open_ids = set(pairs.loc[is_open, "contract_id"])
    assert (t["ticket_open_at_decision"].astype(bool) == t["contract_id"].isin(open_ids)).all()


# --- activities -------------------------------------------------------------------------------


def test_activities_follow_the_timing_rules(on: World) -> None:
    t = _decided(on).reset_index()
    acts = _activities(on)
    treated = t[t["play"].notna()].rename(columns={"play": "term_play"})
    # Each activity falls in exactly one treated term's window [d, end) of its account.
    m = acts.reset_index().merge(treated, on="account_id")
    m = m[(m["ts"] >= m["d_ts"]) & (m["ts"] < m["end_ts"])]
    assert m["index"].is_unique and len(m) == len(acts)
    assert (m["key"] == m["term_play"]).all()
    discount = m["key"] == "renewal_discount"
    assert discount.sum() > 10 and (~discount).sum() > 10
    assert (m.loc[discount, "ts"] >= m.loc[discount, "end_ts"] - 21 * DAY).all()
    assert (m.loc[~discount, "ts"] < m.loc[~discount, "end_ts"] - 30 * DAY).all()
    # One to three rows per treated term; the play day is the first one's date.
    per_term = m.groupby("contract_id").size().reindex(treated["contract_id"], fill_value=0)
    assert per_term.between(1, 3).all() and set(per_term) == {1, 2, 3}
    first = m.groupby("contract_id")["ts"].min().dt.tz_localize(None).dt.floor("D")
    play_day = treated.set_index("contract_id")["play_day"]
    assert (pd.to_datetime(play_day).loc[first.index] == first).all()
    # No untreated term has an activity in its window.
    untreated = t[t["play"].isna()].drop(columns=["play"])
    u = acts.merge(untreated, on="account_id")
    assert not ((u["ts"] >= u["d_ts"]) & (u["ts"] < u["end_ts"])).any()


def test_activity_rows_keep_the_contract(on: World) -> None:
    acts = _activities(on)
    accounts = on.tables["accounts"].set_index("account_id")
    assert acts["account_id"].isin(accounts.index).all()
    assert (acts["ts"] < END).all()
    assert (acts["ts"] >= pd.Timestamp("2023-01-01", tz="UTC")).all()
    assert set(acts["key"]) == set(PLAY_KEYS)
    texts = acts["play"].isin(PLAY_TEXTS.values())
    assert 0.04 < texts.mean() < 0.18  # about 10 % name the play by its text
    assert (acts["owner"] == accounts.loc[acts["account_id"], "csm"].to_numpy()).all()
    assert set(acts["channel"]) <= {"call", "email", "meeting"}
    assert 0.2 < acts["note"].isna().mean() < 0.5
    assert acts["ts"].dt.dayofweek.lt(5).mean() > 0.85  # business days, mostly
    assert (acts["ts"].dt.microsecond == 0).all()


def test_activities_are_written_like_the_other_tables(on: World, tmp_path: Path) -> None:
    write_world(on, tmp_path / "pq")
    back = pd.read_parquet(tmp_path / "pq" / "activities.parquet")
    assert len(back) == len(on.tables["activities"])
    assert str(back["ts"].dtype) == "datetime64[us, UTC]"
    truth = pd.read_parquet(tmp_path / "pq-truth.parquet")
    assert {"play", "play_day", "p_churn_without_play", "effect_support"} <= set(truth.columns)
    write_world(on, tmp_path / "csv", fmt="csv")
    back = pd.read_csv(tmp_path / "csv" / "activities.csv", dtype=str)
    assert list(back.columns) == ["account_id", "ts", "play", "owner", "channel", "note"]
    assert back["ts"].str.endswith("+00:00").all()
    assert (back["play"] == on.tables["activities"]["play"].to_numpy()).all()


# --- who gets a play, and why the naive comparison is biased ---------------------------------


def test_plays_go_to_risky_and_large_accounts(big: World) -> None:
    t = _decided(big)
    treated = t["play"].notna()
    assert 0.38 < treated.mean() < 0.52
    large = t["arr"] >= t["arr"].median()
    risky_large = treated[(t["sentiment_at_decision"] == "red") & large]
    safe_small = treated[(t["sentiment_at_decision"] == "green") & ~large]
    assert len(risky_large) >= 30 and len(safe_small) >= 300
    assert risky_large.mean() > 0.85 and safe_small.mean() < 0.3
    # support goes where a ticket is open, exec_sponsor to the larger accounts.
    ticket = t["ticket_open_at_decision"].astype(bool)
    assert (t.loc[treated & ticket, "play"] == "support").mean() > 0.65
    assert (t.loc[treated & ~ticket, "play"] == "support").sum() == 0
    exec_arr = t.loc[t["play"] == "exec_sponsor", "arr"].median()
    assert exec_arr > 2 * t.loc[t["play"] == "checkin_email", "arr"].median()


def test_the_naive_comparison_is_biased_upward(big: World) -> None:
    """Treated terms were riskier before any play: the raw difference in churn between
    treated and untreated overstates the plays' effect (less help, more harm)."""
    t = _decided(big)
    treated = t["play"].notna()
    # The confounding itself, from the truth: churn probabilities without any play.
    gap = (
        t.loc[treated, "p_churn_without_play"].mean()
        - t.loc[~treated, "p_churn_without_play"].mean()
    )
    assert gap > 0.05
    run = pd.Series(
        [t.iloc[i][f"effect_{k}"] for i, k in enumerate(t["play"].fillna(PLAY_KEYS[0]))],
        index=t.index,
    )
    true_att = run[treated].mean()
    naive = t.loc[treated, "churned"].mean() - t.loc[~treated, "churned"].mean()
    assert true_att < -0.02  # the plays help on average
    assert naive > true_att + 0.04, (naive, true_att)
    for key in ("exec_sponsor", "support", "checkin_email", "renewal_discount"):
        got = t["play"] == key
        assert got.sum() >= 80, key
        bias = (
            t.loc[got, "p_churn_without_play"].mean()
            - t.loc[~treated, "p_churn_without_play"].mean()
        )
        assert bias > 0.02, key
