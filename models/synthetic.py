"""A training set with a planted churn signal, shaped like ``features.training.TrainingSet``.

Used by the model tests and the training benchmark, where the right answer must be known:
every contract term has a true churn probability (column ``oracle``) from a stated logistic
formula, and the label is drawn from it. The signal is built so that a hand-weighted
frequency/breadth/depth score is weak: usage volume does not protect an account, and heavy
use without key features (the "watermelon") raises risk.

The churn logit of a term (standardised latent drivers, fixed per term)::

    logit = -2.2 - 1.3 key + 0.5 growth_loss - 0.6 utilisation + 0.45 overdue
            + 0.4 urgent + 1.0 [usage > 0.5 and key < -0.4] - 0.15 nps

Snapshot features are the term's drivers seen through a little noise, so a model that
learns the formula comes close to the oracle but not exactly to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.catalog import Feature, catalog

#: The declared features the planted frame carries, in column order.
PLANTED_FEATURES = (
    "events_30d",
    "active_days_30d",
    "active_users_30d",
    "utilisation_30d",
    "stickiness_30d",
    "distinct_events_30d",
    "key_events_30d",
    "key_share_30d",
    "events_change_30d",
    "nps_last",
    "urgent_open",
    "invoices_overdue",
    "days_to_renewal",
    "tenure_days",
    "plan",
    "segment",
)
SEGMENTS = ("SMB", "Mid-Market", "Enterprise")


@dataclass(frozen=True)
class PlantedSet:
    """A frame of the training set's shape, plus the true probability in column ``oracle``."""

    frame: pd.DataFrame
    features: tuple[Feature, ...]
    top_events: tuple[str, ...] = ()


def planted_features() -> tuple[Feature, ...]:
    """The catalogue's declarations of :data:`PLANTED_FEATURES`, in that order."""
    by_name = {f.name: f for f in catalog(static_columns=("plan", "segment"))}
    return tuple(by_name[n] for n in PLANTED_FEATURES)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def make_planted(
    accounts: int = 2000,
    seed: int = 0,
    start: str = "2023-01-01",
    end: str = "2026-01-01",
    lead_days: tuple[int, ...] = (0, 30, 60, 90, 120, 180),
) -> PlantedSet:
    """Simulate annual terms of ``accounts`` accounts and snapshot them before each renewal.

    Only terms that end before ``end`` (the data end) are kept, so every row is labelled;
    snapshots fall inside their term and on or after ``start`` + 90 days (some history).
    Row count is about ``accounts`` x 2.3 terms x ``len(lead_days)``.
    """
    rng = np.random.default_rng(seed)
    t0, t1 = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    span = (t1 - t0).days
    seg = rng.choice(len(SEGMENTS), size=accounts, p=[0.6, 0.3, 0.1])
    seats = np.maximum(3, np.round(np.exp(rng.normal([2.2, 3.5, 5.0], 0.5)[seg]))).astype(int)
    price = np.array([600.0, 900.0, 1200.0])[seg]
    plan = np.where(seg == 2, "enterprise", np.where(rng.random(accounts) < 0.5, "pro", "starter"))
    preexisting = rng.random(accounts) < 0.3
    first_start = np.where(
        preexisting,
        -rng.integers(1, 365 * 3, size=accounts),
        rng.integers(0, span - 400, size=accounts),
    )
    usage_base = rng.normal(0, 1, accounts)
    key_base = rng.normal(0, 1, accounts)
    util_base = rng.normal(0, 1, accounts)

    rows: list[dict[str, object]] = []
    leads = np.asarray(lead_days)
    for a in range(accounts):
        term_start = int(first_start[a])
        term = 1
        while term_start + 365 < span:
            end_day = term_start + 365
            usage = 0.8 * usage_base[a] + 0.6 * rng.normal()
            key = 0.7 * key_base[a] + 0.7 * rng.normal()
            util = 0.8 * util_base[a] + 0.6 * rng.normal()
            loss = rng.normal()
            overdue = rng.poisson(0.3)
            urgent = rng.poisson(0.25)
            has_nps = rng.random() < 0.6
            nps_z = 0.5 * key + 0.8 * rng.normal()
            logit = (
                -2.2
                - 1.3 * key
                + 0.5 * loss
                - 0.6 * util
                + 0.45 * overdue
                + 0.4 * urgent
                + 1.0 * float(usage > 0.5 and key < -0.4)
                - (0.15 * nps_z if has_nps else 0.0)
            )
            p = float(_sigmoid(np.array(logit)))
            churned = int(rng.random() < p)
            for lead in leads:
                as_of = end_day - int(lead)
                if as_of <= term_start or as_of < 90:
                    continue
                rows.append(
                    _snapshot(rng, a, term, term_start, end_day, int(lead), as_of, usage, key,
                              util, loss, overdue, urgent, nps_z if has_nps else None, p,
                              churned, int(seats[a]), float(seats[a] * price[a]),
                              SEGMENTS[seg[a]], str(plan[a]), int(first_start[a]))
                )  # fmt: skip
            if churned:
                break
            term_start, term = end_day, term + 1
    frame = _to_frame(pd.DataFrame(rows), t0)
    return PlantedSet(frame=frame, features=planted_features())


