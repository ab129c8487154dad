"""The weekly simulation of one chunk of accounts.

The loop runs once per week, vectorised over the accounts of the chunk. It moves the
hidden health, the champion and the terms, draws how many events of each kind every
account emits (the rows themselves are built afterwards in :mod:`emit`), raises tickets
and invoices, and decides the outcome of every term that ends. Terms last
``cfg.term_months`` months (:func:`~simulator.accounts.add_months`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from simulator.accounts import (
    DAY_US,
    REGION_TZ,
    Accounts,
    Grid,
    add_months,
    working_time_us,
)
from simulator.config import SimConfig
from simulator.outcome import (
    DAYS_PER_YEAR,
    DRIVER_LOOKBACK_MONTHS,
    DRIVERS,
    OVERDUE_DAYS,
    WINDOW_WEEKS,
    Window,
    churn_logit,
    per_term,
)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

# Hidden health: Ornstein-Uhlenbeck around the account's mean, one step per week.
HEALTH_THETA = 0.04
HEALTH_SIGMA = 0.15
HEALTH_INIT_SD = 0.5
# Weekly active probability of an activated user: sigmoid(ACT0 + ACT1 * health).
ACT0, ACT1 = 0.2, 1.0
# Vanity events per active user and week (login, dashboard view, page view).
VANITY_RATES = np.array([0.25, 0.11, 0.08])
WATERMELON_VANITY = 2.0
# Key events per active user and week at health 0, times exp(DEPTH * health).
KEY_RATE = 0.09
DEPTH = 0.7
WATERMELON_DEPTH = 0.3
KEY_WEIGHTS_4 = np.array([0.35, 0.2, 0.3, 0.15])
# The champion's share of key events, and the champion's own vanity events per week.
CHAMPION_SHARE = 0.4
CHAMPION_VANITY = np.array([2.5, 1.2, 0.6])
# Weekly hazard of the champion leaving: CH_HAZARD * exp(-CH_SLOPE * health).
CH_HAZARD = 0.0025
CH_SLOPE = 1.0
CH_SHOCK = 0.25
CH_RETURN = 1.0 / 26.0
# Tickets per account-week by segment, times exp(-TK_SLOPE * health) with support pain.
TICKET_RATE = np.array([0.06, 0.14, 0.3])
TK_SLOPE = 0.6
PRIORITIES = ("low", "normal", "high", "urgent")
PRIORITY_BASE = np.log(np.array([0.3, 0.45, 0.18, 0.07]))
PRIORITY_SLOPE = np.array([0.5, 0.0, -0.4, -0.9])
# Invoices: due PAYMENT_DAYS after issue; late with probability sigmoid(LATE0 - LATE1 * health).
PAYMENT_DAYS = 30
LATE0, LATE1 = -1.9, 1.1
UNPAID0, UNPAID1 = -1.2, 1.0
ON_ISSUE = 0.2
# Accounts this large are billed every 91 days within terms longer than a quarter.
QUARTERLY_MIN_SEATS = 50
BILLING_DAYS = 91
# Slots per account remembering when its badly overdue invoices became known; more than
# the invoices a driver lookback can hold (4 a year billed quarterly, 7 in six months
# billed monthly).
BAD_INVOICE_SLOTS = 16
_NEVER = np.iinfo(np.int64).min


def _sigmoid(x: F64) -> F64:
    return 1.0 / (1.0 + np.exp(-x))


def _window_groups(lo: I64, w: int) -> list[tuple[npt.NDArray[np.bool_], int, int]]:
    """Rows grouped by the weeks ``[a, b)`` their behaviour window reads.

    ``lo`` is each row's first week (13 weeks before week ``w``, or the account's first
    week if later); the window ends before week ``w``. A term that ends in the account's
    first simulated week (a pre-existing customer on short terms renewing in week 0) reads
    that week itself, the only behaviour there is.
    """
    groups = []
    for a in np.unique(lo):
        b = w if a < w else w + 1
        groups.append((lo == a, int(a), b))
    return groups


@dataclass
class _Rows:
    """Column buffers of a table growing week by week (internal)."""

    cols: dict[str, list[npt.NDArray[Any]]] = field(default_factory=dict)

    def add(self, **arrays: npt.NDArray[Any]) -> None:
        for name, arr in arrays.items():
            self.cols.setdefault(name, []).append(arr)

    def done(self, names: tuple[str, ...]) -> dict[str, npt.NDArray[Any]]:
        return {n: np.concatenate(self.cols[n]) if n in self.cols else np.empty(0) for n in names}


@dataclass(frozen=True)
class ChunkResult:
    """Everything one chunk (or one branch of it, see :func:`resume_chunk`) produced.

    Account indices are local to the chunk (or branch). Rows dated before ``act_from_us``
    or at or after ``act_to_us`` belong to no table. ``state`` and ``history`` keep what a
    branch needs to resume an account where this run left it; ``own_from_week`` is the
    first week whose hidden health is this run's own (0, or the week after the branch
    point).
    """

    reg_counts: npt.NDArray[np.int32]
    champ_counts: npt.NDArray[np.int32]
    wau_reg: npt.NDArray[np.int32]
    pool_lo: npt.NDArray[np.int32]
    pool_n: npt.NDArray[np.int32]
    champ_user: npt.NDArray[np.int32]
    health: npt.NDArray[np.float32]
    alive: npt.NDArray[np.bool_]
    act_from_us: I64
    act_to_us: I64
    contracts: dict[str, npt.NDArray[Any]]
    tickets: dict[str, npt.NDArray[Any]]
    invoices: dict[str, npt.NDArray[Any]]
    state: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    history: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    tickets_raw: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    own_from_week: I64 = field(default_factory=lambda: np.zeros(0, np.int64))


CONTRACT_COLS = (
    "acc",
    "term",
    "start_day",
    "end_day",
    "seats",
    "arr",
    "outcome",
    "p",
    "p_noisy",
    "p_noisy_annual",
    "u_churn",
    "survive",
    "contrib",
    "noise",
    "champion_left_us",
    "mean_health",
)
TICKET_COLS = ("acc", "created_us", "first_response_us", "resolved_us", "priority", "csat")
INVOICE_COLS = ("acc", "issued_us", "due_us", "paid_us", "amount")
OUTCOMES = ("renewed", "expanded", "contracted", "churned")
CHURNED = OUTCOMES.index("churned")
# Per-account state carried from week to week; a churned account's state is frozen at its
# churn (only its hidden health moves on), which is what lets a branch resume it.
STATE_COLS = (
    "health",
    "term",
    "term_start",
    "term_end",
    "seats",
    "arr",
    "started",
    "churned",
    "present",
    "base",
    "last_dep",
    "bad_known_day",
    "bad_count",
    "act_from",
    "act_to",
    "pool_a",
    "health_at_churn",
)
# Weekly histories (accounts x weeks) the churn windows read back.
HISTORY_COLS = ("key_hist", "wau_hist", "pain_hist")


class _Run:
    """The weekly loop of one chunk, or of a branch resumed from a parent run (internal).

    Every random draw comes from ``rng`` in a fixed order, so a fresh run is exactly the
    world of the seed; a branch draws from its own generator and disturbs nothing else.
    """

    def __init__(
        self,
        acc: Accounts,
        cfg: SimConfig,
        grid: Grid,
        rng: np.random.Generator,
        health: F64,
        n_ev: int,
    ) -> None:
        n, n_weeks = len(acc), grid.n_weeks
        self.acc, self.cfg, self.grid, self.rng = acc, cfg, grid, rng
        self.mech = cfg.mechanisms
        self.months = cfg.term_months
        self.term_share = self.months / 12.0
        self.tz = REGION_TZ[acc.region]
        self.reg_counts = np.zeros((n, n_weeks, n_ev), np.int32)
        self.champ_counts = np.zeros((n, n_weeks, n_ev), np.int32)
        self.wau_reg = np.zeros((n, n_weeks), np.int32)
        self.pool_lo = np.zeros((n, n_weeks), np.int32)
        self.pool_n = np.zeros((n, n_weeks), np.int32)
        self.champ_user = np.full((n, n_weeks), -1, np.int32)
        self.health_hist = np.zeros((n, n_weeks), np.float32)
        self.alive_hist = np.zeros((n, n_weeks), np.bool_)
        self.key_hist = np.zeros((n, n_weeks), np.float64)
        self.wau_hist = np.zeros((n, n_weeks), np.float64)
        self.pain_hist = np.zeros((n, n_weeks), np.float64)
        self.health = health
        self.term = np.zeros(n, np.int64)
        self.term_start = acc.first_term_day.copy()
        self.term_end = add_months(self.term_start, self.months)
        self.seats = acc.seats0.copy()
        self.arr = np.round(self.seats * acc.price, 2)
        self.started = np.zeros(n, np.bool_)
        self.churned = np.zeros(n, np.bool_)
        self.present = np.ones(n, np.bool_)
        self.base = np.zeros(n, np.int64)
        self.last_dep = np.full(n, -1, np.int64)
        self.bad_known_day = np.full((n, BAD_INVOICE_SLOTS), _NEVER, np.int64)
        self.bad_count = np.zeros(n, np.int64)
        self.act_from = np.maximum(acc.created_us, grid.start_us)
        self.act_to = np.full(n, grid.end_us, np.int64)
        self.pool_a = self.pool(np.arange(n))
        self.health_at_churn = np.full(n, np.nan)
        self.own_from_week = np.zeros(n, np.int64)
        # Accounts whose weeks this run simulates; a branch holds its accounts inactive
        # (health and history untouched) until they resume.
        self.active = np.ones(n, np.bool_)
        self.contracts, self.tickets, self.invoices = _Rows(), _Rows(), _Rows()

    def pool(self, idx: I64) -> I64:
        """Activated users: the share ``utilisation`` of the seats, at least one."""
        return np.maximum(1, np.round(self.acc.utilisation[idx] * self.seats[idx])).astype(np.int64)

    def lookback_day(self, idx: I64) -> I64:
        """First day the event-like drivers of the current term look at (the term's start,
        or DRIVER_LOOKBACK_MONTHS before its end if that is earlier)."""
        back = add_months(self.term_end[idx], -DRIVER_LOOKBACK_MONTHS)
        return np.minimum(self.term_start[idx], back)

    def issue_invoices(self, idx: I64) -> None:
        """Bill the term that starts now; remember when bad invoices will become known.

        One invoice per term, or one every 91 days for large accounts on terms longer
        than a quarter. ``arr`` is annual: a term is billed ``term_months / 12`` of it.
        """
        rng, term_start = self.rng, self.term_start
        quarterly = self.seats[idx] >= QUARTERLY_MIN_SEATS
        n_inv = np.where(quarterly, max(1, self.months // 3), 1)
        rows = np.repeat(idx, n_inv)
        k = np.arange(rows.shape[0]) - np.repeat(np.cumsum(n_inv) - n_inv, n_inv)
        issued_day = term_start[rows] + BILLING_DAYS * k
        issued = issued_day * DAY_US + 8 * 3600 * 1_000_000
        due = issued + PAYMENT_DAYS * DAY_US
        amount = np.round(self.arr[rows] * self.term_share / np.repeat(n_inv, n_inv), 2)
        m = rows.shape[0]
        h = self.health[rows]
        on_time = issued + (rng.random(m) * 30 * DAY_US).astype(np.int64)
        on_time = np.where(rng.random(m) < ON_ISSUE, issued + 3600 * 1_000_000, on_time)
        late = np.zeros(m, np.bool_)
        unpaid = np.zeros(m, np.bool_)
        paid = on_time
        if self.mech.late_invoices:
            late = rng.random(m) < _sigmoid(LATE0 - LATE1 * h)
            unpaid = late & (rng.random(m) < _sigmoid(UNPAID0 - UNPAID1 * h))
            late_by = np.exp(rng.normal(np.log(20.0), 0.8, m)) * DAY_US
            paid = np.where(late, due + late_by.astype(np.int64), on_time)
        paid = np.where(unpaid, -1, paid)
        bad = unpaid | (late & (paid - due > OVERDUE_DAYS * DAY_US))
        # A bad invoice is known once it is still unpaid OVERDUE_DAYS after its due date.
        b_rows = rows[bad]
        if b_rows.size:
            pos = np.arange(b_rows.size)
            first = np.maximum.accumulate(np.where(np.r_[True, b_rows[1:] != b_rows[:-1]], pos, 0))
            slot = (self.bad_count[b_rows] + pos - first) % BAD_INVOICE_SLOTS
            self.bad_known_day[b_rows, slot] = issued_day[bad] + PAYMENT_DAYS + OVERDUE_DAYS
            np.add.at(self.bad_count, b_rows, 1)
        self.invoices.add(acc=rows, issued_us=issued, due_us=due, paid_us=paid, amount=amount)

    def renew(self, stay: I64, out: I64) -> None:
        """Start the next term of the accounts ``stay`` (outcome codes ``out``, not churn)."""
        rng = self.rng
        seats, arr = self.seats, self.arr
        factor = np.ones(stay.size)
        factor = np.where(out == 1, rng.uniform(1.1, 1.5, stay.size), factor)
        factor = np.where(out == 2, rng.uniform(0.6, 0.9, stay.size), factor)
        new_seats = np.maximum(1, np.round(seats[stay] * factor)).astype(np.int64)
        # Prices rise 0-5 % a year: a term gets its share of that (compounded).
        uplift = rng.uniform(1.0, 1.05, stay.size) ** self.term_share
        arr[stay] = np.round(arr[stay] * new_seats / seats[stay] * uplift, 2)
        seats[stay] = new_seats
        self.term[stay] += 1
        self.term_start[stay] = self.term_end[stay]
        self.term_end[stay] = add_months(self.term_start[stay], self.months)
        self.pool_a[stay] = self.pool(stay)
        self.issue_invoices(stay)

    def week(self, w: int) -> None:
        """Simulate week ``w``: health, champion, usage, tickets, then the terms ending."""
        acc, cfg, grid, rng, mech = self.acc, self.cfg, self.grid, self.rng, self.mech
        n = len(acc)
        n_van, n_key = len(cfg.vanity_events), len(cfg.key_events)
        n_ev = n_van + n_key
        key_w = KEY_WEIGHTS_4 if n_key == 4 else np.full(n_key, 1.0 / n_key)
        ws = int(grid.week_start_us[w])
        starting = np.flatnonzero(~self.started & (acc.first_week == w))
        if starting.size:
            self.started[starting] = True
            self.issue_invoices(starting)
        alive = self.started & ~self.churned

        health, present = self.health, self.present
        if mech.usage_drift:
            shock = rng.normal(0.0, 1.0, n)
            moved = health + HEALTH_THETA * (acc.health_mean - health) + HEALTH_SIGMA * shock
            health = np.where(self.active, moved, health)
        if mech.champion_departure:
            u = rng.random(n)
            leave = alive & present & (u < CH_HAZARD * np.exp(-CH_SLOPE * health))
            back = alive & ~present & (u < CH_RETURN)
            n_leave = int(leave.sum())
            present[leave] = False
            self.base[leave] += 1
            self.last_dep[leave] = ws + rng.integers(0, 5 * 24 * 3600, n_leave) * 1_000_000
            health = np.where(leave, health - CH_SHOCK, health)
            present[back] = True
        self.health = health

        idx = np.flatnonzero(alive)
        h = health[idx]
        pres = present[idx].astype(np.int64)
        n_reg = np.maximum(self.pool_a[idx] - pres, 0)
        p_act = _sigmoid(ACT0 + ACT1 * h)
        wr = rng.binomial(n_reg, p_act)
        wm = acc.watermelon[idx]
        depth = np.exp(DEPTH * h) * np.where(wm, WATERMELON_DEPTH, 1.0)
        van_mult = np.where(wm, WATERMELON_VANITY, 1.0) * float(mech.vanity_events)
        lam_reg = np.empty((idx.size, n_ev))
        lam_reg[:, :n_van] = (wr * van_mult)[:, None] * VANITY_RATES
        lam_reg[:, n_van:] = (wr * KEY_RATE * depth)[:, None] * key_w
        lam_ch = np.empty((idx.size, n_ev))
        lam_ch[:, :n_van] = (pres * van_mult)[:, None] * CHAMPION_VANITY
        # The champion does CHAMPION_SHARE of the key work the account would expect.
        expected_team = np.maximum(n_reg * p_act, 1.0) * KEY_RATE * depth
        ch_key = pres * expected_team * CHAMPION_SHARE / (1.0 - CHAMPION_SHARE)
        lam_ch[:, n_van:] = ch_key[:, None] * key_w
        reg_w = rng.poisson(lam_reg).astype(np.int32)
        ch_w = rng.poisson(lam_ch).astype(np.int32)
        self.reg_counts[idx, w] = reg_w
        self.champ_counts[idx, w] = ch_w
        self.wau_reg[idx, w] = wr
        self.pool_lo[idx, w] = self.base[idx] + pres
        self.pool_n[idx, w] = n_reg
        self.champ_user[idx, w] = np.where(pres == 1, self.base[idx], -1)
        self.health_hist[self.active, w] = health[self.active]
        self.alive_hist[idx, w] = True
        self.key_hist[idx, w] = reg_w[:, n_van:].sum(axis=1) + ch_w[:, n_van:].sum(axis=1)
        self.wau_hist[idx, w] = wr + pres

        _raise_tickets(idx, h, acc, cfg, rng, ws, self.tz, grid, self.tickets, self.pain_hist, w)

        term_end = self.term_end
        ending = np.flatnonzero(
            alive & (term_end < grid.end_day) & ((term_end - grid.start_day) // 7 == w)
        )
        if ending.size:
            self.decide(w, ending)

    def decide(self, w: int, ending: I64) -> None:
        """The churn formula for the terms ending in week ``w``; survivors renew."""
        acc, cfg, grid, rng, mech = self.acc, self.cfg, self.grid, self.rng, self.mech
        months, term_end, seats = self.months, self.term_end, self.seats
        key_pw = np.empty(ending.size)
        breadth = np.empty(ending.size)
        pain = np.empty(ending.size)
        mean_health = np.empty(ending.size)
        lo = np.maximum(w - WINDOW_WEEKS, acc.first_week[ending])
        for sel, a, b in _window_groups(lo, w):
            r, n_w = ending[sel], b - a
            key_pw[sel] = self.key_hist[r, a:b].sum(axis=1) / (seats[r] * n_w)
            breadth[sel] = self.wau_hist[r, a:b].sum(axis=1) / (seats[r] * n_w)
            pain[sel] = self.pain_hist[r, a:b].sum(axis=1)
            mean_health[sel] = (
                self.health_hist[r, a:b].mean(axis=1).astype(np.float64)
                if a < w
                else self.health[r]
            )
        since = self.lookback_day(ending)
        known = self.bad_known_day[ending]
        win = Window(
            key_per_seat_week=key_pw,
            breadth=breadth,
            support_pain=pain,
            champion_left=self.last_dep[ending] >= since * DAY_US,
            bad_invoices=((known >= since[:, None]) & (known < term_end[ending][:, None])).sum(
                axis=1, dtype=np.float64
            ),
            watermelon=acc.watermelon[ending],
            mean_health=mean_health,
        )
        years = (term_end[ending] - grid.start_day) / DAYS_PER_YEAR
        draw = churn_logit(win, cfg.churn, mech, rng, years, months)
        u_churn = rng.random(ending.size)
        churn = u_churn < draw.p_noisy
        # What a surviving term becomes: drawn for every term, churned or not, so that a
        # play that saves a term (see :mod:`simulator.plays`) knows its fate.
        survive = np.zeros(ending.size, np.int64)
        if mech.expansions:
            u = rng.random(ending.size)
            # Annual probabilities, converted to the term like the churn probability.
            p_exp = per_term(_sigmoid(-1.5 + 1.2 * win.mean_health), months)
            p_con = per_term(
                _sigmoid(
                    -2.6
                    - 0.8 * win.mean_health
                    + 0.5 * np.clip((0.4 - win.breadth) / 0.2, -2.0, 2.0)
                ),
                months,
            )
            survive = np.where(u < p_exp, 1, np.where(u < p_exp + p_con, 2, 0))
        outcome = np.where(churn, CHURNED, survive)
        self.contracts.add(
            acc=ending,
            term=self.term[ending],
            start_day=self.term_start[ending],
            end_day=term_end[ending],
            seats=seats[ending],
            arr=self.arr[ending],
            outcome=outcome,
            p=draw.p,
            p_noisy=draw.p_noisy,
            p_noisy_annual=draw.p_noisy_annual,
            u_churn=u_churn,
            survive=survive,
            contrib=draw.contrib,
            noise=draw.noise,
            champion_left_us=np.where(win.champion_left, self.last_dep[ending], -1),
            mean_health=win.mean_health,
        )
        gone = ending[churn]
        self.churned[gone] = True
        self.act_to[gone] = term_end[gone] * DAY_US
        self.health_at_churn[gone] = self.health[gone]
        self.renew(ending[~churn], outcome[~churn])

    def result(self) -> ChunkResult:
        """Close the open terms and package the chunk's arrays."""
        open_ = np.flatnonzero(self.started & ~self.churned)
        k = open_.size
        nan = np.full(k, np.nan)
        self.contracts.add(
            acc=open_,
            term=self.term[open_],
            start_day=self.term_start[open_],
            end_day=self.term_end[open_],
            seats=self.seats[open_],
            arr=self.arr[open_],
            outcome=np.full(k, -1),
            p=nan,
            p_noisy=nan,
            p_noisy_annual=nan,
            u_churn=nan,
            survive=np.full(k, -1),
            contrib=np.full((k, len(DRIVERS)), np.nan),
            noise=nan,
            champion_left_us=np.where(
                self.last_dep[open_] >= self.lookback_day(open_) * DAY_US, self.last_dep[open_], -1
            ),
            mean_health=nan,
        )
        # A churned account raises no ticket after its final end_date.
        raised = self.tickets.done(TICKET_COLS)
        t_acc = raised["acc"].astype(np.int64)
        t_ok = (raised["created_us"] >= self.act_from[t_acc]) & (
            raised["created_us"] < self.act_to[t_acc]
        )
        return ChunkResult(
            reg_counts=self.reg_counts,
            champ_counts=self.champ_counts,
            wau_reg=self.wau_reg,
            pool_lo=self.pool_lo,
            pool_n=self.pool_n,
            champ_user=self.champ_user,
            health=self.health_hist,
            alive=self.alive_hist,
            act_from_us=self.act_from,
            act_to_us=self.act_to,
            contracts=self.contracts.done(CONTRACT_COLS),
            tickets={k: v[t_ok] for k, v in raised.items()},
            invoices=self.invoices.done(INVOICE_COLS),
            state={name: getattr(self, name) for name in STATE_COLS},
            history={name: getattr(self, name) for name in HISTORY_COLS},
            tickets_raw=raised,
            own_from_week=self.own_from_week,
        )


