"""Turn the weekly counts and the hidden health of a chunk into rows.

Events, survey answers and CSM sentiment are emitted here, after the weekly loop, because
nothing they contain feeds back into the simulation (the churn formula reads the weekly
counts, not the rows). Everything is vectorised over rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from simulator.accounts import REGION_TZ, Accounts, Grid, working_time_us
from simulator.chunk_result import ChunkResult
from simulator.config import SimConfig
from simulator.logistic import sigmoid

Arrays = dict[str, npt.NDArray[Any]]

# Seconds spent per event: lognormal(log(median), sigma); NaN median means no value.
VANITY_SECONDS = ((np.nan, 0.0), (45.0, 0.8), (20.0, 0.9))
KEY_SECONDS = (180.0, 0.7)
SESSION_GAP_S = 90.0
# Survey answers per account-week.
NPS_INVITES = 0.1
CSAT_RATE = 0.03
CES_RATE = 0.02
NPS_RESPONSE_FLAT = 0.3
# CSM sentiment: recorded every 4-8 weeks, from the health SENTIMENT_LAG weeks ago,
# shifted up by SENTIMENT_OPTIMISM.
SENTIMENT_LAG = 6
SENTIMENT_OPTIMISM = 0.4


def _in_activity(
    acc_idx: npt.NDArray[np.int64], ts: npt.NDArray[np.int64], res: ChunkResult, grid: Grid
) -> npt.NDArray[np.bool_]:
    """Rows dated while the account was a customer and before the world's end."""
    return (ts >= res.act_from_us[acc_idx]) & (ts < res.act_to_us[acc_idx]) & (ts < grid.end_us)


def _expand(counts: npt.NDArray[np.int32]) -> tuple[npt.NDArray[np.int64], ...]:
    """Row indices (account, week, event) repeated by their count."""
    _, n_weeks, n_ev = counts.shape
    flat = counts.reshape(-1)
    nz = np.flatnonzero(flat)
    rows = np.repeat(nz, flat[nz])
    return rows // (n_weeks * n_ev), (rows // n_ev) % n_weeks, rows % n_ev


def _sessions(
    rng: np.random.Generator, mean: float, *rows: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], ...]:
    """Each row (the last array is its time) repeated ``1 + Poisson(mean - 1)`` times, the
    copies SESSION_GAP_S seconds apart on average (whole seconds)."""
    *cols, ts = rows
    reps = 1 + np.asarray(rng.poisson(mean - 1.0, ts.shape[0]), dtype=np.int64)
    first = np.cumsum(reps) - reps
    gaps = np.floor(rng.exponential(SESSION_GAP_S, int(reps.sum()))).astype(np.int64)
    gaps[first] = 0
    # Seconds since the session's first event: a running sum restarted at each session.
    run = np.cumsum(gaps)
    since = run - np.repeat(run[first], reps)
    return (*(np.repeat(c, reps) for c in cols), np.repeat(ts, reps) + since * 1_000_000)


def emit_events(
    res: ChunkResult, acc: Accounts, cfg: SimConfig, grid: Grid, rng: np.random.Generator
) -> Arrays:
    """Event rows of a chunk: ``acc``, ``user`` (local index), ``ts`` (us), ``event``, ``value``.

    A regular event goes to one of the week's active users: the active users are a random
    contiguous (modulo pool size) run of the pool, so breadth is observable as distinct
    users. Champion events go to the champion.
    """
    n_acc, n_weeks, n_ev = res.reg_counts.shape
    n_van = len(cfg.vanity_events)
    i_r, w_r, e_r = _expand(res.reg_counts)
    rotation = rng.integers(0, 2**31 - 1, (n_acc, n_weeks))
    size = res.pool_n[i_r, w_r].astype(np.int64)
    wau = res.wau_reg[i_r, w_r].astype(np.int64)
    offset = rotation[i_r, w_r] + np.floor(rng.random(i_r.shape[0]) * wau).astype(np.int64)
    user_r = res.pool_lo[i_r, w_r] + offset % np.maximum(size, 1)
    i_c, w_c, e_c = _expand(res.champ_counts)
    user_c = res.champ_user[i_c, w_c].astype(np.int64)

    i = np.concatenate([i_r, i_c])
    w = np.concatenate([w_r, w_c])
    e = np.concatenate([e_r, e_c])
    user = np.concatenate([user_r, user_c])
    ts = grid.week_start_us[w] + working_time_us(rng, REGION_TZ[acc.region[i]], grid.day_probs)
    if cfg.session_events > 1.0:
        i, w, e, user, ts = _sessions(rng, cfg.session_events, i, w, e, user, ts)

    medians = np.array([m for m, _ in VANITY_SECONDS] + [KEY_SECONDS[0]] * (n_ev - n_van))
    sigmas = np.array([s for _, s in VANITY_SECONDS] + [KEY_SECONDS[1]] * (n_ev - n_van))
    value = np.round(medians[e] * np.exp(rng.normal(0.0, 1.0, e.shape[0]) * sigmas[e]), 1)

    keep = _in_activity(i, ts, res, grid)
    order = np.lexsort((e[keep], ts[keep], i[keep]))
    return {
        "acc": i[keep][order].astype(np.int32),
        "user": user[keep][order].astype(np.int32),
        "ts": ts[keep][order],
        "event": e[keep][order].astype(np.int8),
        "value": value[keep][order],
    }