def _snapshot(
    rng: np.random.Generator,
    account: int,
    term: int,
    term_start: int,
    end_day: int,
    lead: int,
    as_of: int,
    usage: float,
    key: float,
    util: float,
    loss: float,
    overdue: int,
    urgent: int,
    nps_z: float | None,
    p: float,
    churned: int,
    seats: int,
    arr: float,
    segment: str,
    plan: str,
    signup: int,
) -> dict[str, object]:
    def noisy(x: float, sd: float = 0.15) -> float:
        return x + sd * float(rng.normal())

    users = int(np.clip(np.round(seats * _sigmoid(np.array(noisy(util) + 0.3))), 0, seats))
    per_user = float(np.exp(2.5 + 0.6 * noisy(usage)))
    events = float(np.round(users * per_user))
    share = float(_sigmoid(np.array(-1.2 + 0.9 * noisy(key, 0.1))))
    days = float(np.clip(np.round(30 * _sigmoid(np.array(1.2 * noisy(usage) + 0.8))), 0, 30))
    return {
        "account_id": f"A{account:05d}",
        "contract_id": f"C{account:05d}-{term}",
        "as_of": as_of,
        "lead_days": lead,
        "label": churned,
        "label_known_at": end_day,
        "expansion": int(not churned and rng.random() < 0.15),
        "renewal_date": end_day,
        "segment": segment,
        "arr": arr,
        "signup_day": signup,
        "events_30d": events,
        "active_days_30d": days if users else 0.0,
        "active_users_30d": float(users),
        "utilisation_30d": users / seats,
        "stickiness_30d": float(np.clip(days / 30 * _sigmoid(np.array(noisy(usage))), 0, 1)),
        "distinct_events_30d": float(max(0, np.round(6 + 1.5 * noisy(key, 0.6) + noisy(usage)))),
        "key_events_30d": float(np.round(events * share)),
        "key_share_30d": share,
        "events_change_30d": float(np.expm1(-0.25 * noisy(loss, 0.2))),
        "nps_last": np.nan if nps_z is None else float(np.clip(np.round(7 + 2 * nps_z), 0, 10)),
        "urgent_open": float(urgent if rng.random() < 0.9 else 0),
        "invoices_overdue": float(overdue),
        "days_to_renewal": float(lead),
        "tenure_days": float(as_of - signup),
        "plan": plan,
        "oracle": p,
    }


def _to_frame(raw: pd.DataFrame, t0: pd.Timestamp) -> pd.DataFrame:
    """Turn day numbers into UTC timestamps and add the cohort columns, in contract order."""

    def day(col: str) -> pd.Series:
        return (t0 + pd.to_timedelta(raw[col], unit="D")).astype("datetime64[us, UTC]")

    signup = day("signup_day")
    tenure_years = raw["tenure_days"] // 365
    frame = raw.assign(
        as_of=day("as_of"),
        label_known_at=day("label_known_at"),
        renewal_date=day("renewal_date"),
        cohort_month=signup.dt.strftime("%Y-%m"),
        tenure_bucket=np.where(tenure_years < 1, "<1y", np.where(tenure_years < 2, "1-2y", "2y+")),
        signup_quarter=signup.dt.year.astype(str) + "Q" + signup.dt.quarter.astype(str),
    )
    frame["lead_days"] = frame["lead_days"].astype("int64")
    frame["label"] = frame["label"].astype("int64")
    names = [f.name for f in planted_features()]
    meta = ["account_id", "contract_id", "as_of", "lead_days", "label", "label_known_at",
            "expansion", "renewal_date", "arr", "cohort_month", "tenure_bucket",
            "signup_quarter"]  # fmt: skip
    out = frame[[*meta, *names, "oracle"]].copy()
    for name in ("plan", "segment"):
        out[name] = out[name].astype("category")
    return out.sort_values(["as_of", "account_id"], kind="stable").reset_index(drop=True)
