"""Contracts as CRMs hold them: overdue renewals, parallel terms, terms cancelled mid-term,
re-signups and outcomes entered early.

Every book is a few hand-written terms; the expected values are worked out by hand in the
comments next to the assertions (day arithmetic included), not by the code under test.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandas as pd
import pytest
from conftest import quick_config, write_tables

from features.catalog import catalog
from features.config import FeatureConfig, LabelConfig
from features.snapshots import (
    day_number,
    open_term_snapshots,
    overdue_terms,
    renewal_snapshots,
    terms,
)
from features.training import build_training_set
from features.validate import load

#: contract_id, account_id, start, end, arr, seats, outcome
Row = tuple[str, str, str, str, float, int | None, str | None]
FEW = FeatureConfig(top_events=0, windows=(30,))


def frame(rows: list[Row]) -> pd.DataFrame:
    """A contracts table as the reader types it (dates as dates, seats nullable)."""
    cols = ["contract_id", "account_id", "start_date", "end_date", "arr", "seats", "outcome"]
    out = pd.DataFrame(rows, columns=cols)
    return out.assign(
        start_date=pd.to_datetime(out["start_date"]).dt.date,
        end_date=pd.to_datetime(out["end_date"]).dt.date,
        arr=out["arr"].astype("float64"),
        seats=out["seats"].astype("Int64"),
        outcome=out["outcome"].astype("object"),
    )


def book(rows: list[Row]) -> ir.Table:
    return ibis.memtable(frame(rows))


def d(text: str) -> int:
    return day_number(date.fromisoformat(text))


def by_id(t: ir.Table, key: str = "contract_id") -> pd.DataFrame:
    return t.to_pandas().set_index(key).sort_index()


# ------------------------------------------------------------------ overdue renewals

AS_OF = "2026-01-10"
OVERDUE_BOOK: list[Row] = [
    # A: the renewal of 2026-01-01 passed 9 days ago with nothing recorded: overdue.
    ("A1", "A", "2024-01-01", "2025-01-01", 100.0, 10, "renewed"),
    ("A2", "A", "2025-01-01", "2026-01-01", 120.0, 12, None),
    # B: B1 has no outcome, but B2 started on its end: effectively renewed, not overdue.
    # B2 is open and ends 2026-03-01: 21 days left of January + 28 of February + 1 = 50.
    ("B1", "B", "2024-03-01", "2025-03-01", 50.0, 5, None),
    ("B2", "B", "2025-03-01", "2026-03-01", 55.0, 5, None),
    # C: a later term exists but starts after the snapshot: C1 is overdue at AS_OF, by
    # 2025-06-01 -> 2026-01-10 = 30 + 31 + 31 + 30 + 31 + 30 + 31 + 9 = 223 days.
    ("C1", "C", "2024-06-01", "2025-06-01", 70.0, 7, None),
    ("C2", "C", "2026-02-01", "2027-02-01", 70.0, 7, None),
    # D: ended with a recorded churn: decided, neither open nor overdue.
    ("D1", "D", "2025-01-01", "2025-12-01", 30.0, 3, "churned"),
    # E: renews on the snapshot day itself, nothing recorded: overdue by 0 days.
    ("E1", "E", "2025-01-10", "2026-01-10", 40.0, 4, None),
]


def test_overdue_terms_are_the_ended_terms_nobody_decided() -> None:
    got = by_id(overdue_terms(book(OVERDUE_BOOK), d(AS_OF)))
    assert list(got.index) == ["A2", "C1", "E1"]
    assert got["days_overdue"].to_dict() == {"A2": 9, "C1": 223, "E1": 0}
    # A2 is A's second term: one renewal day (2025-01-01) on or before its start.
    assert got.loc["A2", "term_number"] == 2 and got.loc["A2", "prev_arr"] == 100.0


def test_overdue_renewals_are_scored_at_as_of_one_row_per_account() -> None:
    got = by_id(open_term_snapshots(book(OVERDUE_BOOK), d(AS_OF), 120), "account_id")
    assert list(got.index) == ["A", "B", "C", "E"], "D was decided; the rest are scored"
    assert (got["as_of_day"] == d(AS_OF)).all()
    # lead_days = renewal_day - as_of: negative (days overdue) or 0 for an overdue renewal.
    assert got["lead_days"].to_dict() == {"A": -9, "B": 50, "C": -223, "E": 0}
    assert got["renewal_day"].to_dict() == {
        "A": d("2026-01-01"),
        "B": d("2026-03-01"),
        "C": d("2025-06-01"),
        "E": d("2026-01-10"),
    }
    assert got["contract_id"].to_dict() == {"A": "A2", "B": "B2", "C": "C1", "E": "E1"}
    assert got["label"].isna().all()


def test_scoring_never_reads_the_outcome_of_a_term_ending_after_as_of() -> None:
    """A replay of history must not see the future: outcomes of terms that end after the
    snapshot day change nothing; the outcome of an ended term is known and counts."""
    before = open_term_snapshots(book(OVERDUE_BOOK), d(AS_OF), 120).to_pandas()
    future = {"B2": "churned", "C2": "expanded"}
    rewritten = [(*r[:6], future.get(r[0], r[6])) for r in OVERDUE_BOOK]
    after = open_term_snapshots(book(rewritten), d(AS_OF), 120).to_pandas()
    key = ["account_id"]
    pd.testing.assert_frame_equal(
        before.sort_values(key).reset_index(drop=True),
        after.sort_values(key).reset_index(drop=True),
    )
    # A2's renewal recorded (its end_date passed): A is no longer scored.
    decided = [(*r[:6], "renewed" if r[0] == "A2" else r[6]) for r in OVERDUE_BOOK]
    accounts = set(open_term_snapshots(book(decided), d(AS_OF), 120).to_pandas()["account_id"])
    assert accounts == {"B", "C", "E"}


def test_several_days_in_one_expression_give_each_days_own_rows() -> None:
    """On 2026-02-05 C1 is renewed (C2 started 2026-02-01, after C1's end, before the
    day) and C2 ends beyond the 120 days; A2 is overdue by 2026-01-01 -> 2026-02-05 = 35
    days, E1 by 2026-01-10 -> 2026-02-05 = 26; B2 ends in 28 - 5 + 1 = 24 days. C1 stays
    overdue on 2026-01-10: the other day's C2 must not renew it."""
    later = "2026-02-05"
    both = open_term_snapshots(book(OVERDUE_BOOK), [d(AS_OF), d(later)], 120).to_pandas()
    leads = {(r.account_id, r.as_of_day): r.lead_days for r in both.itertuples()}
    assert leads == {
        ("A", d(AS_OF)): -9, ("B", d(AS_OF)): 50, ("C", d(AS_OF)): -223, ("E", d(AS_OF)): 0,
        ("A", d(later)): -35, ("B", d(later)): 24, ("E", d(later)): -26,
    }  # fmt: skip
    for day in (AS_OF, later):
        alone = open_term_snapshots(book(OVERDUE_BOOK), d(day), 120).to_pandas()
        pd.testing.assert_frame_equal(
            both[both["as_of_day"] == d(day)].sort_values("account_id").reset_index(drop=True),
            alone.sort_values("account_id").reset_index(drop=True),
        )