def emit_surveys(
    res: ChunkResult, acc: Accounts, cfg: SimConfig, grid: Grid, rng: np.random.Generator
) -> Arrays:
    """NPS, CSAT and CES answers: ``acc``, ``user``, ``ts``, ``kind``, ``score``.

    ``kind`` is 0 for NPS, 1 for CSAT and 2 for CES.

    With ``nps_bias`` the chance of answering an NPS invitation rises with health.
    """
    ai, aw = np.nonzero(res.alive)
    h = res.health[ai, aw].astype(np.float64)
    has_champ = (res.champ_user[ai, aw] >= 0).astype(np.int64)
    team = res.pool_n[ai, aw].astype(np.int64) + has_champ
    invites = NPS_INVITES * (1.0 + np.log10(1.0 + team))
    if cfg.mechanisms.nps_bias:
        respond = sigmoid(-0.8 + 1.5 * h)
    else:
        respond = np.full(h.shape, NPS_RESPONSE_FLAT)
    counts = np.column_stack(
        [
            rng.poisson(invites * respond),
            rng.poisson(np.full(h.shape, CSAT_RATE)),
            rng.poisson(np.full(h.shape, CES_RATE)),
        ]
    )
    flat = counts.reshape(-1)
    nz = np.flatnonzero(flat)
    rows = np.repeat(nz, flat[nz])
    cell, kind = rows // 3, rows % 3
    i, w, hc = ai[cell], aw[cell], h[cell]
    m = rows.shape[0]
    base = res.pool_lo[i, w].astype(np.int64) - has_champ[cell]
    user = base + np.floor(rng.random(m) * np.maximum(team[cell], 1)).astype(np.int64)
    noise = rng.normal(0.0, 1.0, m)
    score = np.select(
        [kind == 0, kind == 1],
        [
            np.clip(np.round(7.0 + 2.2 * hc + 1.8 * noise), 0, 10),
            np.clip(np.round(3.8 + 0.8 * hc + 0.9 * noise), 1, 5),
        ],
        np.clip(np.round(5.0 + 1.0 * hc + 1.2 * noise), 1, 7),
    )
    ts = grid.week_start_us[w] + working_time_us(rng, REGION_TZ[acc.region[i]], grid.day_probs)
    keep = _in_activity(i, ts, res, grid)
    order = np.lexsort((kind[keep], ts[keep], i[keep]))
    return {
        "acc": i[keep][order],
        "user": user[keep][order],
        "ts": ts[keep][order],
        "kind": kind[keep][order],
        "score": score[keep][order],
    }


def emit_sentiment(
    res: ChunkResult, acc: Accounts, cfg: SimConfig, grid: Grid, rng: np.random.Generator
) -> Arrays:
    """CSM sentiment every 4-8 weeks: ``acc``, ``ts``, ``sentiment`` (0 green, 1 yellow, 2 red).

    With ``sentiment_lag`` the CSM judges from the health of 6 weeks ago, optimistically.
    """
    n_acc, n_weeks = res.alive.shape
    n_rec = n_weeks // 4 + 2
    gaps = rng.integers(4, 9, (n_acc, n_rec))
    first = acc.first_week + rng.integers(0, 8, n_acc)
    weeks = first[:, None] + np.cumsum(gaps, axis=1) - gaps[:, :1]
    noise = rng.normal(0.0, 0.35, (n_acc, n_rec))
    i = np.repeat(np.arange(n_acc), n_rec)
    wk = weeks.reshape(-1)
    valid = wk < n_weeks
    i, wk, noise_v = i[valid], wk[valid], noise.reshape(-1)[valid]
    valid = res.alive[i, wk]
    i, wk, noise_v = i[valid], wk[valid], noise_v[valid]
    if cfg.mechanisms.sentiment_lag:
        src = np.maximum(wk - SENTIMENT_LAG, acc.first_week[i])
        judged = res.health[i, src] + SENTIMENT_OPTIMISM + noise_v
    else:
        judged = res.health[i, wk] + noise_v
    label = np.where(judged > 0.0, 0, np.where(judged > -0.6, 1, 2))
    ts = grid.week_start_us[wk] + working_time_us(rng, REGION_TZ[acc.region[i]], grid.day_probs)
    keep = _in_activity(i, ts, res, grid)
    order = np.lexsort((ts[keep], i[keep]))
    return {"acc": i[keep][order], "ts": ts[keep][order], "sentiment": label[keep][order]}
