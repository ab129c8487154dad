"""Worlds that vary what real books vary: term length, base-rate drift, short histories.

``SimConfig.term_months`` (1, 3, 6 or 12), ``ChurnWeights.intercept_per_year`` and windows
down to one year (``docs/simulator.md``, "Term length", "Base-rate drift" and "Short
windows"). The default world is pinned in ``tests/test_simulator.py``.
"""

from __future__ import annotations

import calendar
import os
from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from simulator import ChurnWeights, SimConfig, World, simulate
from simulator.accounts import add_months
from simulator.config import TERM_MONTHS, min_window_days
from simulator.outcome import DRIVERS

START = date(2023, 1, 1)
ACCOUNTS = 1500
EPOCH = date(1970, 1, 1).toordinal()


@pytest.fixture(scope="module")
def sim_seed() -> int:
    """The one seed of these tests, so that any failure reproduces (``SIM_SEED`` overrides)."""
    return int(os.environ.get("SIM_SEED", "7"))


@pytest.fixture(scope="module")
def books(sim_seed: int) -> dict[int, World]:
    """The same accounts on annual, quarterly and monthly terms over the default 3 years."""
    return {
        m: simulate(SimConfig(accounts=ACCOUNTS, seed=sim_seed, term_months=m)) for m in (12, 3, 1)
    }