# ------------------------------------------------------------------ several open terms

PARALLEL_BOOK: list[Row] = [
    ("P0", "P", "2024-03-01", "2025-03-01", 900.0, 9, "renewed"),
    ("P1", "P", "2025-03-01", "2026-03-01", 1000.0, 10, None),  # main, 50 days left
    ("P2", "P", "2025-09-01", "2026-03-01", 200.0, 2, None),  # add-on, co-termed
    ("P3", "P", "2025-05-15", "2026-02-15", 300.0, 3, None),  # a second subscription
    ("P4", "P", "2025-01-01", "2027-01-01", 5000.0, 50, None),  # ends beyond the horizon
]


def test_parallel_open_terms_roll_up_to_one_row() -> None:
    got = open_term_snapshots(book(PARALLEL_BOOK), d(AS_OF), 120).to_pandas()
    assert len(got) == 1, "one row per scored account"
    row = got.iloc[0]
    # P1, P2, P3 end within 120 days; P4 (2027) does not and is not at stake now.
    assert row["arr"] == 1000.0 + 200.0 + 300.0
    assert row["seats"] == 10 + 2 + 3
    # The next renewal: P3 on 2026-02-15, 21 days of January + 15 = 36 days ahead.
    assert row["renewal_day"] == d("2026-02-15") and row["lead_days"] == 36
    assert row["contract_id"] == "P3", "the earliest-ending term names the row"
    # P3 started 2025-05-15: one renewal day (2025-03-01, P0's 900) before it.
    assert row["term_number"] == 2 and row["prev_arr"] == 900.0


