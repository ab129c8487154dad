"""Support tickets: how many an account raises each week, their priority, speed and CSAT.

Called by the weekly loop (:mod:`simulator.dynamics`) once a week for the live accounts;
with support pain on, unhealthy accounts raise more and worse tickets, and the pain the
tickets cause feeds the churn formula's ``support_pain`` driver.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from simulator.accounts import DAY_US, Accounts, Grid, working_time_us
from simulator.chunk_result import Rows
from simulator.config import SimConfig
from simulator.logistic import sigmoid

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

# Tickets per account-week by segment, times exp(-TK_SLOPE * health) with support pain.
TICKET_RATE = np.array([0.06, 0.14, 0.3])
TK_SLOPE = 0.6
PRIORITIES = ("low", "normal", "high", "urgent")
PRIORITY_BASE = np.log(np.array([0.3, 0.45, 0.18, 0.07]))
PRIORITY_SLOPE = np.array([0.5, 0.0, -0.4, -0.9])


def raise_tickets(
    idx: I64,
    h: F64,
    acc: Accounts,
    cfg: SimConfig,
    rng: np.random.Generator,
    week_start_us: int,
    tz: F64,
    grid: Grid,
    out: Rows,
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
    p_open = np.where(urgent, sigmoid(-1.6 - 1.5 * th), 0.02)
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
