"""Resuming accounts in a branch: the weeks after a churn that a CS play turned into a renewal.

A branch is a :class:`~simulator.dynamics.WeeklyRun` over some accounts of a parent run,
started from the state the parent froze at each account's churn and drawing from a
generator of its own, so that nothing of the parent changes (see :mod:`simulator.chunk`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from simulator.accounts import DAY_US, Accounts, Grid
from simulator.chunk_result import STATE_COLS, WEEKLY_COLS, ChunkResult
from simulator.config import SimConfig
from simulator.dynamics import WeeklyRun

I64 = npt.NDArray[np.int64]


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
    run, w0 = _branch_run(parent, acc, rows, cfg, grid, rng)
    _adopt_renewal_week_tickets(run, parent, len(acc), rows)
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


def _branch_run(
    parent: ChunkResult,
    acc: Accounts,
    rows: I64,
    cfg: SimConfig,
    grid: Grid,
    rng: np.random.Generator,
) -> tuple[WeeklyRun, I64]:
    """A run over accounts ``rows`` of ``parent``, each frozen at its churn until it
    renews, and each account's renewal week.

    The parent's state, histories and weekly arrays are copied; the weeks before each
    account's renewal week are the parent's rows, so they are cleared here.
    """
    sub = acc.pick(rows)
    st = parent.state
    run = WeeklyRun(
        sub, cfg, grid, rng, st["health_at_churn"][rows].copy(), parent.reg_counts.shape[2]
    )
    for name in STATE_COLS:
        setattr(run, name, np.array(st[name][rows], copy=True))
    for name, arr in parent.history.items():
        setattr(run, name, arr[rows].copy())
    for name in WEEKLY_COLS:
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
    return run, w0


def _adopt_renewal_week_tickets(run: WeeklyRun, parent: ChunkResult, n: int, rows: I64) -> None:
    """Give ``run`` the parent's tickets of its accounts raised from their renewal day on.

    Tickets raised in the renewal week after the renewal day were dropped by the parent
    (the account had churned); here they are the account's. ``n`` is the number of the
    parent's accounts.
    """
    raw = parent.tickets_raw
    local = np.full(n, -1, np.int64)
    local[rows] = np.arange(rows.size)
    t_acc = local[raw["acc"].astype(np.int64)]
    keep = t_acc >= 0
    keep[keep] &= raw["created_us"][keep] >= run.act_from[t_acc[keep]]
    if keep.any():
        run.tickets.add(**{k: (t_acc[keep] if k == "acc" else v[keep]) for k, v in raw.items()})