def run_chunk(acc: Accounts, cfg: SimConfig, grid: Grid, rng: np.random.Generator) -> ChunkResult:
    """Simulate the accounts of one chunk week by week over the whole window."""
    n = len(acc)
    health = acc.health_mean + rng.normal(0.0, HEALTH_INIT_SD, n)
    if not cfg.mechanisms.usage_drift:
        health = acc.health_mean.copy()
    run = _Run(acc, cfg, grid, rng, health, len(cfg.vanity_events) + len(cfg.key_events))
    for w in range(grid.n_weeks):
        run.week(w)
    return run.result()


def resume_chunk(
    parent: ChunkResult,
    acc: Accounts,
    rows: I64,
    survive: I64,
    cfg: SimConfig,
    grid: Grid,
    rng: np.random.Generator,
) -> ChunkResult:
    """Resume accounts ``rows`` of ``parent``, which churned there, as if they had renewed.

    Each account's last term in ``parent`` churned; here it ends with the outcome
    ``survive`` (renewed, expanded or contracted) instead, and the account lives on from
    the week of that renewal with draws from ``rng`` alone. ``acc`` are the parent's
    accounts; the result's account ``k`` is the parent's ``rows[k]``. Its tables hold only
    what happens from the renewal on (``act_from_us`` is the renewal day); its hidden
    health, from the week after.
    """
    sub = acc.pick(rows)
    st = parent.state
    run = _Run(sub, cfg, grid, rng, st["health_at_churn"][rows].copy(), parent.reg_counts.shape[2])
    for name in STATE_COLS:
        setattr(run, name, np.array(st[name][rows], copy=True))
    for name, arr in parent.history.items():
        setattr(run, name, arr[rows].copy())
    for name in ("reg_counts", "champ_counts", "wau_reg", "pool_lo", "pool_n", "champ_user"):
        setattr(run, name, getattr(parent, name)[rows].copy())
    run.health_hist = parent.health[rows].copy()
    run.alive_hist = parent.alive[rows].copy()
    run.health = st["health_at_churn"][rows].copy()
    renewal_day = run.term_end.copy()
    # Until its renewal week an account waits, churned and frozen (its weeks up to the
    # renewal are the parent's); then it renews and lives on.
    run.churned[:] = True
    run.active[:] = False
    run.act_from = renewal_day * DAY_US
    run.act_to[:] = grid.end_us
    run.health_at_churn[:] = np.nan
    w0 = (renewal_day - grid.start_day) // 7
    run.own_from_week = w0 + 1
    # The weeks before the renewal week are the parent's rows: emit nothing for them.
    before = np.arange(grid.n_weeks)[None, :] < w0[:, None]
    run.reg_counts[before] = 0
    run.champ_counts[before] = 0
    run.alive_hist[before] = False
    # Tickets raised in the renewal week after the renewal day were dropped by the parent
    # (the account had churned); here they are the account's.
    raw = parent.tickets_raw
    local = np.full(len(acc), -1, np.int64)
    local[rows] = np.arange(rows.size)
    t_acc = local[raw["acc"].astype(np.int64)]
    keep = t_acc >= 0
    keep[keep] &= raw["created_us"][keep] >= run.act_from[t_acc[keep]]
    if keep.any():
        run.tickets.add(**{k: (t_acc[keep] if k == "acc" else v[keep]) for k, v in raw.items()})
    first = int(w0.min())
    for w in range(first, grid.n_weeks):
        if w > first:
            run.week(w)
        now = np.flatnonzero(w0 == w)
        if now.size:
            run.churned[now] = False
            run.active[now] = True
            run.renew(now, survive[now])
    return run.result()