HISTORY_BOOK: list[Row] = [
    # Q: a main contract with an add-on co-termed to it in every term.
    ("Q1", "Q", "2022-01-01", "2023-01-01", 100.0, 10, "renewed"),
    ("Q1x", "Q", "2022-06-01", "2023-01-01", 20.0, 2, "renewed"),
    ("Q2", "Q", "2023-01-01", "2024-01-01", 130.0, 13, "renewed"),
    ("Q2x", "Q", "2023-01-01", "2024-01-01", 25.0, 3, "expanded"),
    ("Q3", "Q", "2024-01-01", "2025-01-01", 160.0, 16, "churned"),
    ("Q3x", "Q", "2024-01-01", "2025-01-01", 30.0, 3, "renewed"),
    # V: both terms of the renewal churn.
    ("V1", "V", "2022-01-01", "2023-01-01", 50.0, 5, "churned"),
    ("V1x", "V", "2022-03-01", "2023-01-01", 10.0, 1, "churned"),
]


def test_term_number_and_prev_arr_do_not_mix_parallel_contracts() -> None:
    got = by_id(terms(book(HISTORY_BOOK)))
    # Ordering terms by start would give Q1x term 2 with Q1's ARR as its "previous" ARR.
    # Here a renewal is a day: Q1 and Q1x are both in the first term (no renewal day on or
    # before their starts); Q2, Q2x follow one renewal (2023-01-01: 100 + 20 = 120); Q3, Q3x
    # two (the latest, 2024-01-01: 130 + 25 = 155).
    assert got["term_number"].to_dict() == {
        "Q1": 1, "Q1x": 1, "Q2": 2, "Q2x": 2, "Q3": 3, "Q3x": 3, "V1": 1, "V1x": 1,
    }  # fmt: skip
    prev = got["prev_arr"].astype("object").where(got["prev_arr"].notna(), None).to_dict()
    assert prev == {
        "Q1": None, "Q1x": None, "Q2": 120.0, "Q2x": 120.0, "Q3": 155.0, "Q3x": 155.0,
        "V1": None, "V1x": None,
    }  # fmt: skip


