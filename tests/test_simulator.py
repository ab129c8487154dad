"""Tests of the simulated world: determinism, contract validity and planted mechanisms.

The planted-signal tests assert directions with margins chosen well inside what the
default parameters produce (``docs/simulator.md``), so that they hold for any seed.
"""

from __future__ import annotations

import filecmp
import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from simulator import (
    KEY_EVENTS,
    TABLES,
    VANITY_EVENTS,
    Mechanisms,
    PlayEffects,
    SimConfig,
    World,
    simulate,
    truth_path,
    write_world,
)

N_ACCOUNTS = 300
END = pd.Timestamp("2026-01-01", tz="UTC")


@pytest.fixture(scope="session")
def sim_seed() -> int:
    """The one seed every test uses, so that any failure reproduces (``SIM_SEED`` overrides)."""
    return int(os.environ.get("SIM_SEED", "7"))


@pytest.fixture(scope="session")
def world(sim_seed: int) -> World:
    return simulate(SimConfig(accounts=N_ACCOUNTS, seed=sim_seed))


@pytest.fixture(scope="session")
def terms(world: World) -> pd.DataFrame:
    """Terms with a known outcome, with key events and logins per seat in the 90 days
    before ``end_date`` counted from the events table (as a model would see them)."""
    c = world.tables["contracts"]
    c = c[c["outcome"].notna()].copy()
    c["end_ts"] = pd.to_datetime(c["end_date"]).dt.tz_localize("UTC")
    ev = world.tables["events"]
    ev = ev.assign(account_id=ev["account_id"].astype(str), event=ev["event"].astype(str))
    m = ev.merge(c[["contract_id", "account_id", "end_ts"]], on="account_id")
    m = m[(m["ts"] < m["end_ts"]) & (m["ts"] >= m["end_ts"] - pd.Timedelta(days=90))]
    key = m[m["event"].isin(KEY_EVENTS)].groupby("contract_id").size()
    logins = m[m["event"] == "login"].groupby("contract_id").size()
    c = c.set_index("contract_id")
    c["key_per_seat"] = key.reindex(c.index, fill_value=0) / c["seats"]
    c["logins_per_seat"] = logins.reindex(c.index, fill_value=0) / c["seats"]
    c["churned"] = c["outcome"] == "churned"
    truth = world.truth.set_index("contract_id")
    c["is_watermelon"] = truth["is_watermelon"].reindex(c.index)
    c["champion_left"] = truth["champion_left_at"].reindex(c.index).notna()
    return c


# --- determinism -------------------------------------------------------------------------


