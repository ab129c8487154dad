"""Sessions: ``session_events`` emits each simulated action as a burst of events.

The bursts change only the event rows: the accounts, contracts, outcomes and truth are the
same world, and ``session_events=1`` is exactly the world without sessions.
"""

from __future__ import annotations

import pandas as pd
import pytest

from simulator import SimConfig, simulate


@pytest.fixture(scope="module")
def pair() -> tuple[pd.DataFrame, pd.DataFrame, object, object]:
    seed = 42
    one = simulate(SimConfig(accounts=60, seed=seed))
    many = simulate(SimConfig(accounts=60, seed=seed, session_events=6))
    return one.tables["events"], many.tables["events"], one, many


def _per_user_day(events: pd.DataFrame) -> float:
    day = events["ts"].dt.floor("D")
    return float(events.groupby([events["user_id"], day]).size().mean())


def test_sessions_multiply_events_not_user_days(pair) -> None:
    one, many, *_ = pair
    ratio = len(many) / len(one)
    assert 5.0 < ratio < 7.0, ratio  # 1 + Poisson(5) events per action
    # Same actions, same users and days: the user-days barely change, their depth does.
    assert _per_user_day(one) < 1.5
    assert _per_user_day(many) > 4 * _per_user_day(one)
    assert set(many["event"]) == set(one["event"])


def test_a_session_stays_on_its_users_day_within_minutes(pair) -> None:
    _, many, *_ = pair
    key = [many["account_id"], many["user_id"], many["event"], many["ts"].dt.floor("D")]
    ts = many.groupby(key)["ts"]
    span = ts.max() - ts.min()
    # Exponential gaps of 90 s on average: a burst of six spans minutes, not hours.
    assert span.median() < pd.Timedelta(minutes=15)


def test_sessions_leave_the_rest_of_the_world_alone(pair) -> None:
    *_, one, many = pair
    for name in ("accounts", "contracts", "tickets", "invoices"):
        pd.testing.assert_frame_equal(one.tables[name], many.tables[name])
    pd.testing.assert_frame_equal(one.truth, many.truth)