def test_terms_renewing_together_are_one_training_row() -> None:
    cfg = LabelConfig(lead_days=(30, 240))
    got = renewal_snapshots(book(HISTORY_BOOK), cfg).to_pandas()
    got = got.set_index(["contract_id", "lead_days"]).sort_index()
    # 2023-01-01 - 240 days = 2022-05-06 (Jan 1 -> May 6 of 2022 is 125 days; 365 - 125
    # = 240): Q1x (from 2022-06-01) was not signed yet, so that row holds Q1 alone.
    assert got.loc[("Q1", 240), "arr"] == 100.0 and got.loc[("Q1", 240), "seats"] == 10
    assert got.loc[("Q1", 30), "arr"] == 120.0 and got.loc[("Q1", 30), "seats"] == 12
    # Q2 + Q2x (both start 2023-01-01; Q2 is the smaller id): ARR 155, one expanded.
    q2 = got.loc[("Q2", 30)]
    assert (q2["arr"], q2["seats"], q2["label"], q2["expansion"]) == (155.0, 16, 0, 1)
    assert (q2["term_number"], q2["prev_arr"]) == (2, 120.0)
    # Q3 churned but its add-on renewed: the customer stayed, label 0.
    assert got.loc[("Q3", 30), "label"] == 0
    # V1 and V1x both churned: label 1; V1x (from 2022-03-01) is in the 240-day row too,
    # since 2022-05-06 is after its start.
    assert got.loc[("V1", 30), "label"] == 1 and got.loc[("V1", 240), "arr"] == 60.0
    assert set(got.index.get_level_values("contract_id")) == {"Q1", "Q2", "Q3", "V1"}
    assert (got["label_known_day"] == got["renewal_day"]).all()


# ------------------------------------------------------------------ re-signups

RESIGNUP_BOOK: list[Row] = [
    # R churns on 2023-01-01 and comes back 19 days later.
    ("R1", "R", "2022-01-01", "2023-01-01", 100.0, 10, "churned"),
    ("R2", "R", "2023-01-20", "2024-01-20", 80.0, 8, "renewed"),
    ("R3", "R", "2024-01-20", "2025-01-20", 90.0, 9, None),
    # S churns on 2023-01-01 and comes back 59 days later (2023-03-01).
    ("S1", "S", "2022-01-01", "2023-01-01", 60.0, 6, "churned"),
    ("S2", "S", "2023-03-01", "2024-03-01", 65.0, 6, None),
    # U's main contract churns on 2023-01-01 while an add-on runs on to 2023-06-01: the
    # customer never left, so the history goes on.
    ("U1", "U", "2022-01-01", "2023-01-01", 100.0, 10, "churned"),
    ("U1x", "U", "2022-06-01", "2023-06-01", 40.0, 4, "renewed"),
    ("U2", "U", "2023-06-01", "2024-06-01", 45.0, 4, None),
]


def _history(grace: int) -> dict[str, tuple[int, float | None]]:
    got = by_id(terms(book(RESIGNUP_BOOK), grace))
    return {
        cid: (int(r["term_number"]), None if pd.isna(r["prev_arr"]) else float(r["prev_arr"]))
        for cid, r in got.iterrows()
    }


def test_a_resignup_starts_a_new_history_without_grace() -> None:
    assert _history(0) == {
        "R1": (1, None),
        "R2": (1, None),  # a new customer again: term 1, no previous ARR
        "R3": (2, 80.0),
        "S1": (1, None),
        "S2": (1, None),
        "U1": (1, None),
        "U1x": (1, None),
        # U2 started 2023-06-01: renewal days 2023-01-01 and 2023-06-01 before it; the
        # latest is U1x's (40).
        "U2": (3, 40.0),
    }


def test_a_return_within_the_grace_continues_the_history() -> None:
    got = _history(30)
    # R came back after 19 days <= 30: R2 is R's second term, after R1's 100.
    assert got["R2"] == (2, 100.0) and got["R3"] == (3, 80.0)
    # S came back after 59 days > 30: still a new history.
    assert got["S2"] == (1, None)
    assert got["U2"] == (3, 40.0)


def _labels(grace: int, cutoff: str | None = None) -> pd.DataFrame:
    cfg = LabelConfig(lead_days=(30,), return_grace_days=grace)
    cut = None if cutoff is None else d(cutoff)
    return by_id(renewal_snapshots(book(RESIGNUP_BOOK), cfg, cut))