def test_same_seed_gives_same_bytes(tmp_path: Path, sim_seed: int) -> None:
    cfg = SimConfig(accounts=80, seed=sim_seed)
    write_world(simulate(cfg), tmp_path / "a" / "data")
    write_world(simulate(cfg), tmp_path / "b" / "data")
    names = sorted(p.name for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(names) == len(TABLES) + 1
    for p in (tmp_path / "a").rglob("*.parquet"):
        other = tmp_path / "b" / p.relative_to(tmp_path / "a")
        assert filecmp.cmp(p, other, shallow=False), f"{p.name} differs between runs"


def _digest(frame: pd.DataFrame) -> str:
    """First 16 hex digits of the SHA-256 of pandas' row hashes (values and dtypes)."""
    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(rows.tobytes()).hexdigest()[:16]


def test_the_default_world_is_unchanged() -> None:
    """Term length, base-rate drift and short windows left the default world alone.

    Golden values computed at commit 085ace1, before ``term_months`` and
    ``intercept_per_year`` existed, with this test's ``_digest`` on
    ``simulate(SimConfig(accounts=80, seed=11))`` (pandas 3.0, numpy 2.4). The written
    Parquet files of that world and of ``SimConfig(accounts=300, seed=11)`` were also
    byte-identical before and after the change.
    """
    # The CS plays (issue 17) flip a few renewals of the default world on purpose; with
    # them switched off the world is the one of the golden values, and the truth's
    # columns before the play columns are unchanged.
    world = simulate(SimConfig(accounts=80, seed=11, plays=PlayEffects(enabled=False)))
    assert len(world.tables["activities"]) == 0
    golden = {
        "accounts": (80, "28a3806a82b9760a"),
        "contracts": (185, "3ca0db67b439d3c9"),
        "events": (159163, "af83520f4823dc97"),
        "tickets": (947, "bfb267f341a757aa"),
        "surveys": (996, "bd65cd6b851d868b"),
        "sentiment": (1295, "d8ea08ff9dc7fff1"),
        "invoices": (318, "b4026fcc8fa158cd"),
        "truth": (185, "ea437f644c9d1f90"),
    }
    before_plays = list(world.truth.columns[: world.truth.columns.get_loc("champion_left_at") + 1])
    frames = {**world.tables, "truth": world.truth[before_plays]}
    frames.pop("activities")
    assert {name: (len(f), _digest(f)) for name, f in frames.items()} == golden
    c, t = world.tables["contracts"], world.truth
    assert round(float(c["arr"].sum()), 2) == 8176316.96
    assert c["outcome"].value_counts().to_dict() == {
        "renewed": 73,
        "churned": 32,
        "expanded": 24,
        "contracted": 8,
    }
    assert t["true_churn_probability"].sum() == pytest.approx(28.956558841526608, abs=1e-9)
    assert t["churn_probability_with_noise"].sum() == pytest.approx(29.17071742121702, abs=1e-9)
    first = c.iloc[1]  # an annual term of a pre-existing customer: same day a year later
    assert (str(first["start_date"].date()), str(first["end_date"].date())) == (
        "2022-07-14",
        "2023-07-14",
    )


def test_different_seed_gives_different_events(world: World, sim_seed: int) -> None:
    other = simulate(SimConfig(accounts=N_ACCOUNTS, seed=sim_seed + 1))
    a, b = world.tables["events"], other.tables["events"]
    assert len(a) != len(b) or not a["ts"].equals(b["ts"])


# --- files ---------------------------------------------------------------------------------


def test_truth_lies_beside_the_data_dir(world: World, tmp_path: Path) -> None:
    small = simulate(SimConfig(accounts=30, seed=1))
    out = tmp_path / "data"
    write_world(small, out)
    assert truth_path(out) == tmp_path / "data-truth.parquet"
    assert truth_path(out).is_file()
    inside = sorted(p.name for p in out.iterdir())
    assert inside == sorted(f"{t}.parquet" for t in TABLES)
    assert not any("truth" in name for name in inside)


def test_csv_has_iso_timestamps_and_empty_missing_cells(tmp_path: Path) -> None:
    out = tmp_path / "csv"
    write_world(simulate(SimConfig(accounts=40, seed=3)), out, fmt="csv")
    tickets = pd.read_csv(out / "tickets.csv", dtype=str, keep_default_na=False)
    assert tickets["created_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00").all()
    assert (tickets["csat"] == "").any()  # unrated tickets are empty cells, not "nan"
    contracts = pd.read_csv(out / "contracts.csv", dtype=str, keep_default_na=False)
    assert contracts["end_date"].str.fullmatch(r"\d{4}-\d\d-\d\d").all()
    assert (contracts["outcome"] == "").any()  # open terms
    assert not (tmp_path / "csv" / "truth.parquet").exists()


def test_progress_is_reported_up_to_one() -> None:
    seen: list[tuple[str, float]] = []
    simulate(SimConfig(accounts=20, seed=2), progress=lambda s, f: seen.append((s, f)))
    assert seen and seen[-1][1] == 1.0
    assert all(0.0 <= f <= 1.0 for _, f in seen)


# --- contract validity ---------------------------------------------------------------------


def test_tables_keep_the_data_contract(world: World) -> None:
    t = world.tables
    ids = set(t["accounts"]["account_id"])
    assert t["accounts"]["account_id"].is_unique
    assert t["contracts"]["contract_id"].is_unique
    assert t["tickets"]["ticket_id"].is_unique
    assert t["invoices"]["invoice_id"].is_unique
    for name in ("contracts", "events", "tickets", "surveys", "sentiment", "invoices"):
        assert set(t[name]["account_id"].astype(str)) <= ids, name
    c = t["contracts"]
    assert (c["end_date"] > c["start_date"]).all()
    assert (c["arr"] >= 0).all() and (c["seats"] >= 0).all()
    assert set(c["outcome"].dropna()) <= {"renewed", "expanded", "contracted", "churned"}
    assert c.loc[c["outcome"].isna(), "end_date"].min() >= pd.Timestamp("2026-01-01")
    assert c.loc[c["outcome"].notna(), "end_date"].max() < pd.Timestamp("2026-01-01")
    ev = t["events"]
    assert str(ev["ts"].dtype) == "datetime64[us, UTC]"
    assert ((ev["value"] >= 0) | ev["value"].isna()).all()
    s = t["surveys"]
    bounds = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
    for kind, (lo, hi) in bounds.items():
        scores = s.loc[s["kind"] == kind, "score"]
        assert len(scores) > 0 and scores.between(lo, hi).all(), kind
    assert t["tickets"]["csat"].dropna().between(1, 5).all()
    assert set(t["sentiment"]["sentiment"]) <= {"green", "yellow", "red"}
    assert (t["invoices"]["amount"] >= 0).all()
    stamps = {
        "accounts": ["created_at"],
        "events": ["ts"],
        "tickets": ["created_at", "first_response_at", "resolved_at"],
        "surveys": ["ts"],
        "sentiment": ["ts"],
        "invoices": ["issued_at", "paid_at"],
    }
    for name, cols in stamps.items():
        for col in cols:
            assert (t[name][col].dropna() < END).all(), f"{name}.{col} reaches the end"


def test_event_volume_and_segments(world: World) -> None:
    per_account = len(world.tables["events"]) / N_ACCOUNTS
    assert 1000 < per_account < 5000
    shares = world.tables["accounts"]["segment"].value_counts(normalize=True)
    assert shares["SMB"] > shares["Mid-Market"] > shares["Enterprise"] > 0.03


# --- planted mechanisms --------------------------------------------------------------------


def test_base_churn_rate_and_oracle_auc(world: World) -> None:
    truth = world.truth[world.truth["outcome"].notna()]
    y = truth["outcome"] == "churned"
    assert 0.10 < y.mean() < 0.24
    auc = roc_auc_score(y, truth["true_churn_probability"])
    assert 0.75 < auc < 0.92


def test_oracle_is_the_churn_probability_averaged_over_the_noise(world: World) -> None:
    truth = world.truth[world.truth["outcome"].notna()]
    weights = world.config.churn
    contrib = truth[[c for c in truth.columns if c.startswith("contrib_") and c != "contrib_noise"]]
    logit = weights.intercept + contrib.sum(axis=1).to_numpy()
    noisy = 1.0 / (1.0 + np.exp(-(logit + truth["contrib_noise"].to_numpy())))
    np.testing.assert_allclose(truth["churn_probability_with_noise"], noisy, rtol=1e-12)
    # Independent of the simulator's quadrature: Monte Carlo over 200,000 noise draws
    # (standard error of each mean below 1e-4).
    z = np.random.default_rng(0).normal(0.0, weights.noise_sd, 200_000)
    rows = np.linspace(0, len(truth) - 1, 25).astype(int)
    mc = [float(np.mean(1.0 / (1.0 + np.exp(-(logit[i] + z))))) for i in rows]
    np.testing.assert_allclose(truth["true_churn_probability"].to_numpy()[rows], mc, atol=5e-4)
    # Averaging over the noise pulls the probability towards 1/2 (Jensen: the sigmoid is
    # convex below a log-odds of 0 and concave above it).
    towards_half = np.sign(truth["true_churn_probability"] - 1.0 / (1.0 + np.exp(-logit)))
    assert (towards_half == -np.sign(logit)).all()


def test_churned_terms_use_key_features_less(terms: pd.DataFrame) -> None:
    churned = terms.loc[terms["churned"], "key_per_seat"].mean()
    renewed = terms.loc[terms["outcome"] == "renewed", "key_per_seat"].mean()
    assert churned < 0.7 * renewed


def test_watermelons_log_in_more_yet_churn_more(terms: pd.DataFrame) -> None:
    wm = terms["is_watermelon"]
    assert wm.sum() >= 10
    assert terms.loc[wm, "logins_per_seat"].mean() > 1.3 * terms["logins_per_seat"].mean()
    assert terms.loc[wm, "key_per_seat"].mean() < terms["key_per_seat"].mean()
    assert terms.loc[wm, "churned"].mean() > terms.loc[~wm, "churned"].mean() + 0.1


def test_champion_departure_raises_churn(terms: pd.DataFrame) -> None:
    left = terms["champion_left"]
    assert left.sum() >= 10
    assert terms.loc[left, "churned"].mean() > terms.loc[~left, "churned"].mean() + 0.1


def test_churned_accounts_go_silent(world: World) -> None:
    c = world.tables["contracts"]
    final = c[c["outcome"] == "churned"].set_index("account_id")["end_date"]
    final = pd.to_datetime(final).dt.tz_localize("UTC")
    assert len(final) > 0
    for name, col in (("events", "ts"), ("tickets", "created_at"), ("surveys", "ts")):
        t = world.tables[name]
        last = t.assign(account_id=t["account_id"].astype(str)).groupby("account_id")[col].max()
        common = final.index.intersection(last.index)
        assert (last[common] < final[common]).all(), name


def test_nps_responders_are_healthier_than_average(world: World) -> None:
    lat = world.latent.assign(account_id=world.latent["account_id"].astype(str))
    s = world.tables["surveys"]
    start, week = pd.Timestamp("2023-01-01", tz="UTC"), pd.Timedelta(days=7)
    nps = s[s["kind"] == "nps"]
    nps = nps.assign(week_start=start + ((nps["ts"] - start) // week) * week)
    answered = nps.merge(lat, on=["account_id", "week_start"])
    assert len(answered) > 0.95 * len(nps)
    assert answered["health"].mean() > lat["health"].mean() + 0.2


def test_sentiment_is_optimistic(world: World) -> None:
    shares = world.tables["sentiment"]["sentiment"].value_counts(normalize=True)
    assert shares["green"] > 0.55


# --- switches ------------------------------------------------------------------------------


def _without(switch: str, seed: int, accounts: int = 150) -> World:
    return simulate(
        SimConfig(accounts=accounts, seed=seed, mechanisms=Mechanisms(**{switch: False}))
    )


def test_watermelon_off_plants_none(sim_seed: int) -> None:
    assert not _without("watermelon", sim_seed).truth["is_watermelon"].any()


def test_late_invoices_off_pays_everything_by_due_date(sim_seed: int) -> None:
    inv = _without("late_invoices", sim_seed).tables["invoices"]
    assert (inv["paid_at"].dropna() <= inv.loc[inv["paid_at"].notna(), "due_at"]).all()
    assert inv.loc[inv["due_at"] < END - pd.Timedelta(days=31), "paid_at"].notna().all()


def test_champion_departure_off_keeps_champions(sim_seed: int) -> None:
    truth = _without("champion_departure", sim_seed).truth
    assert truth["champion_left_at"].isna().all()
    assert (truth["contrib_champion_left"].dropna() == 0).all()


def test_vanity_events_off_emits_none(sim_seed: int) -> None:
    ev = _without("vanity_events", sim_seed).tables["events"]
    assert len(ev) > 0 and not ev["event"].isin(VANITY_EVENTS).any()


def test_expansions_off_only_renews_or_churns(sim_seed: int) -> None:
    c = _without("expansions", sim_seed).tables["contracts"]
    assert set(c["outcome"].dropna()) <= {"renewed", "churned"}
    assert c.groupby("account_id")["seats"].nunique().max() == 1


def test_under_utilisation_off_plants_none(sim_seed: int) -> None:
    assert not _without("under_utilisation", sim_seed).truth["is_under_utilised"].any()


def test_support_pain_off_removes_its_churn_contribution(sim_seed: int) -> None:
    truth = _without("support_pain", sim_seed).truth
    assert (truth["contrib_support_pain"].dropna() == 0).all()


def test_usage_drift_off_freezes_health(sim_seed: int) -> None:
    lat = _without("usage_drift", sim_seed).latent
    assert lat.groupby("account_id", observed=True)["health"].std().fillna(0).max() < 0.3


def test_nps_bias_off_removes_responder_bias(sim_seed: int) -> None:
    w = _without("nps_bias", sim_seed, accounts=300)
    s = w.tables["surveys"]
    n_nps = (s["kind"] == "nps").groupby(s["account_id"]).sum()
    mean_health = (
        w.latent.assign(account_id=w.latent["account_id"].astype(str))
        .groupby("account_id")["health"]
        .mean()
    )
    weeks = w.latent["account_id"].astype(str).value_counts()
    rate = (n_nps.reindex(weeks.index, fill_value=0) / weeks).astype(float)
    # Response no longer depends on health: the rate is flat in health.
    corr = float(np.corrcoef(rate, mean_health.reindex(weeks.index))[0, 1])
    assert abs(corr) < 0.2


def test_sentiment_lag_off_tracks_current_health(sim_seed: int) -> None:
    w = _without("sentiment_lag", sim_seed)
    shares = w.tables["sentiment"]["sentiment"].value_counts(normalize=True)
    assert shares["green"] < 0.6  # no optimism shift any more
