"""One chunk of accounts, with the CS plays and the renewals they flip.

The weekly loop (:mod:`dynamics`) simulates the world without plays; the rows are then
emitted (:mod:`emit`) and the plays decided on them (:mod:`plays`), since a decision reads
only rows dated before its day. A play changes a term's churn probability; the outcome
is redrawn with the same uniform, so it changes only when the play moved the probability
across that draw. Then:

- a term the play lost (the account renewed without it, churns with it) ends the
  account's history there: its later terms and rows are dropped;
- a term the play saved (churned without it, renews with it) resumes the account in a
  branch (:func:`branch.resume_chunk`) with a generator of its own, and the branch's
  renewals are decided the same way, level after level.

Every other account and term keeps exactly the values of the world without plays.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from simulator.accounts import DAY_US, REGION_TZ, Accounts, Grid
from simulator.branch import resume_chunk
from simulator.chunk_result import CHURNED, ChunkResult
from simulator.config import PLAY_KEYS, SimConfig
from simulator.dynamics import run_chunk
from simulator.emit import emit_events, emit_sentiment, emit_surveys
from simulator.plays import Decisions, decide

Arrays = dict[str, npt.NDArray[Any]]
I64 = npt.NDArray[np.int64]
_FOREVER = np.iinfo(np.int64).max
# Spawn keys of the generators (the first element of the key path).
KEY_ACCOUNTS, KEY_LOOP, KEY_EVENTS, KEY_SURVEYS, KEY_SENTIMENT = 0, 1, 2, 3, 4
KEY_PLAYS, KEY_BRANCH, KEY_BRANCH_ROWS = 5, 6, 7


def child(seed: int, *key: int) -> np.random.Generator:
    """An independent generator per purpose, fixed by the seed and a key path."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _run_rows(
    res: ChunkResult, acc: Accounts, cfg: SimConfig, grid: Grid, seed: int, c: int, level: int
) -> dict[str, Arrays]:
    """The rows of a run but its contracts and activities, with the run's account indices.

    Events, surveys and sentiment draw from the chunk's own generators at level 0, from
    the branch's at a deeper level.
    """
    if level == 0:
        gens = [child(seed, k, c) for k in (KEY_EVENTS, KEY_SURVEYS, KEY_SENTIMENT)]
    else:
        gens = [child(seed, KEY_BRANCH_ROWS, c, level, k) for k in range(3)]
    return {
        "events": emit_events(res, acc, cfg, grid, gens[0]),
        "surveys": emit_surveys(res, acc, cfg, grid, gens[1]),
        "sentiment": emit_sentiment(res, acc, cfg, grid, gens[2]),
        "tickets": res.tickets,
        "invoices": res.invoices,
        "latent": _latent(res),
    }


def _mapped(rows: Arrays, ids: I64) -> Arrays:
    """Rows of a run with account indices of the chunk."""
    return {**rows, "acc": ids[np.asarray(rows["acc"], np.int64)]}


def _cat(parts: list[Arrays]) -> Arrays:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _latent(res: ChunkResult) -> Arrays:
    ai, aw = np.nonzero(res.alive)
    own = aw >= res.own_from_week[ai]
    ai, aw = ai[own], aw[own]
    return {"acc": ai, "week": aw, "health": res.health[ai, aw]}


def _open_play_columns(k: int) -> Arrays:
    """Play columns of terms without a decision (still open at the end of the window)."""
    return {
        "play": np.full(k, -1, np.int64),
        "play_day": np.full(k, -1, np.int64),
        "decision_day": np.full(k, -1, np.int64),
        "sentiment_at": np.full(k, -2, np.int64),
        "ticket_open": np.zeros(k, np.int8) - 1,
        "propensity": np.full(k, np.nan),
        "p_churn": np.full(k, np.nan),
        "effects": np.full((k, len(PLAY_KEYS)), np.nan),
    }