def test_the_grace_decides_whether_a_quick_return_was_a_churn() -> None:
    none = _labels(0)
    # Without grace a churn is a churn, known on the end date.
    assert none.loc["R1", "label"] == 1 and none.loc["R1", "label_known_day"] == d("2023-01-01")
    grace = _labels(30)
    # R returned within 30 days: renewed; known only when the grace ran out (2023-01-31).
    assert grace.loc["R1", "label"] == 0
    assert grace.loc["R1", "label_known_day"] == d("2023-01-31")
    # S did not: churned, and that too is certain only at the end of the grace.
    assert grace.loc["S1", "label"] == 1
    assert grace.loc["S1", "label_known_day"] == d("2023-01-31")
    # A renewal is known on its end date whatever the grace.
    assert grace.loc["R2", "label_known_day"] == d("2024-01-20")


def test_a_churn_label_is_not_used_before_its_grace_ran_out() -> None:
    # Cut-off 2023-01-11: R1 and S1 ended 10 days before it.
    assert {"R1", "S1", "U1"} <= set(_labels(0, "2023-01-11").index)
    assert not {"R1", "S1", "U1"} & set(_labels(30, "2023-01-11").index)
    # U1x (renewed on 2023-06-01) is not a churn: its label does not wait.
    assert "U1x" in _labels(30, "2023-06-02").index


# ------------------------------------------------------------------ outcomes entered early

EARLY_BOOK: list[Row] = [
    ("F1", "F", "2023-06-01", "2024-06-01", 100.0, 10, "renewed"),
    # Entered early: the CRM already says "churned" for a term ending after the cut-off.
    ("F2", "F", "2024-06-01", "2025-06-01", 100.0, 10, "churned"),
]
CUTOFF = "2025-03-01"


def test_an_outcome_entered_early_is_not_a_training_label() -> None:
    cfg = LabelConfig(lead_days=(30, 90))
    got = renewal_snapshots(book(EARLY_BOOK), cfg, d(CUTOFF)).to_pandas()
    assert set(got["contract_id"]) == {"F1"}
    assert (got["label_known_day"] < d(CUTOFF)).all()
    # The same renewal is a label once the cut-off is after its end.
    later = renewal_snapshots(book(EARLY_BOOK), cfg, d("2025-06-02")).to_pandas()
    assert set(later["contract_id"]) == {"F1", "F2"}


def _events(accounts: list[str], first: str, last: str, every: int = 3) -> pd.DataFrame:
    """One user per account logging in every ``every`` days at 09:00 UTC."""
    days = pd.date_range(first, last, freq=f"{every}D", tz="UTC") + pd.Timedelta(hours=9)
    rows = [(a, f"{a}-u1", ts, "login", 1.0) for a in accounts for ts in days]
    return pd.DataFrame(rows, columns=["account_id", "user_id", "ts", "event", "value"])


def _accounts(ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ids,
            "created_at": pd.to_datetime(["2023-01-01"] * len(ids), utc=True),
            "segment": "SMB",
        }
    )


def test_an_outcome_entered_early_is_not_a_label_of_the_training_set(tmp_path: Path) -> None:
    tables = {
        "accounts": _accounts(["F"]),
        "contracts": frame(EARLY_BOOK),
        "events": _events(["F"], "2023-06-01", "2025-05-31"),
    }
    clean = load(write_tables(tables, tmp_path / "data"))
    cfg = LabelConfig(lead_days=(30, 90))
    ts = build_training_set(clean.tables, cfg, FEW, cutoff=date.fromisoformat(CUTOFF))
    assert set(ts.frame["contract_id"]) == {"F1"}
    assert (ts.frame["label"] == 0).all()
    assert (ts.frame["label_known_at"] < pd.Timestamp(CUTOFF, tz="UTC")).all()


# ------------------------------------------------------------------ cancelled mid-term

#: The contract features: a feature reading term length or days into the term would be
#: one of these; one added must be checked against the cut-short book below.
CONTRACT_FEATURES = {"days_to_renewal", "term_number", "seats", "arr", "arr_change_last_renewal"}


