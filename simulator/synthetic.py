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
from simulator.logistic import sigmoid

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


def make_planted(
    accounts: int = 2000,
    seed: int = 0,
    start: str = "2023-01-01",
    end: str = "2026-01-01",
    lead_days: tuple[int, ...] = (0, 30, 60, 90, 120, 180),
    intercept_per_year: float = 0.0,
) -> PlantedSet:
    """Simulate annual terms of ``accounts`` accounts and snapshot them before each renewal.

    Only terms that end before ``end`` (the data end) are kept, so every row is labelled;
    snapshots fall inside their term and at least 90 days after ``start`` (some history).
    An account stops at its first churn. Rows: about ``accounts`` x 2.3 x ``len(lead_days)``.
    ``intercept_per_year`` makes the churn rate drift: the logit's intercept rises by this
    much per year of the term's end date after ``start`` (the oracle includes it).
    """
    rng = np.random.default_rng(seed)
    t0, t1 = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    span = (t1 - t0).days
    book = _draw_book(rng, accounts, span, intercept_per_year)
    a, t, lead, as_of = _snapshots(book, span, lead_days)
    raw = _observe(rng, book, a, t, lead, as_of)
    return PlantedSet(frame=_to_frame(raw, t0), features=planted_features())


@dataclass(frozen=True)
class _Book:
    """The planted accounts and their annual terms, in days since ``start``.

    ``seg`` ... ``signup`` are per account; the rest are accounts x terms: the terms'
    start and end, the latent drivers (standardised, fixed per term), the true churn
    probability ``p`` and the drawn outcome ``churned``.
    """

    seg: np.ndarray
    seats: np.ndarray
    price: np.ndarray
    plan: np.ndarray
    signup: np.ndarray
    term_start: np.ndarray
    term_end: np.ndarray
    usage: np.ndarray
    key: np.ndarray
    util: np.ndarray
    loss: np.ndarray
    overdue: np.ndarray
    urgent: np.ndarray
    has_nps: np.ndarray
    nps_z: np.ndarray
    p: np.ndarray
    churned: np.ndarray


def _draw_book(rng: np.random.Generator, n: int, span: int, intercept_per_year: float) -> _Book:
    """Draw ``n`` accounts over a window of ``span`` days, their terms and their churn."""
    max_terms = (span + 3 * 365) // 365 + 1
    seg = rng.choice(len(SEGMENTS), size=n, p=[0.6, 0.3, 0.1])
    seats = np.maximum(3, np.round(np.exp(rng.normal(np.array([2.2, 3.5, 5.0])[seg], 0.5))))
    price = np.array([600.0, 900.0, 1200.0])[seg]
    plan = np.where(seg == 2, "enterprise", np.where(rng.random(n) < 0.5, "pro", "starter"))
    preexisting = rng.random(n) < 0.3
    signup = np.where(
        preexisting, -rng.integers(1, 365 * 3, size=n), rng.integers(0, span - 400, size=n)
    )
    # Pre-existing accounts are in a term that started within the year before ``start``.
    first = np.where(preexisting, -rng.integers(1, 365, size=n), signup)
    shape = (n, max_terms)

    def latent(weight: float, base: np.ndarray) -> np.ndarray:
        return weight * base[:, None] + np.sqrt(1 - weight**2) * rng.normal(size=shape)

    usage = latent(0.8, rng.normal(size=n))
    key = latent(0.7, rng.normal(size=n))
    util = latent(0.8, rng.normal(size=n))
    loss = rng.normal(size=shape)
    overdue = rng.poisson(0.3, size=shape)
    urgent = rng.poisson(0.25, size=shape)
    has_nps = rng.random(shape) < 0.6
    nps_z = 0.5 * key + 0.8 * rng.normal(size=shape)
    logit = (
        -2.2 - 1.3 * key + 0.5 * loss - 0.6 * util + 0.45 * overdue + 0.4 * urgent
        + 1.0 * ((usage > 0.5) & (key < -0.4)) - 0.15 * np.where(has_nps, nps_z, 0.0)
    )  # fmt: skip
    term_start = first[:, None] + 365 * np.arange(max_terms)[None, :]
    term_end = term_start + 365
    p = sigmoid(logit + intercept_per_year * term_end / 365.25)
    churned = rng.random(shape) < p
    return _Book(
        seg=seg,
        seats=seats,
        price=price,
        plan=plan,
        signup=signup,
        term_start=term_start,
        term_end=term_end,
        usage=usage,
        key=key,
        util=util,
        loss=loss,
        overdue=overdue,
        urgent=urgent,
        has_nps=has_nps,
        nps_z=nps_z,
        p=p,
        churned=churned,
    )