def _raise_tickets(
    idx: I64,
    h: F64,
    acc: Accounts,
    cfg: SimConfig,
    rng: np.random.Generator,
    week_start_us: int,
    tz: F64,
    grid: Grid,
    out: _Rows,
    pain_hist: F64,
    w: int,
) -> None:
    """Raise this week's tickets; record the pain they cause in ``pain_hist[:, w]``."""
    pain_on = cfg.mechanisms.support_pain
    # Without support pain the ticket process ignores health (h_eff = 0).
    h_eff = h if pain_on else np.zeros_like(h)
    rate = TICKET_RATE[acc.segment[idx]] * np.exp(-TK_SLOPE * h_eff)
    n_t = rng.poisson(rate)
    if n_t.sum() == 0:
        return
    rows = np.repeat(idx, n_t)
    th = np.repeat(h_eff, n_t)
    m = rows.shape[0]
    created = week_start_us + working_time_us(rng, tz[rows], grid.day_probs)
    logits = PRIORITY_BASE + th[:, None] * PRIORITY_SLOPE
    probs = np.exp(logits)
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    priority = np.minimum((rng.random(m)[:, None] > cum).sum(axis=1), 3)
    urgent = priority == 3
    speed = np.where(priority >= 2, 0.4, 1.0)
    fr_hours = np.exp(rng.normal(1.2 - 0.6 * th, 0.8)) * speed
    first_resp = created + (fr_hours * 3.6e9).astype(np.int64)
    rs_days = np.exp(rng.normal(0.8 - 0.5 * th, 0.9)) * speed
    resolved = first_resp + (rs_days * DAY_US).astype(np.int64)
    p_open = np.where(urgent, _sigmoid(-1.6 - 1.5 * th), 0.02)
    left_open = rng.random(m) < p_open
    resolved = np.where(left_open, -1, resolved)
    rated = ~left_open & (rng.random(m) < 0.6)
    score = 4.0 + 0.8 * th - 0.3 * np.log1p(rs_days) + rng.normal(0.0, 0.8, m)
    csat = np.where(rated, np.clip(np.round(score), 1, 5), 0).astype(np.int64)
    slow = urgent & (left_open | (rs_days > 14.0))
    pain = 0.15 + 0.85 * slow + 0.5 * (rated & (csat <= 2)) + 0.1 * (priority >= 2)
    np.add.at(pain_hist[:, w], rows, pain)
    out.add(
        acc=rows,
        created_us=created,
        first_response_us=first_resp,
        resolved_us=resolved,
        priority=priority,
        csat=csat,
    )