def simulate_chunk(
    acc: Accounts, cfg: SimConfig, grid: Grid, seed: int, c: int
) -> dict[str, Arrays]:
    """Simulate chunk ``c``: contracts (with the play columns of the truth), events,
    tickets, surveys, sentiment, invoices, activities and latent health, indexed by the
    chunk's accounts."""
    n = len(acc)
    res = run_chunk(acc, cfg, grid, child(seed, KEY_LOOP, c))
    first_us = np.maximum(acc.created_us, grid.start_us)
    customer_from_day = -(-first_us // DAY_US)  # the first whole day a row may fall on
    tz = REGION_TZ[acc.region]
    cut = np.full(n, _FOREVER, np.int64)  # rows at or after this time are dropped
    parts: dict[str, list[Arrays]] = defaultdict(list)
    ids = np.arange(n, dtype=np.int64)
    level_acc, level = acc, 0
    while True:
        for name, table in _run_rows(res, level_acc, cfg, grid, seed, c, level).items():
            parts[name].append(_mapped(table, ids))
        con = _mapped(res.contracts, ids)
        decided = np.flatnonzero(con["outcome"] >= 0)
        terms = {k: v[decided] for k, v in con.items()}
        a = terms["acc"]
        dec = decide(
            terms,
            _cat(parts["sentiment"]),
            _cat(parts["tickets"]),
            customer_from_day[a],
            tz[a],
            cfg.plays,
            cfg.term_months,
            child(seed, KEY_PLAYS, c, level),
        )
        flips = _flips(con, terms, dec.p_churn, n)
        cut[a[flips.lost]] = terms["end_day"][flips.lost] * DAY_US
        _add_terms(parts, con, decided, dec, flips)
        if not flips.saved.any():
            break
        saved_local = np.asarray(res.contracts["acc"], np.int64)[decided][flips.saved]
        order = np.argsort(saved_local, kind="stable")
        rows = saved_local[order]
        res = resume_chunk(
            res,
            level_acc,
            rows,
            terms["survive"][flips.saved][order],
            cfg,
            grid,
            child(seed, KEY_BRANCH, c, level),
        )
        level_acc, ids, level = level_acc.pick(rows), ids[rows], level + 1

    out = _drop_after_cut({name: _cat(p) for name, p in parts.items()}, cut, grid)
    return _in_run_order(out, branched=level > 0)


@dataclass(frozen=True)
class _Flips:
    """What the plays of one level changed.

    ``churn``: each decided term churns with its play. ``keep``: the level's contract rows
    up to each account's first flipped term (after it, the account's history differs).
    ``lost`` and ``saved``: the decided terms at that first flip that the play made churn,
    or renew.
    """

    churn: npt.NDArray[np.bool_]
    keep: npt.NDArray[np.bool_]
    lost: npt.NDArray[np.bool_]
    saved: npt.NDArray[np.bool_]


def _flips(con: Arrays, terms: Arrays, p_churn: npt.NDArray[np.float64], n: int) -> _Flips:
    """Redraw the decided ``terms`` (of the contracts ``con``) with ``p_churn`` and the same
    uniforms; ``n`` is the chunk's number of accounts."""
    a = terms["acc"]
    churn = terms["u_churn"] < p_churn
    flip = churn != (terms["outcome"] == CHURNED)
    # Only an account's first flipped term counts: after it, its history differs.
    first_flip = np.full(n, _FOREVER, np.int64)
    np.minimum.at(first_flip, a[flip], terms["term"][flip])
    keep = con["term"] <= first_flip[con["acc"]]
    at_flip = flip & (terms["term"] == first_flip[a])
    return _Flips(churn=churn, keep=keep, lost=at_flip & churn, saved=at_flip & ~churn)


def _play_columns(k: int, decided: I64, dec: Decisions) -> Arrays:
    """The play columns of a level's ``k`` contract rows, of which ``decided`` got ``dec``."""
    cols = _open_play_columns(k)
    treated = dec.play >= 0
    play_day = np.full(decided.size, -1, np.int64)
    r = dec.rows
    if r["term"].size:
        first_row = np.full(decided.size, _FOREVER, np.int64)
        np.minimum.at(first_row, r["term"], r["ts"] // DAY_US)
        play_day = np.where(treated, first_row, -1)
    for name, values in (
        ("play", dec.play),
        ("play_day", play_day),
        ("decision_day", dec.day),
        ("sentiment_at", dec.sentiment),
        ("ticket_open", dec.ticket.astype(np.int8)),
        ("propensity", dec.propensity),
        ("p_churn", dec.p_churn),
        ("effects", dec.effects),
    ):
        cols[name][decided] = values
    return cols


def _add_terms(
    parts: dict[str, list[Arrays]], con: Arrays, decided: I64, dec: Decisions, flips: _Flips
) -> None:
    """Add a level's contracts, with their play columns and the outcomes the plays drew,
    and its activities, each up to the account's first flipped term."""
    cols = _play_columns(con["acc"].size, decided, dec)
    outcome = con["outcome"].copy()
    outcome[decided] = np.where(flips.churn, CHURNED, con["survive"][decided])
    contracts = {**con, "outcome": outcome, **cols}
    parts["contracts"].append({k: v[flips.keep] for k, v in contracts.items()})
    r = dec.rows
    kept_term = flips.keep[decided][r["term"]]
    parts["activities"].append({k: v[kept_term] for k, v in r.items() if k != "term"})


# The time column of each table whose rows end at an account's cut.
_TIME_COLS = {
    "events": "ts",
    "surveys": "ts",
    "sentiment": "ts",
    "tickets": "created_us",
    "invoices": "issued_us",
    "activities": "ts",
}
# The sort keys (last one first) of the tables branches append to, as one run sorts them.
_RUN_ORDER = {
    "events": ("event", "ts", "acc"),
    "surveys": ("kind", "ts", "acc"),
    "sentiment": ("ts", "acc"),
    "latent": ("week", "acc"),
}


def _drop_after_cut(out: dict[str, Arrays], cut: I64, grid: Grid) -> dict[str, Arrays]:
    """Drop every row dated at or after its account's ``cut`` (the end of a lost term)."""
    if not (cut < _FOREVER).any():
        return out
    out = dict(out)
    for name, col in _TIME_COLS.items():
        t = out[name]
        ok = np.asarray(t[col], np.int64) < cut[np.asarray(t["acc"], np.int64)]
        out[name] = {k: v[ok] for k, v in t.items()}
    lat = out["latent"]
    ok = grid.week_start_us[lat["week"]] <= cut[lat["acc"]]
    out["latent"] = {k: v[ok] for k, v in lat.items()}
    return out


def _in_run_order(out: dict[str, Arrays], branched: bool) -> dict[str, Arrays]:
    """Sort the activities by account and time and, when branches appended rows, the
    other tables they appended to as one run would have."""
    out = dict(out)
    if branched:
        for name, keys in _RUN_ORDER.items():
            t = out[name]
            order = np.lexsort(tuple(np.asarray(t[k]) for k in keys))
            out[name] = {k: v[order] for k, v in t.items()}
    act = out["activities"]
    order = np.lexsort((act["ts"], act["acc"]))
    out["activities"] = {k: v[order] for k, v in act.items()}
    return out
