"""The weekly simulation of one chunk of accounts.

The loop runs once per week, vectorised over the accounts of the chunk. It moves the
hidden health and the champion, draws how many events of each kind every account emits
(:mod:`simulator.usage`; the rows themselves are built afterwards in :mod:`emit`), raises
tickets (:mod:`simulator.tickets`), bills the terms that start
(:mod:`simulator.invoices`), and decides the outcome of every term that ends. Terms last
``cfg.term_months`` months (:func:`~simulator.accounts.add_months`). What a run produces
is a :class:`~simulator.chunk_result.ChunkResult`; :mod:`simulator.branch` resumes a run's
accounts in a branch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from simulator.accounts import DAY_US, REGION_TZ, Accounts, Grid, add_months
from simulator.chunk_result import (
    CHURNED,
    CONTRACT_COLS,
    HISTORY_COLS,
    INVOICE_COLS,
    STATE_COLS,
    TICKET_COLS,
    ChunkResult,
    Rows,
)
from simulator.config import SimConfig
from simulator.invoices import bad_invoices_between, bill_terms, no_bad_invoices, remember_bad
from simulator.logistic import sigmoid
from simulator.outcome import (
    DAYS_PER_YEAR,
    DRIVER_LOOKBACK_MONTHS,
    DRIVERS,
    WINDOW_WEEKS,
    Window,
    churn_logit,
    per_term,
    window_groups,
)
from simulator.tickets import raise_tickets
from simulator.usage import draw_usage

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

# Hidden health: Ornstein-Uhlenbeck around the account's mean, one step per week.
HEALTH_THETA = 0.04
HEALTH_SIGMA = 0.15
HEALTH_INIT_SD = 0.5
# Weekly hazard of the champion leaving: CH_HAZARD * exp(-CH_SLOPE * health).
CH_HAZARD = 0.0025
CH_SLOPE = 1.0
CH_SHOCK = 0.25
CH_RETURN = 1.0 / 26.0


class WeeklyRun:
    """The weekly loop of one chunk, or of a branch resumed from a parent run.

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
        self.bad_known_day = no_bad_invoices(n)
        self.bad_count = np.zeros(n, np.int64)
        self.act_from = np.maximum(acc.created_us, grid.start_us)
        self.act_to = np.full(n, grid.end_us, np.int64)
        self.pool_a = self.pool(np.arange(n))
        self.health_at_churn = np.full(n, np.nan)
        self.own_from_week = np.zeros(n, np.int64)
        # Accounts whose weeks this run simulates; a branch holds its accounts inactive
        # (health and history untouched) until they resume.
        self.active = np.ones(n, np.bool_)
        self.contracts, self.tickets, self.invoices = Rows(), Rows(), Rows()

    def pool(self, idx: I64) -> I64:
        """Activated users: the share ``utilisation`` of the seats, at least one."""
        return np.maximum(1, np.round(self.acc.utilisation[idx] * self.seats[idx])).astype(np.int64)

    def lookback_day(self, idx: I64) -> I64:
        """First day the event-like drivers of the current term look at (the term's start,
        or DRIVER_LOOKBACK_MONTHS before its end if that is earlier)."""
        back = add_months(self.term_end[idx], -DRIVER_LOOKBACK_MONTHS)
        return np.minimum(self.term_start[idx], back)

    def issue_invoices(self, idx: I64) -> None:
        """Bill the term that starts now; remember when bad invoices will become known."""
        bills = bill_terms(
            self.rng,
            idx,
            self.term_start,
            self.seats,
            self.arr,
            self.health,
            self.months,
            self.mech.late_invoices,
        )
        remember_bad(bills, self.bad_known_day, self.bad_count)
        self.invoices.add(**{name: getattr(bills, name) for name in INVOICE_COLS})

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
        acc, grid = self.acc, self.grid
        ws = int(grid.week_start_us[w])
        starting = np.flatnonzero(~self.started & (acc.first_week == w))
        if starting.size:
            self.started[starting] = True
            self.issue_invoices(starting)
        alive = self.started & ~self.churned
        self.move_health(alive, ws)
        idx = np.flatnonzero(alive)
        h = self.health[idx]
        self.use(w, idx, h)
        raise_tickets(
            idx, h, acc, self.cfg, self.rng, ws, self.tz, grid, self.tickets, self.pain_hist, w
        )
        term_end = self.term_end
        ending = np.flatnonzero(
            alive & (term_end < grid.end_day) & ((term_end - grid.start_day) // 7 == w)
        )
        if ending.size:
            self.decide(w, ending)

    def move_health(self, alive: npt.NDArray[np.bool_], week_start_us: int) -> None:
        """One step of the hidden health; the live accounts' champions may leave (a shock
        to health) or, where gone, a new one may emerge."""
        acc, rng, mech = self.acc, self.rng, self.mech
        n = len(acc)
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
            self.last_dep[leave] = (
                week_start_us + rng.integers(0, 5 * 24 * 3600, n_leave) * 1_000_000
            )
            health = np.where(leave, health - CH_SHOCK, health)
            present[back] = True
        self.health = health

    def use(self, w: int, idx: I64, h: F64) -> None:
        """Draw week ``w``'s usage of the live accounts ``idx`` (health ``h``); record it."""
        n_van = len(self.cfg.vanity_events)
        pres = self.present[idx].astype(np.int64)
        n_reg = np.maximum(self.pool_a[idx] - pres, 0)
        usage = draw_usage(
            self.rng,
            h,
            pres,
            n_reg,
            self.acc.watermelon[idx],
            self.mech.vanity_events,
            n_van,
            len(self.cfg.key_events),
        )
        reg_w, ch_w, wr = usage.regular, usage.champion, usage.active
        self.reg_counts[idx, w] = reg_w
        self.champ_counts[idx, w] = ch_w
        self.wau_reg[idx, w] = wr
        self.pool_lo[idx, w] = self.base[idx] + pres
        self.pool_n[idx, w] = n_reg
        self.champ_user[idx, w] = np.where(pres == 1, self.base[idx], -1)
        self.health_hist[self.active, w] = self.health[self.active]
        self.alive_hist[idx, w] = True
        self.key_hist[idx, w] = reg_w[:, n_van:].sum(axis=1) + ch_w[:, n_van:].sum(axis=1)
        self.wau_hist[idx, w] = wr + pres

    def window(self, w: int, ending: I64) -> Window:
        """The behaviour the churn formula reads for the terms ``ending`` in week ``w``."""
        seats = self.seats
        key_pw = np.empty(ending.size)
        breadth = np.empty(ending.size)
        pain = np.empty(ending.size)
        mean_health = np.empty(ending.size)
        lo = np.maximum(w - WINDOW_WEEKS, self.acc.first_week[ending])
        for sel, a, b in window_groups(lo, w):
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
        return Window(
            key_per_seat_week=key_pw,
            breadth=breadth,
            support_pain=pain,
            champion_left=self.last_dep[ending] >= since * DAY_US,
            bad_invoices=bad_invoices_between(
                self.bad_known_day[ending], since, self.term_end[ending]
            ),
            watermelon=self.acc.watermelon[ending],
            mean_health=mean_health,
        )

    def decide(self, w: int, ending: I64) -> None:
        """The churn formula for the terms ending in week ``w``; survivors renew."""
        term_end = self.term_end
        win = self.window(w, ending)
        years = (term_end[ending] - self.grid.start_day) / DAYS_PER_YEAR
        draw = churn_logit(win, self.cfg.churn, self.mech, self.rng, years, self.months)
        u_churn = self.rng.random(ending.size)
        churn = u_churn < draw.p_noisy
        survive = self.survival(win)
        outcome = np.where(churn, CHURNED, survive)
        self.add_terms(
            ending,
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

    def survival(self, win: Window) -> I64:
        """What each ending term becomes if it survives: 0 renewed, 1 expanded, 2 contracted.

        Drawn for every term, churned or not, so that a play that saves a term (see
        :mod:`simulator.plays`) knows its fate.
        """
        n, months = win.mean_health.size, self.months
        survive = np.zeros(n, np.int64)
        if self.mech.expansions:
            u = self.rng.random(n)
            # Annual probabilities, converted to the term like the churn probability.
            p_exp = per_term(sigmoid(-1.5 + 1.2 * win.mean_health), months)
            p_con = per_term(
                sigmoid(
                    -2.6
                    - 0.8 * win.mean_health
                    + 0.5 * np.clip((0.4 - win.breadth) / 0.2, -2.0, 2.0)
                ),
                months,
            )
            survive = np.where(u < p_exp, 1, np.where(u < p_exp + p_con, 2, 0))
        return survive

    def add_terms(self, rows: I64, **columns: npt.NDArray[Any]) -> None:
        """Add the current terms of accounts ``rows`` to the contracts, with ``columns``."""
        self.contracts.add(
            acc=rows,
            term=self.term[rows],
            start_day=self.term_start[rows],
            end_day=self.term_end[rows],
            seats=self.seats[rows],
            arr=self.arr[rows],
            **columns,
        )

    def close_open_terms(self) -> None:
        """Add the terms still open at the end of the window, without an outcome."""
        open_ = np.flatnonzero(self.started & ~self.churned)
        k = open_.size
        nan = np.full(k, np.nan)
        self.add_terms(
            open_,
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

    def result(self) -> ChunkResult:
        """Close the open terms and package the chunk's arrays."""
        self.close_open_terms()
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
    run = WeeklyRun(acc, cfg, grid, rng, health, len(cfg.vanity_events) + len(cfg.key_events))
    for w in range(grid.n_weeks):
        run.week(w)
    return run.result()