def months_later(d: date, n: int) -> date:
    """Reference for ``add_months``, written independently with ``calendar``: the same day
    of the month ``n`` months later, or the 1st of the month after if that month is short."""
    y, m0 = divmod(d.month - 1 + n, 12)
    year, month = d.year + y, m0 + 1
    if d.day <= calendar.monthrange(year, month)[1]:
        return date(year, month, d.day)
    return date(year + month // 12, month % 12 + 1, 1)


def _days(values: pd.Series) -> np.ndarray:
    """Dates (datetime64 at midnight) as days since 1970-01-01."""
    return values.to_numpy().astype("M8[D]").astype(np.int64)


def _decided(world: World) -> pd.DataFrame:
    t = world.truth
    return t[t["outcome"].notna()]


def _annual_logit(world: World, p_term: np.ndarray) -> np.ndarray:
    """Invert ``1 - (1 - sigmoid(logit)) ** (m / 12)``: the annual log-odds of a term."""
    m = world.config.term_months
    p_year = -np.expm1(12.0 / m * np.log1p(-p_term))
    return np.log(p_year) - np.log1p(-p_year)


def yearly_churn_share(world: World) -> float:
    """Of the accounts that are customers at the start of a simulated year, the share that
    churns during that year (pooled over the full years of the window)."""
    c = world.tables["contracts"]
    start, end = pd.Timestamp(world.config.start), pd.Timestamp(world.config.end)
    customers = churned = 0
    y0 = start
    while y0 + pd.DateOffset(years=1) <= end:
        y1 = y0 + pd.DateOffset(years=1)
        at_start = set(c.loc[(c["start_date"] <= y0) & (c["end_date"] > y0), "account_id"])
        gone = c[(c["outcome"] == "churned") & (c["end_date"] >= y0) & (c["end_date"] < y1)]
        customers += len(at_start)
        churned += int(gone["account_id"].isin(at_start).sum())
        y0 = y1
    return churned / customers


# --- term length ---------------------------------------------------------------------------


@given(
    day=st.dates(min_value=date(1971, 1, 1), max_value=date(2099, 12, 31)),
    months=st.sampled_from([1, 3, 6, 12, -6]),
)
def test_add_months_is_same_day_n_months_later_or_the_first_of_the_next(
    day: date, months: int
) -> None:
    got = add_months(np.array([day.toordinal() - EPOCH], dtype=np.int64), months)
    assert date.fromordinal(int(got[0]) + EPOCH) == months_later(day, months)


def test_add_months_rolls_short_months_to_the_first() -> None:
    days = np.array([date(2023, 1, 31).toordinal(), date(2024, 2, 29).toordinal()]) - EPOCH
    assert [date.fromordinal(int(d) + EPOCH) for d in add_months(days, 1)] == [
        date(2023, 3, 1),
        date(2024, 3, 29),
    ]
    # Twelve months from 29 February is 1 March: the annual rule of the default world.
    assert date.fromordinal(int(add_months(days, 12)[1]) + EPOCH) == date(2025, 3, 1)


@pytest.mark.parametrize("months", [3, 1])
def test_terms_last_the_configured_months(books: dict[int, World], months: int) -> None:
    c = books[months].tables["contracts"]
    expected = [months_later(d.date(), months) for d in c["start_date"]]
    assert (c["end_date"].dt.date.to_numpy() == np.array(expected, dtype=object)).all()
    days = (c["end_date"] - c["start_date"]).dt.days
    # A month is 28-31 days and a quarter 89-92; every length occurs in three years.
    lengths = {3: {89, 90, 91, 92}, 1: {28, 29, 30, 31}}[months]
    assert set(days) == lengths


@pytest.mark.parametrize("months", [3, 1])
def test_terms_are_contiguous_and_only_the_last_one_churns(
    books: dict[int, World], months: int
) -> None:
    c = books[months].tables["contracts"].sort_values(["account_id", "start_date"])
    following = c.groupby("account_id")["start_date"].shift(-1)
    has_next = following.notna()
    assert (following[has_next] == c.loc[has_next, "end_date"]).all()
    # Term numbers count up from 1 without gaps.
    number = c["contract_id"].str.rsplit("-", n=1).str[1].astype(int)
    assert (number == c.groupby("account_id").cumcount() + 1).all()
    assert not (c.loc[has_next, "outcome"] == "churned").any()
    assert c.loc[~has_next, "outcome"].isin(["churned"]).sum() > 0


@pytest.mark.parametrize("months", [3, 1])
def test_preexisting_terms_began_less_than_one_term_before_start(
    books: dict[int, World], months: int
) -> None:
    c = books[months].tables["contracts"]
    first = c.groupby("account_id").head(1)
    before = (pd.Timestamp(START) - first["start_date"]).dt.days
    pre = first[before >= 0]
    # 30 % of 1,500 accounts, drawn 0 .. 28 * months - 1 days before start.
    assert 0.25 * ACCOUNTS < len(pre) < 0.35 * ACCOUNTS
    assert 0.9 * 28 * months < before[before >= 0].max() <= 28 * months - 1
    assert (pre["end_date"] > pd.Timestamp(START)).all()


def test_short_terms_lose_about_as_many_customers_a_year_as_annual_terms(
    books: dict[int, World],
) -> None:
    """The per-term probability keeps the hazard of the annual formula, so a year of monthly
    or quarterly decisions loses about as many customers as one annual renewal.

    Measured (seeds 7, 1, 2; 1,500-4,000 accounts): annual 0.156-0.168, quarterly
    0.155-0.163, monthly 0.172-0.183; short terms churn a little more because a champion's
    departure or a bad invoice counts for six months of decisions and monthly billing raises
    more invoices. The band (a third either way) is far from the failures it guards
    against: per-term probabilities left annual would lose about 90 % of a monthly book a
    year, and the inverse conversion about 1.5 %.
    """
    annual = yearly_churn_share(books[12])
    assert 0.12 < annual < 0.22
    for months in (3, 1):
        ratio = yearly_churn_share(books[months]) / annual
        assert 0.75 < ratio < 4 / 3, (months, ratio)


@pytest.mark.parametrize("months", [3, 1])
def test_short_terms_bill_once_per_term(books: dict[int, World], months: int) -> None:
    w = books[months]
    c, inv = w.tables["contracts"], w.tables["invoices"]
    # One invoice per term, on its first day, for the term's share of the annual ARR.
    assert len(inv) == len(c)
    merged = inv.assign(start_date=inv["issued_at"].dt.tz_localize(None).dt.floor("D")).merge(
        c, on=["account_id", "start_date"], validate="one_to_one"
    )
    # Rounded to the cent.
    np.testing.assert_allclose(merged["amount"], merged["arr"] * months / 12, rtol=0, atol=0.0051)


def test_half_year_terms_of_large_accounts_are_billed_quarterly(sim_seed: int) -> None:
    w = simulate(SimConfig(accounts=150, seed=sim_seed, term_months=6, end=date(2024, 7, 1)))
    c, inv = w.tables["contracts"], w.tables["invoices"]
    c = c[c["start_date"] < pd.Timestamp("2024-03-01")]  # a second invoice would be dated
    issued = inv.assign(day=inv["issued_at"].dt.tz_localize(None).dt.floor("D"))
    m = c.merge(issued, on="account_id")
    m = m[(m["day"] >= m["start_date"]) & (m["day"] < m["end_date"])]
    offsets = m.assign(offset=(m["day"] - m["start_date"]).dt.days)
    offsets = offsets.groupby("contract_id")["offset"].agg(tuple).reindex(c["contract_id"])
    # Accounts of 50 seats or more: days 0 and 91 of the term; the others once.
    expected = [(0, 91) if s >= 50 else (0,) for s in c["seats"]]
    assert list(offsets) == expected
    assert sum(len(e) == 2 for e in expected) > 10


@pytest.mark.parametrize("months", [12, 3, 1])
def test_overdue_invoices_are_those_known_in_the_lookback(
    books: dict[int, World], months: int
) -> None:
    """The driver counts the invoices still unpaid 30 days after their due date, known
    before ``end_date`` and no earlier than the term's start or six months before its end:
    exactly what the invoices table shows at the renewal."""
    w = books[months]
    inv = w.tables["invoices"]
    bad = inv["paid_at"].isna() | (inv["paid_at"] - inv["due_at"] > pd.Timedelta(days=30))
    known = _days(inv["issued_at"].dt.tz_localize(None).dt.floor("D")) + 60
    bad_known = pd.DataFrame({"account_id": inv["account_id"], "known": known})[bad.to_numpy()]
    c = w.tables["contracts"]
    c = c[c["outcome"].notna()].reset_index(drop=True)
    start, end = _days(c["start_date"]), _days(c["end_date"])
    since = np.minimum(start, add_months(end, -6))
    m = (
        c[["contract_id", "account_id"]]
        .assign(since=since, end=end)
        .merge(bad_known, on="account_id")
    )
    hit = m[(m["known"] >= m["since"]) & (m["known"] < m["end"])]
    count = hit.groupby("contract_id").size().reindex(c["contract_id"], fill_value=0)
    truth = w.truth.set_index("contract_id").loc[c["contract_id"]]
    weight = w.config.churn.overdue_invoices
    np.testing.assert_allclose(
        truth["contrib_overdue_invoices"], weight * np.minimum(count, 3), rtol=0, atol=1e-12
    )
    assert count.sum() > 20


@pytest.mark.parametrize(("months", "terms_per_departure"), [(12, 1), (3, 2), (1, 6)])
def test_a_champion_departure_counts_for_the_term_or_six_months(
    books: dict[int, World], months: int, terms_per_departure: int
) -> None:
    t = _decided(books[months])
    left = t[t["champion_left_at"].notna()]
    flagged = left.groupby(["account_id", "champion_left_at"]).size()
    # Six monthly or two quarterly decisions, fewer when the account churns or the world
    # ends first, one more when the champion left in the days after a term's end.
    assert flagged.median() == terms_per_departure
    c = books[months].tables["contracts"].set_index("contract_id").loc[left["contract_id"]]
    since = np.minimum(_days(c["start_date"]), add_months(_days(c["end_date"]), -6))
    dep = left["champion_left_at"].dt.tz_localize(None).to_numpy().astype("M8[D]").astype(np.int64)
    assert (dep >= since).all()


# --- base-rate drift -----------------------------------------------------------------------


@pytest.mark.parametrize("months", [12, 1])
def test_drifting_intercept_follows_the_term_end(sim_seed: int, months: int) -> None:
    churn = ChurnWeights(intercept_per_year=0.25)
    w = simulate(SimConfig(accounts=200, seed=sim_seed, term_months=months, churn=churn))
    t = _decided(w)
    contrib = t[[f"contrib_{d}" for d in DRIVERS]].sum(axis=1).to_numpy()
    logit = _annual_logit(w, t["churn_probability_with_noise"].to_numpy())
    intercept = logit - contrib - t["contrib_noise"].to_numpy()
    years = (t["end_date"] - pd.Timestamp(START)).dt.days.to_numpy() / 365.25
    np.testing.assert_allclose(intercept, -2.8 + 0.25 * years, atol=1e-8)
    assert years.max() - years.min() > 2.5


@pytest.fixture(scope="module")
def drift_pair(sim_seed: int) -> dict[float, World]:
    return {
        d: simulate(
            SimConfig(accounts=3000, seed=sim_seed, churn=ChurnWeights(intercept_per_year=d))
        )
        for d in (0.3, 0.0)
    }


def _first_and_last_year(world: World, column: str = "outcome") -> tuple[float, float, float]:
    """Change in the log-odds of churn from the terms decided in the first year to those
    decided in the last (third) year, its binomial standard error, and the years between the
    two groups' mean end dates. ``column="true_churn_probability"`` gives the change the
    truth predicts instead of the realised one."""
    t = _decided(world)
    years = (t["end_date"] - pd.Timestamp(START)).dt.days / 365.25
    first, last = t[years < 1], t[years >= 2]
    if column == "outcome":
        y0, y1 = (first["outcome"] == "churned").mean(), (last["outcome"] == "churned").mean()
    else:
        y0, y1 = first[column].mean(), last[column].mean()
    change = np.log(y1 / (1 - y1)) - np.log(y0 / (1 - y0))
    se = np.sqrt(1 / (len(first) * y0 * (1 - y0)) + 1 / (len(last) * y1 * (1 - y1)))
    return float(change), float(se), float(years[years >= 2].mean() - years[years < 1].mean())


def fitted_drift(world: World) -> tuple[float, float]:
    """Slope of the churn log-odds in years since start given each term's drivers, and its
    standard error: a logistic regression of the outcomes on ``(1, years)`` with the
    drift-free logit ``intercept + sum(contrib_<driver>)`` as offset (Newton's method)."""
    t = _decided(world)
    offset = world.config.churn.intercept + t[[f"contrib_{d}" for d in DRIVERS]].sum(axis=1)
    years = (t["end_date"] - pd.Timestamp(START)).dt.days.to_numpy() / 365.25
    y = (t["outcome"] == "churned").to_numpy(dtype=float)
    x = np.column_stack([np.ones_like(years), years])
    beta = np.zeros(2)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(offset.to_numpy() + x @ beta)))
        hessian = (x * (p * (1 - p))[:, None]).T @ x
        step = np.linalg.solve(hessian, x.T @ (y - p))
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    return float(beta[1]), float(np.sqrt(np.linalg.inv(hessian)[1, 1]))


