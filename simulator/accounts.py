"""Static account attributes and the weekly time grid of the simulation.

Times inside the simulator are integers: days since 1970-01-01 for dates and microseconds
since 1970-01-01 UTC for timestamps. They become pandas types only when tables are built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulator.config import SimConfig

DAY_US = 86_400_000_000
WEEK_US = 7 * DAY_US

# Seats are log-uniform within the segment's band.
SEAT_BANDS = np.array([[3, 25], [25, 150], [150, 1000]], dtype=np.float64)
# List price per seat and year, before a volume discount; ranges per segment.
PRICE_BANDS = np.array([[300.0, 600.0], [500.0, 900.0], [700.0, 1200.0]])
PLANS = np.array(["Starter", "Growth", "Business", "Enterprise"], dtype=object)
# Probability of each plan per segment (rows SMB, Mid-Market, Enterprise).
PLAN_PROBS = np.array([[0.55, 0.45, 0.0, 0.0], [0.0, 0.4, 0.6, 0.0], [0.0, 0.0, 0.3, 0.7]])
INDUSTRIES = np.array(
    [
        "Software",
        "Financial Services",
        "Healthcare",
        "Retail",
        "Manufacturing",
        "Education",
        "Media",
        "Logistics",
    ],
    dtype=object,
)
REGIONS = np.array(["NA", "EMEA", "APAC"], dtype=object)
REGION_PROBS = np.array([0.5, 0.35, 0.15])
# Offset of local time from UTC in hours: business hours are local.
REGION_TZ = np.array([-5.0, 1.0, 8.0])

_ADJECTIVES = [
    "Blue",
    "Amber",
    "Bright",
    "Cedar",
    "Clear",
    "Copper",
    "Crimson",
    "Delta",
    "Eastern",
    "Evergreen",
    "Golden",
    "Granite",
    "Harbor",
    "Iron",
    "Jade",
    "Lunar",
    "Maple",
    "Nimbus",
    "Northern",
    "Oak",
    "Polar",
    "Quantum",
    "Rapid",
    "Silver",
    "Solar",
    "Summit",
    "Swift",
    "True",
    "Violet",
    "Western",
]
_NOUNS = [
    "Anchor",
    "Arrow",
    "Beacon",
    "Bridge",
    "Canyon",
    "Circuit",
    "Cloud",
    "Compass",
    "Crest",
    "Falcon",
    "Field",
    "Forge",
    "Grove",
    "Harvest",
    "Horizon",
    "Lantern",
    "Ledger",
    "Meadow",
    "Orbit",
    "Peak",
    "Pine",
    "Pixel",
    "Prism",
    "River",
    "Signal",
    "Spark",
    "Stone",
    "Tide",
    "Vector",
    "Willow",
]
_SUFFIXES = [
    "Inc.",
    "Labs",
    "Systems",
    "Group",
    "Health",
    "Logistics",
    "Analytics",
    "Partners",
    "Works",
    "Co.",
]
_FIRST = [
    "Alex",
    "Blake",
    "Casey",
    "Dana",
    "Eli",
    "Frankie",
    "Gale",
    "Harper",
    "Indy",
    "Jordan",
    "Kai",
    "Logan",
    "Morgan",
    "Noa",
    "Parker",
    "Quinn",
    "Riley",
    "Sam",
    "Taylor",
    "Val",
]
_LAST = [
    "Adams",
    "Baker",
    "Chen",
    "Diaz",
    "Evans",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ito",
    "Jensen",
    "Khan",
    "Lopez",
    "Moreau",
    "Novak",
    "Okafor",
    "Patel",
    "Rossi",
    "Silva",
    "Tanaka",
    "Weber",
]


@dataclass(frozen=True)
class Grid:
    """Weekly grid of the simulated window.

    Week ``w`` covers ``[start + 7w, start + 7w + 7)`` days; the last week may run past
    ``end`` and everything dated at or after ``end`` is dropped.
    """

    start_day: int
    end_day: int
    n_weeks: int
    week_start_us: npt.NDArray[np.int64]
    day_probs: npt.NDArray[np.float64]

    @property
    def start_us(self) -> int:
        return self.start_day * DAY_US

    @property
    def end_us(self) -> int:
        return self.end_day * DAY_US


def make_grid(cfg: SimConfig) -> Grid:
    """Build the weekly grid; weekdays get most of the activity, weekends a little."""
    start_day = int(np.datetime64(cfg.start, "D").astype(np.int64))
    end_day = int(np.datetime64(cfg.end, "D").astype(np.int64))
    n_weeks = -(-(end_day - start_day) // 7)
    week_start_us = (start_day + 7 * np.arange(n_weeks, dtype=np.int64)) * DAY_US
    # 1970-01-01 was a Thursday, so (day + 3) % 7 is 0 on Mondays.
    weekday = (start_day + np.arange(7) + 3) % 7
    weights = np.where(weekday < 5, 0.19, 0.025)
    return Grid(start_day, end_day, n_weeks, week_start_us, weights / weights.sum())


def add_months(days: npt.NDArray[np.int64], months: int) -> npt.NDArray[np.int64]:
    """Same day of the month ``months`` months later (days since 1970-01-01).

    When the target month is too short for that day, the date rolls to the 1st of the
    month after it: 31 January + 1 month is 1 March, and 29 February + 12 months is
    1 March (so ``months=12`` is "the same calendar day one year later"). ``months`` may
    be negative.
    """
    d = days.astype("M8[D]")
    month = d.astype("M8[M]")
    day_of_month = (d - month.astype("M8[D]")).astype(np.int64)
    target = (month + months).astype("M8[D]").astype(np.int64)
    following = (month + months + 1).astype("M8[D]").astype(np.int64)
    return np.where(day_of_month < following - target, target + day_of_month, following).astype(
        np.int64
    )


def working_time_us(
    rng: np.random.Generator,
    tz_offset_h: npt.NDArray[np.float64],
    day_probs: npt.NDArray[np.float64],
) -> npt.NDArray[np.int64]:
    """Offsets (microseconds, whole seconds) from a week start, in local business hours.

    One offset per element of ``tz_offset_h`` (the row's local UTC offset in hours).
    """
    n = tz_offset_h.shape[0]
    day = np.searchsorted(np.cumsum(day_probs), rng.random(n) * day_probs.sum(), side="right")
    local_hour = np.clip(rng.normal(13.0, 2.4, n), 6.5, 21.5)
    seconds = np.floor(np.minimum(day, 6) * 86_400.0 + (local_hour - tz_offset_h) * 3600.0)
    return seconds.astype(np.int64) * 1_000_000


@dataclass(frozen=True)
class Accounts:
    """Static attributes of accounts, one array element per account (index = account)."""

    ids: npt.NDArray[np.object_]
    names: npt.NDArray[np.object_]
    segment: npt.NDArray[np.int64]
    csm: npt.NDArray[np.object_]
    plan: npt.NDArray[np.object_]
    industry: npt.NDArray[np.object_]
    region: npt.NDArray[np.int64]
    created_us: npt.NDArray[np.int64]
    first_term_day: npt.NDArray[np.int64]
    first_week: npt.NDArray[np.int64]
    seats0: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    utilisation: npt.NDArray[np.float64]
    under_utilised: npt.NDArray[np.bool_]
    watermelon: npt.NDArray[np.bool_]
    health_mean: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def take(self, sl: slice) -> Accounts:
        """The accounts in ``sl`` (a chunk)."""
        return Accounts(**{k: v[sl] for k, v in self.__dict__.items()})

    def pick(self, idx: npt.NDArray[np.int64]) -> Accounts:
        """The accounts at positions ``idx`` (a branch of a chunk), in that order."""
        return Accounts(**{k: v[idx] for k, v in self.__dict__.items()})


def draw_accounts(cfg: SimConfig, grid: Grid, rng: np.random.Generator) -> Accounts:
    """Draw the static attributes of ``cfg.accounts`` accounts.

    Pre-existing customers (``cfg.preexisting_share``) are in a term that began before
    ``start``: with annual terms up to 270 days before, so that their first renewal has a
    full 90-day window inside the simulation; with shorter terms up to one term before
    (``0 .. 28 * term_months - 1`` days, so the term always still runs at ``start``). The
    others become customers uniformly over the first two years (at most two thirds of the
    window).
    """
    n = cfg.accounts
    m = cfg.mechanisms
    ids = np.array([f"A-{i + 1:05d}" for i in range(n)], dtype=object)
    segment = rng.choice(3, size=n, p=np.asarray(cfg.segment_shares)).astype(np.int64)

    lo, hi = SEAT_BANDS[segment, 0], SEAT_BANDS[segment, 1]
    seats0 = np.round(np.exp(rng.uniform(np.log(lo), np.log(hi)))).astype(np.int64)
    base_price = rng.uniform(PRICE_BANDS[segment, 0], PRICE_BANDS[segment, 1])
    # Volume discount: bigger deals pay less per seat.
    price = np.round(base_price * (1.0 - 0.08 * np.log10(seats0)), 2)

    pre = rng.random(n) < cfg.preexisting_share
    window = grid.end_day - grid.start_day
    onboarding_days = min(730, (2 * window) // 3)
    new_day = grid.start_day + rng.integers(0, onboarding_days, n)
    # The same single draw for every term length keeps the random stream in step.
    pre_span = 271 if cfg.term_months == 12 else 28 * cfg.term_months
    pre_term = grid.start_day - rng.integers(0, pre_span, n)
    first_term_day = np.where(pre, pre_term, new_day).astype(np.int64)
    years_before = np.where(pre, rng.integers(0, 3, n), 0)
    created_day = first_term_day - 365 * years_before
    created_us = created_day * DAY_US + rng.integers(8 * 3600, 18 * 3600, n) * 1_000_000
    first_week = np.maximum(first_term_day - grid.start_day, 0) // 7

    under = (rng.random(n) < cfg.under_utilised_share) & m.under_utilisation
    utilisation = np.where(under, rng.uniform(0.15, 0.45, n), rng.beta(8.0, 2.0, n))
    watermelon = (rng.random(n) < cfg.watermelon_share) & m.watermelon
    health_mean = rng.normal(0.0, 0.5, n) + np.array([0.0, 0.05, 0.1])[segment]

    n_csm = max(1, round(n / cfg.accounts_per_csm))
    pairs = np.array([f"{a} {b}" for a in _FIRST for b in _LAST], dtype=object)
    csm_names = pairs[rng.permutation(pairs.shape[0])[: min(n_csm, pairs.shape[0])]]
    csm = csm_names[rng.integers(0, csm_names.shape[0], n)]

    adj = rng.integers(0, len(_ADJECTIVES), n)
    noun = rng.integers(0, len(_NOUNS), n)
    suf = rng.integers(0, len(_SUFFIXES), n)
    names = np.array(
        [
            f"{_ADJECTIVES[a]} {_NOUNS[b]} {_SUFFIXES[c]}"
            for a, b, c in zip(adj, noun, suf, strict=True)
        ],
        dtype=object,
    )
    cum = PLAN_PROBS.cumsum(axis=1)[segment]
    plan = PLANS[np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), 3)]
    industry = INDUSTRIES[rng.integers(0, INDUSTRIES.shape[0], n)]
    region = rng.choice(3, size=n, p=REGION_PROBS).astype(np.int64)
    return Accounts(
        ids=ids,
        names=names,
        segment=segment,
        csm=csm,
        plan=plan,
        industry=industry,
        region=region,
        created_us=created_us.astype(np.int64),
        first_term_day=first_term_day,
        first_week=first_week.astype(np.int64),
        seats0=np.maximum(seats0, 1),
        price=price,
        utilisation=utilisation,
        under_utilised=under,
        watermelon=watermelon,
        health_mean=health_mean,
    )