def _cut_book(cut: bool) -> list[Row]:
    """K renews; L churns. The CRM moved L's end back to its cancellation (2024-09-01)."""
    return [
        ("K1", "K", "2023-01-01", "2024-01-01", 1000.0, 10, "renewed"),
        ("K2", "K", "2024-01-01", "2025-01-01", 1000.0, 10, "renewed"),
        ("L1", "L", "2023-01-01", "2024-01-01", 1000.0, 10, "renewed"),
        ("L2", "L", "2024-01-01", "2024-09-01" if cut else "2025-01-01", 1000.0, 10, "churned"),
    ]


def test_term_length_does_not_carry_the_label(tmp_path: Path) -> None:
    """Rule: no feature reads a term's length or the days since its start. The only date of
    the renewed term a feature sees is its end, as ``days_to_renewal`` = end - as_of, which
    is the lead time itself at training: the same for a churned term whose end the CRM
    moved back to the cancellation as for a renewed one."""
    from_contracts = {f.name for f in catalog(windows=(30,)) if f.source == "contracts"}
    assert from_contracts == CONTRACT_FEATURES | {"utilisation_30d"}, "a new contract feature"
    # L2 cut: 2024-01-01 -> 2024-09-01 is 244 days; uncut, 366. Lead 30 in the cut book is
    # 2024-08-02; in the uncut book that day is 2025-01-01 - 2024-08-02 = 30 (Aug) + 30
    # (Sep) + 31 + 30 + 31 (Oct-Dec) = 152 days before the end.
    labels = LabelConfig(lead_days=(30, 152))
    frames = {}
    for cut in (True, False):
        tables = {
            "accounts": _accounts(["K", "L"]),
            "contracts": frame(_cut_book(cut)),
            "events": _events(["K", "L"], "2023-01-01", "2025-01-31"),
        }
        clean = load(write_tables(tables, tmp_path / f"cut-{cut}"))
        ts = build_training_set(clean.tables, labels, FEW, cutoff=date(2025, 3, 1))
        frames[cut] = ts.frame.set_index(["contract_id", "as_of"]).sort_index()
        names = ts.feature_names
        # Churned and renewed alike: days to renewal is the lead, whatever the term length.
        assert (ts.frame["days_to_renewal"] == ts.frame["lead_days"]).all()
    cut_rows, uncut = frames[True], frames[False]
    # The churned term's rows at the same lead: every contract feature is the same.
    for lead in (30, 152):
        a = cut_rows[cut_rows["lead_days"] == lead].loc["L2"]
        b = uncut[uncut["lead_days"] == lead].loc["L2"]
        for name in CONTRACT_FEATURES & set(names):
            assert list(a[name]) == list(b[name]), (name, lead)
    # The same snapshot day (2024-08-02) in both books: every feature is the same but the
    # days to the renewal date recorded in each.
    day = pd.Timestamp("2024-08-02", tz="UTC")
    a, b = cut_rows.loc[("L2", day)], uncut.loc[("L2", day)]
    assert (a["days_to_renewal"], b["days_to_renewal"]) == (30, 152)
    same = [n for n in names if n != "days_to_renewal"]
    pd.testing.assert_series_equal(a[same], b[same], check_names=False)
    # And the renewed account's rows do not change at all when L's term is cut.
    pd.testing.assert_frame_equal(cut_rows.loc[["K1", "K2"], names], uncut.loc[["K1", "K2"], names])


# ------------------------------------------------------------------ churn score, end to end

E2E_AS_OF = date(2025, 7, 1)