def test_drift_raises_the_churn_rate_by_the_planted_amount(drift_pair: dict[float, World]) -> None:
    # Given the drivers, the log-odds rise by the planted 0.3 a year (standard error about
    # 0.053 with 3,000 accounts; measured 0.26-0.40 over seeds 1-4 and 7).
    slope, se = fitted_drift(drift_pair[0.3])
    assert abs(slope - 0.3) < 3 * se
    # The raw churn rate of the last year's renewals exceeds the first year's by less than
    # 0.3 a year in log-odds: averaging over accounts of different risk flattens a shift of
    # the log-odds, and faster churn leaves healthier survivors. Against the same accounts
    # without drift, measured 0.18-0.29 a year (standard error about 0.075).
    drifting, _, gap = _first_and_last_year(drift_pair[0.3])
    stable, _, _ = _first_and_last_year(drift_pair[0.0])
    assert 1.7 < gap < 2.1  # first-year renewals end 0.6 years in, last-year ones 2.5
    assert 0.08 < (drifting - stable) / gap < 0.45
    assert drifting > 0.0  # the last year churns more than the first


def test_without_drift_the_churn_rate_stays_within_noise(drift_pair: dict[float, World]) -> None:
    slope, se = fitted_drift(drift_pair[0.0])
    assert abs(slope) < 3 * se
    # The realised change is the change the truth predicts (the book's composition: later
    # renewals are of healthier survivors, measured -0.04 to -0.17 in log-odds) plus noise.
    realised, se, _ = _first_and_last_year(drift_pair[0.0])
    predicted, _, _ = _first_and_last_year(drift_pair[0.0], "true_churn_probability")
    assert -0.25 < predicted < 0.05
    assert abs(realised - predicted) < 3 * se