def _snapshots(
    book: _Book, span: int, lead_days: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Account, term, lead and day of every snapshot: ``lead_days`` before the end of each
    decided term the account lived to see, inside the term and 90 days or more after
    ``start``."""
    churned, term_start, term_end = book.churned, book.term_start, book.term_end
    # Alive at a term: no churn at an earlier term end; decided: the term ended before ``end``.
    earlier_churn = np.cumsum(churned, axis=1) - churned > 0
    keep = ~earlier_churn & (term_end < span)
    a_idx, t_idx = np.nonzero(keep)

    leads = np.asarray(lead_days, dtype=np.int64)
    a = np.repeat(a_idx, leads.size)
    t = np.repeat(t_idx, leads.size)
    lead = np.tile(leads, a_idx.size)
    as_of = term_end[a, t] - lead
    ok = (as_of > term_start[a, t]) & (as_of >= 90)
    return a[ok], t[ok], lead[ok], as_of[ok]


def _observe(
    rng: np.random.Generator,
    book: _Book,
    a: np.ndarray,
    t: np.ndarray,
    lead: np.ndarray,
    as_of: np.ndarray,
) -> pd.DataFrame:
    """The snapshots' rows (day numbers, not yet timestamps): each term's drivers seen
    through a little noise, the label and the oracle."""
    m = a.size
    usage, key, util, loss = book.usage, book.key, book.util, book.loss
    signup, term_end = book.signup, book.term_end

    def noisy(x: np.ndarray, sd: float = 0.15) -> np.ndarray:
        return x + sd * rng.normal(size=m)

    s = book.seats[a]
    users = np.clip(np.round(s * sigmoid(noisy(util[a, t]) + 0.3)), 0, s)
    events = np.round(users * np.exp(2.5 + 0.6 * noisy(usage[a, t])))
    share = sigmoid(-1.2 + 0.9 * noisy(key[a, t], 0.1))
    days = np.clip(np.round(30 * sigmoid(1.2 * noisy(usage[a, t]) + 0.8)), 0, 30)
    nps = np.where(book.has_nps[a, t], np.clip(np.round(7 + 2 * book.nps_z[a, t]), 0, 10), np.nan)
    label = book.churned[a, t].astype(np.int64)
    return pd.DataFrame(
        {
            "account_id": np.char.add("A", np.char.zfill(a.astype(str), 6)),
            "contract_id": np.char.add(
                np.char.add("C", np.char.zfill(a.astype(str), 6)),
                np.char.add("-", (t + 1).astype(str)),
            ),
            "as_of": as_of,
            "lead_days": lead,
            "label": label,
            "label_known_at": term_end[a, t],
            "expansion": ((label == 0) & (rng.random(m) < 0.15)).astype(np.int64),
            "renewal_date": term_end[a, t],
            "segment": np.asarray(SEGMENTS)[book.seg[a]],
            "arr": s * book.price[a],
            "signup_day": signup[a],
            "events_30d": events,
            "active_days_30d": np.where(users > 0, days, 0.0),
            "active_users_30d": users,
            "utilisation_30d": users / s,
            "stickiness_30d": np.clip(days / 30 * sigmoid(noisy(usage[a, t])), 0, 1),
            "distinct_events_30d": np.maximum(
                0, np.round(6 + 1.5 * noisy(key[a, t], 0.6) + noisy(usage[a, t]))
            ),
            "key_events_30d": np.round(events * share),
            "key_share_30d": share,
            "events_change_30d": np.expm1(-0.25 * noisy(loss[a, t], 0.2)),
            "nps_last": nps,
            "urgent_open": np.where(rng.random(m) < 0.9, book.urgent[a, t], 0).astype(float),
            "invoices_overdue": book.overdue[a, t].astype(float),
            "days_to_renewal": lead.astype(float),
            "tenure_days": (as_of - signup[a]).astype(float),
            "plan": book.plan[a],
            "oracle": book.p[a, t],
        }
    )


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