@pytest.fixture(scope="module")
def scored_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """A small simulated world, trained on before 2025-06-01 and scored on 2025-07-01 after
    two edits of its contracts: one renewal left overdue, one account given an add-on."""
    from pipelines import model_stages, training
    from simulator import SimConfig, simulate, write_world

    root = tmp_path_factory.mktemp("contract-terms")
    sim = simulate(SimConfig(accounts=150, seed=21))
    write_world(sim, root / "world")
    cfg = quick_config(root / "store", trials=1, scoring={"history": str(root / "h.parquet")})
    clean = load(root / "world")
    ts = build_training_set(clean.tables, cfg.labels, cfg.features, cutoff=date(2025, 6, 1))
    training.run_training(ts, cfg, force=True)

    c = sim.tables["contracts"].copy()
    end = pd.to_datetime(c["end_date"])
    start = pd.to_datetime(c["start_date"])
    as_of = pd.Timestamp(E2E_AS_OF)
    # Overdue: a term renewed in June whose renewal and later terms are not in the export.
    june = c[(end >= "2025-06-01") & (end < as_of) & c["outcome"].notna()]
    late = june.iloc[0]
    c = c[~((c["account_id"] == late["account_id"]) & (start >= late["end_date"]))]
    c.loc[c["contract_id"] == late["contract_id"], "outcome"] = None
    # Parallel: an add-on ending 10 days before an open term renewing within 120 days.
    end, start = pd.to_datetime(c["end_date"]), pd.to_datetime(c["start_date"])
    open_ = c[(start < as_of) & (end > as_of + timedelta(days=20))]
    open_ = open_[end.loc[open_.index] <= as_of + timedelta(days=120)]
    main = open_.iloc[0]
    addon = main.copy()
    addon["contract_id"] = f"{main['contract_id']}-addon"
    addon["start_date"] = pd.Timestamp(main["start_date"]) + timedelta(days=30)
    addon["end_date"] = pd.Timestamp(main["end_date"]) - timedelta(days=10)
    addon["arr"], addon["seats"] = 1234.0, 7
    c = pd.concat([c, addon.to_frame().T.astype(c.dtypes.to_dict())], ignore_index=True)
    edited = type(sim)(**{**sim.__dict__, "tables": {**sim.tables, "contracts": c}})
    write_world(edited, root / "edited")
    out = root / "scores"
    model_stages.score(root / "edited", E2E_AS_OF, out, cfg)
    return out, {"late": late, "main": main, "addon": addon}


def test_churn_score_flags_the_overdue_renewal_and_rolls_up_parallel_terms(
    scored_world: tuple[Path, dict[str, object]],
) -> None:
    out, edits = scored_world
    late, main, addon = (pd.Series(edits[k]) for k in ("late", "main", "addon"))
    s = pd.read_parquet(out / "scores.parquet")
    assert "overdue" in s.columns and s["overdue"].dtype == bool
    assert s["account_id"].is_unique, "one row per scored account"
    flagged = s[s["overdue"]]
    assert list(flagged["account_id"]) == [late["account_id"]]
    row = flagged.iloc[0]
    assert row["renewal_date"] == pd.Timestamp(late["end_date"], tz="UTC")
    assert row["renewal_date"] < row["as_of"]
    days = (s.loc[~s["overdue"], "renewal_date"] - s.loc[~s["overdue"], "as_of"]).dt.days
    assert days.between(1, 120).all()
    both = s[s["account_id"] == main["account_id"]].iloc[0]
    assert both["arr"] == pytest.approx(float(main["arr"]) + 1234.0)
    assert both["renewal_date"] == pd.Timestamp(addon["end_date"], tz="UTC")
    assert both["contract_id"] == addon["contract_id"]
    page = (out / "report.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1))
    at = {f: i for i, f in enumerate(data["fields"])}
    marked = [r[at["id"]] for r in data["rows"] if r[at["overdue"]] == 1]
    assert marked == [late["account_id"]], "badged on its row and details by the page's script"
    assert "Overdue only (1)" in page
    summary = page[page.index('id="summary"') : page.index('id="accounts"')]
    assert '<div class="card-label">Overdue renewals</div><div class="card-value">1<' in summary