# --- the oracle stays an oracle -------------------------------------------------------------


@pytest.mark.parametrize("months", [3, 1])
def test_outcomes_are_drawn_with_the_per_term_probability(
    books: dict[int, World], months: int
) -> None:
    w = books[months]
    t = _decided(w)
    y = (t["outcome"] == "churned").to_numpy()
    for column in ("true_churn_probability", "churn_probability_with_noise"):
        p = t[column].to_numpy()
        # Sum of independent Bernoulli draws: within 4 standard deviations of the sum of
        # their probabilities, overall and in each fifth of the probabilities.
        groups = pd.qcut(p, 5, labels=False)
        for g in [np.ones_like(y, dtype=bool)] + [groups == k for k in range(5)]:
            sd = np.sqrt((p[g] * (1 - p[g])).sum())
            assert abs(y[g].sum() - p[g].sum()) < 4 * sd, (column, y[g].mean(), p[g].mean())
    # About 17 % of annual terms churn; the same hazard over a month or a quarter.
    expected = 1 - (1 - 0.17) ** (months / 12)
    assert 0.7 * expected < y.mean() < 1.4 * expected


@pytest.mark.parametrize("months", [3, 1])
def test_oracle_is_the_per_term_probability_averaged_over_the_noise(
    books: dict[int, World], months: int
) -> None:
    w = books[months]
    t = _decided(w)
    logit = -2.8 + t[[f"contrib_{d}" for d in DRIVERS]].sum(axis=1).to_numpy()

    def per_term(x: np.ndarray) -> np.ndarray:
        return 1.0 - (1.0 / (1.0 + np.exp(x))) ** (months / 12)

    np.testing.assert_allclose(
        t["churn_probability_with_noise"],
        per_term(logit + t["contrib_noise"].to_numpy()),
        rtol=1e-9,
    )
    # Monte Carlo over 200,000 noise draws, independent of the simulator's quadrature.
    z = np.random.default_rng(0).normal(0.0, w.config.churn.noise_sd, 200_000)
    rows = np.linspace(0, len(t) - 1, 25).astype(int)
    mc = [float(np.mean(per_term(logit[i] + z))) for i in rows]
    # The noise moves a small probability by about 30 % (sd 0.3 on the log-odds), so each
    # mean has a relative standard error near 0.3 / sqrt(200,000) = 7e-4.
    np.testing.assert_allclose(t["true_churn_probability"].to_numpy()[rows], mc, rtol=3e-3)


