"""One chunk of accounts, with the CS plays and the renewals they flip.

The weekly loop (:mod:`dynamics`) simulates the world without plays; the rows are then
emitted (:mod:`emit`) and the plays decided on them (:mod:`plays`), since a decision reads
only rows dated before its day. A play changes a term's churn probability; the outcome
is redrawn with the same uniform, so it changes only when the play moved the probability
across that draw. Then:

- a term the play lost (the account renewed without it, churns with it) ends the
  account's history there: its later terms and rows are dropped;
- a term the play saved (churned without it, renews with it) resumes the account in a
  branch (:func:`dynamics.resume_chunk`) with a generator of its own, and the branch's
  renewals are decided the same way, level after level.

Every other account and term keeps exactly the values of the world without plays.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import numpy.typing as npt

from simulator.accounts import DAY_US, REGION_TZ, Accounts, Grid
from simulator.config import PLAY_KEYS, SimConfig
from simulator.dynamics import CHURNED, ChunkResult, resume_chunk, run_chunk
from simulator.emit import emit_events, emit_sentiment, emit_surveys
from simulator.plays import decide

Arrays = dict[str, npt.NDArray[Any]]
I64 = npt.NDArray[np.int64]
_FOREVER = np.iinfo(np.int64).max
# Spawn keys of the generators (the first element of the key path).
KEY_ACCOUNTS, KEY_LOOP, KEY_EVENTS, KEY_SURVEYS, KEY_SENTIMENT = 0, 1, 2, 3, 4
KEY_PLAYS, KEY_BRANCH, KEY_BRANCH_ROWS = 5, 6, 7


def child(seed: int, *key: int) -> np.random.Generator:
    """An independent generator per purpose, fixed by the seed and a key path."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _emit(
    res: ChunkResult, acc: Accounts, cfg: SimConfig, grid: Grid, seed: int, c: int, level: int
) -> tuple[Arrays, Arrays, Arrays]:
    """Events, surveys and sentiment rows of a run (the chunk's own generators at level 0)."""
    if level == 0:
        gens = [child(seed, k, c) for k in (KEY_EVENTS, KEY_SURVEYS, KEY_SENTIMENT)]
    else:
        gens = [child(seed, KEY_BRANCH_ROWS, c, level, k) for k in range(3)]
    return (
        emit_events(res, acc, cfg, grid, gens[0]),
        emit_surveys(res, acc, cfg, grid, gens[1]),
        emit_sentiment(res, acc, cfg, grid, gens[2]),
    )


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
        events, surveys, sentiment = _emit(res, level_acc, cfg, grid, seed, c, level)
        for name, rows in (
            ("events", events),
            ("surveys", surveys),
            ("sentiment", sentiment),
            ("tickets", res.tickets),
            ("invoices", res.invoices),
            ("latent", _latent(res)),
        ):
            parts[name].append(_mapped(rows, ids))
        con = _mapped(res.contracts, ids)
        local = np.asarray(res.contracts["acc"], np.int64)
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
        churn = terms["u_churn"] < dec.p_churn
        flip = churn != (terms["outcome"] == CHURNED)
        # Only an account's first flipped term counts: after it, its history differs.
        first_flip = np.full(n, _FOREVER, np.int64)
        np.minimum.at(first_flip, a[flip], terms["term"][flip])
        keep = con["term"] <= first_flip[con["acc"]]
        at_flip = flip & (terms["term"] == first_flip[a])
        lost, saved = at_flip & churn, at_flip & ~churn
        cut[a[lost]] = terms["end_day"][lost] * DAY_US

        cols = _open_play_columns(con["acc"].size)
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
        con["outcome"] = con["outcome"].copy()
        con["outcome"][decided] = np.where(churn, CHURNED, terms["survive"])
        parts["contracts"].append({k: v[keep] for k, v in {**con, **cols}.items()})
        kept_term = keep[decided][r["term"]]
        parts["activities"].append({k: v[kept_term] for k, v in r.items() if k != "term"})

        if not saved.any():
            break
        order = np.argsort(local[decided][saved], kind="stable")
        rows = local[decided][saved][order]
        res = resume_chunk(
            res,
            level_acc,
            rows,
            terms["survive"][saved][order],
            cfg,
            grid,
            child(seed, KEY_BRANCH, c, level),
        )
        level_acc, ids, level = level_acc.pick(rows), ids[rows], level + 1

    out = {name: _cat(p) for name, p in parts.items()}
    time_col = {
        "events": "ts",
        "surveys": "ts",
        "sentiment": "ts",
        "tickets": "created_us",
        "invoices": "issued_us",
        "activities": "ts",
    }
    if (cut < _FOREVER).any():
        for name, col in time_col.items():
            t = out[name]
            ok = np.asarray(t[col], np.int64) < cut[np.asarray(t["acc"], np.int64)]
            out[name] = {k: v[ok] for k, v in t.items()}
        lat = out["latent"]
        ok = grid.week_start_us[lat["week"]] <= cut[lat["acc"]]
        out["latent"] = {k: v[ok] for k, v in lat.items()}
    if level > 0:  # branches append rows: restore the order of one run
        for name, keys in (
            ("events", ("event", "ts", "acc")),
            ("surveys", ("kind", "ts", "acc")),
            ("sentiment", ("ts", "acc")),
            ("latent", ("week", "acc")),
        ):
            t = out[name]
            order = np.lexsort(tuple(np.asarray(t[k]) for k in keys))
            out[name] = {k: v[order] for k, v in t.items()}
    act = out["activities"]
    order = np.lexsort((act["ts"], act["acc"]))
    out["activities"] = {k: v[order] for k, v in act.items()}
    return out