# --- short windows -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("months", "days"),
    [(12, 365), (12, 548), (12, 731), (12, 1096), (3, 180), (3, 365), (3, 731), (3, 1096),
     (1, 180), (1, 365), (1, 731), (1, 1096), (6, 216)],
)  # fmt: skip
def test_every_decided_term_has_an_outcome_and_every_open_term_none(
    sim_seed: int, months: int, days: int
) -> None:
    end = date.fromordinal(START.toordinal() + days)
    w = simulate(SimConfig(accounts=200, seed=sim_seed, term_months=months, end=end))
    c = w.tables["contracts"].set_index("contract_id")
    t = w.truth.set_index("contract_id").loc[c.index]
    decided = c["end_date"] < pd.Timestamp(end)
    assert decided.sum() > 30
    assert c.loc[decided, "outcome"].notna().all()
    assert c.loc[~decided, "outcome"].isna().all()
    assert t.loc[decided, "true_churn_probability"].between(0, 1).all()
    assert t.loc[~decided, "true_churn_probability"].isna().all()
    # Every account ends either churned or in an open term.
    last = c.reset_index().groupby("account_id").tail(1)
    assert (last["outcome"].isna() | (last["outcome"] == "churned")).all()


def test_a_one_year_annual_world_decides_the_preexisting_renewals(sim_seed: int) -> None:
    w = simulate(SimConfig(accounts=400, seed=sim_seed, end=date(2024, 1, 1)))
    c = w.tables["contracts"]
    first = c.groupby("account_id").head(1)
    began_before = first.loc[first["start_date"] < pd.Timestamp(START), "account_id"]
    decided = c.loc[c["outcome"].notna()]
    # Exactly the customers whose term began 1-270 days before start renew inside the
    # year (with 90 days of behaviour); those who joined during it are all still open.
    assert sorted(decided["account_id"]) == sorted(began_before)
    assert len(decided) > 90
    assert decided["end_date"].min() >= pd.Timestamp(START) + pd.Timedelta(days=95)


@pytest.mark.parametrize("months", TERM_MONTHS)
def test_a_too_short_window_names_start_end_and_term_months(months: int) -> None:
    need = min_window_days(months)
    end = date.fromordinal(START.toordinal() + need - 1)
    with pytest.raises(ValidationError) as err:
        SimConfig(start=START, end=end, term_months=months)
    message = str(err.value)
    assert f"end ({end})" in message and f"start ({START})" in message
    assert f"term_months={months}" in message and f"at least {need} days" in message
    assert "Move end to" in message
    SimConfig(start=START, end=date.fromordinal(START.toordinal() + need), term_months=months)


def test_window_minimums() -> None:
    # One year for annual terms (the default used to need 400 days); otherwise a term plus
    # 30 days, at least 180.
    assert [min_window_days(m) for m in TERM_MONTHS] == [180, 180, 216, 365]


def test_term_months_must_be_offered() -> None:
    with pytest.raises(ValidationError, match="term_months"):
        SimConfig(term_months=2)  # type: ignore[arg-type]
