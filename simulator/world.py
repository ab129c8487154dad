"""``simulate``: run every chunk of accounts and assemble the contract tables and truth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.progress import Progress
from simulator.accounts import Accounts, Grid, draw_accounts, make_grid
from simulator.chunk import KEY_ACCOUNTS, child, simulate_chunk
from simulator.chunk_result import OUTCOMES
from simulator.config import PLAY_KEYS, SEGMENTS, SimConfig
from simulator.outcome import DRIVERS, dominant_reason
from simulator.plays import CHANNELS, NOTES, PLAY_TEXTS
from simulator.tickets import PRIORITIES

Arrays = dict[str, npt.NDArray[Any]]

TABLES: tuple[str, ...] = (
    "accounts",
    "contracts",
    "events",
    "tickets",
    "surveys",
    "sentiment",
    "invoices",
    "activities",
)
SURVEY_KINDS = ("nps", "csat", "ces")
SENTIMENTS = ("green", "yellow", "red")
_NONE = np.array(None, dtype=object)  # missing value in object arrays of strings


@dataclass(frozen=True)
class World:
    """A simulated world.

    Attributes
    ----------
    tables
        The eight contract tables keyed by name (see ``TABLES``), ``activities`` included.
        Timestamps are ``datetime64[us, UTC]`` (whole seconds); contract dates are
        ``datetime64[us]`` at midnight without a zone. In ``events``, ``account_id``,
        ``user_id`` and ``event`` are categoricals to keep large worlds in memory.
    truth
        One row per contract term: the probability the churn formula gave, the outcome,
        each driver's contribution and the dominant reason, the CS play run (if any) and
        every play's true effect on the term.
    latent
        The hidden weekly health of every account while it was a customer
        (``account_id``, ``week_start``, ``health``); not written by ``write_world``.
    config
        The configuration that produced the world.
    """

    tables: dict[str, pd.DataFrame]
    truth: pd.DataFrame
    latent: pd.DataFrame
    config: SimConfig


def _ts(us: npt.NDArray[Any]) -> pd.DatetimeIndex:
    """Microseconds since epoch (negative = missing) to tz-aware UTC, floored to seconds."""
    us = np.asarray(us, dtype=np.int64)
    whole = np.where(us < 0, np.iinfo(np.int64).min, (us // 1_000_000) * 1_000_000)
    return pd.DatetimeIndex(whole.view("M8[us]")).tz_localize("UTC")


def _dates(days: npt.NDArray[Any]) -> npt.NDArray[np.datetime64]:
    return np.asarray(days, dtype=np.int64).astype("M8[D]").astype("M8[us]")


def _strings(values: npt.NDArray[Any]) -> pd.Series:
    return pd.Series(values, dtype="str")


def _numbered(prefix: str, m: int) -> pd.Series:
    """``m`` ids in row order: ``<prefix>000001``, ... (at least six digits)."""
    width = max(6, len(str(m)))
    return _strings(np.array([f"{prefix}{k + 1:0{width}d}" for k in range(m)], dtype=object))


def _concat(parts: list[Arrays], offsets: list[int]) -> Arrays:
    """Concatenate chunk arrays, turning chunk-local account indices into global ones."""
    keys = parts[0].keys()
    out = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    out["acc"] = np.concatenate(
        [np.asarray(p["acc"], np.int64) + off for p, off in zip(parts, offsets, strict=True)]
    )
    return out


def simulate(cfg: SimConfig, progress: Progress = None) -> World:
    """Simulate the world described by ``cfg``.

    Parameters
    ----------
    cfg
        The world's configuration; the same config gives the same world.
    progress
        Optional ``progress(step_name, fraction)`` callback, called as chunks finish.

    Returns
    -------
    World
        The contract tables, the ground truth and the hidden weekly health.
    """

    def report(step: str, fraction: float) -> None:
        if progress is not None:
            progress(step, fraction)

    grid = make_grid(cfg)
    accts = draw_accounts(cfg, grid, child(cfg.seed, KEY_ACCOUNTS))
    n = len(accts)
    chunks = [slice(s, min(s + cfg.chunk_accounts, n)) for s in range(0, n, cfg.chunk_accounts)]
    parts: dict[str, list[Arrays]] = {k: [] for k in TABLES[1:]}
    latent: list[Arrays] = []
    offsets = [sl.start for sl in chunks]
    for c, sl in enumerate(chunks):
        out = simulate_chunk(accts.take(sl), cfg, grid, cfg.seed, c)
        for name in TABLES[1:]:
            parts[name].append(out[name])
        latent.append(out["latent"])
        report("simulate", (c + 1) / len(chunks))

    merged = {k: _concat(v, offsets) for k, v in parts.items()}
    tables = {"accounts": _accounts_table(accts)}
    contracts, truth = _contracts_and_truth(merged["contracts"], accts)
    tables["contracts"] = contracts
    tables["events"] = _events_table(merged["events"], merged["surveys"], accts, cfg)
    report("tables", 0.5)
    tables["tickets"] = _tickets_table(merged["tickets"], accts, grid)
    tables["surveys"] = _surveys_table(merged["surveys"], accts)
    tables["sentiment"] = pd.DataFrame(
        {
            "account_id": _strings(accts.ids[merged["sentiment"]["acc"]]),
            "ts": _ts(merged["sentiment"]["ts"]),
            "sentiment": _strings(
                np.array(SENTIMENTS, dtype=object)[merged["sentiment"]["sentiment"]]
            ),
        }
    )
    tables["invoices"] = _invoices_table(merged["invoices"], accts, grid)
    tables["activities"] = _activities_table(merged["activities"], accts)
    lat = _concat(latent, offsets)
    latent_df = pd.DataFrame(
        {
            "account_id": pd.Categorical.from_codes(
                lat["acc"], categories=pd.Index(accts.ids, dtype="str")
            ),
            "week_start": _ts(grid.week_start_us[lat["week"]]),
            "health": lat["health"],
        }
    )
    report("tables", 1.0)
    return World(tables=tables, truth=truth, latent=latent_df, config=cfg)


def _accounts_table(acc: Accounts) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": _strings(acc.ids),
            "created_at": _ts(acc.created_us),
            "name": _strings(acc.names),
            "segment": _strings(np.array(SEGMENTS, dtype=object)[acc.segment]),
            "csm": _strings(acc.csm),
            "plan": _strings(acc.plan),
            "industry": _strings(acc.industry),
            "region": _strings(np.array(["NA", "EMEA", "APAC"], dtype=object)[acc.region]),
        }
    )


def _contracts_and_truth(c: Arrays, acc: Accounts) -> tuple[pd.DataFrame, pd.DataFrame]:
    order = np.lexsort((c["term"], c["acc"]))
    c = {k: v[order] for k, v in c.items()}
    a = c["acc"].astype(np.int64)
    # Two digits for the term number, more when short terms over a long window need them.
    width = max(2, len(str(int(c["term"].max(initial=0)) + 1)))
    ids = np.array(
        [f"C-{i + 1:05d}-{t + 1:0{width}d}" for i, t in zip(a, c["term"], strict=True)],
        dtype=object,
    )
    outcome_code = c["outcome"].astype(np.int64)
    outcome = pd.Series(
        np.where(outcome_code >= 0, np.array(OUTCOMES, dtype=object)[outcome_code], _NONE),
        dtype="str",
    )
    contracts = pd.DataFrame(
        {
            "contract_id": _strings(ids),
            "account_id": _strings(acc.ids[a]),
            "start_date": _dates(c["start_day"]),
            "end_date": _dates(c["end_day"]),
            "arr": c["arr"].astype(np.float64),
            "seats": c["seats"].astype(np.int64),
            "outcome": outcome,
        }
    )
    contrib = np.asarray(c["contrib"], dtype=np.float64)
    known = outcome_code >= 0
    reason = np.where(known, dominant_reason(np.nan_to_num(contrib, nan=0.0)), _NONE)
    truth = pd.DataFrame(
        {
            "contract_id": contracts["contract_id"],
            "account_id": contracts["account_id"],
            "end_date": contracts["end_date"],
            "true_churn_probability": c["p"].astype(np.float64),
            "churn_probability_with_noise": c["p_noisy"].astype(np.float64),
            "outcome": outcome,
            "dominant_reason": pd.Series(reason, dtype="str"),
            **{f"contrib_{d}": contrib[:, k] for k, d in enumerate(DRIVERS)},
            "contrib_noise": c["noise"].astype(np.float64),
            "mean_health_90d": c["mean_health"].astype(np.float64),
            "is_watermelon": acc.watermelon[a],
            "is_under_utilised": acc.under_utilised[a],
            "champion_left_at": _ts(c["champion_left_us"]),
            **_play_truth(c),
        }
    )
    return contracts, truth


def _play_truth(c: Arrays) -> dict[str, Any]:
    """The truth's play columns (``docs/simulator.md``, "CS plays and their true effects")."""
    play = c["play"].astype(np.int64)
    keys = np.array(PLAY_KEYS, dtype=object)
    decided = c["decision_day"] >= 0
    sentiment = c["sentiment_at"].astype(np.int64)
    names = np.array(["none", *SENTIMENTS], dtype=object)  # codes -1 (none), 0, 1, 2
    ticket = pd.array(c["ticket_open"].astype(np.int64) == 1, dtype="boolean")
    ticket[~decided] = pd.NA
    effects = np.asarray(c["effects"], dtype=np.float64)
    return {
        "decision_date": pd.Series(
            np.where(decided, _dates(c["decision_day"]), np.datetime64("NaT"))
        ),
        "sentiment_at_decision": pd.Series(
            np.where(decided, names[np.clip(sentiment + 1, 0, 3)], _NONE), dtype="str"
        ),
        "ticket_open_at_decision": ticket,
        "play_propensity": c["propensity"].astype(np.float64),
        "play": pd.Series(np.where(play >= 0, keys[np.maximum(play, 0)], _NONE), dtype="str"),
        "play_day": pd.Series(np.where(play >= 0, _dates(c["play_day"]), np.datetime64("NaT"))),
        "p_churn_without_play": c["p_noisy"].astype(np.float64),
        "p_churn": c["p_churn"].astype(np.float64),
        **{f"effect_{key}": effects[:, k] for k, key in enumerate(PLAY_KEYS)},
    }


def _activities_table(a: Arrays, acc: Accounts) -> pd.DataFrame:
    """The CS team's activities: one row per touch of a play (``docs/simulator.md``)."""
    i = a["acc"].astype(np.int64)
    play = a["play"].astype(np.int64)
    keys = np.array(PLAY_KEYS, dtype=object)
    texts = np.array([PLAY_TEXTS[k] for k in PLAY_KEYS], dtype=object)
    notes = np.array([n for pair in NOTES for n in pair], dtype=object)
    note = a["note"].astype(np.int64)
    return pd.DataFrame(
        {
            "account_id": _strings(acc.ids[i]),
            "ts": _ts(a["ts"]),
            "play": _strings(np.where(a["text"], texts[play], keys[play])),
            "owner": _strings(acc.csm[i]),
            "channel": _strings(np.array(CHANNELS, dtype=object)[a["channel"].astype(np.int64)]),
            "note": _strings(np.where(note >= 0, notes[2 * play + np.maximum(note, 0)], _NONE)),
        }
    )


def _user_counts(events: Arrays, surveys: Arrays, n: int) -> npt.NDArray[np.int64]:
    users = np.zeros(n, np.int64)
    np.maximum.at(users, events["acc"].astype(np.int64), events["user"].astype(np.int64) + 1)
    np.maximum.at(users, surveys["acc"].astype(np.int64), surveys["user"].astype(np.int64) + 1)
    return users


def _user_codes(table: Arrays, offsets: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return offsets[table["acc"].astype(np.int64)] + table["user"].astype(np.int64)


def _user_categories(acc: Accounts, users: npt.NDArray[np.int64]) -> pd.Index:
    names = [f"{aid}-U{k + 1:03d}" for aid, m in zip(acc.ids, users, strict=True) for k in range(m)]
    return pd.Index(names, dtype="str")


def _events_table(ev: Arrays, sv: Arrays, acc: Accounts, cfg: SimConfig) -> pd.DataFrame:
    users = _user_counts(ev, sv, len(acc))
    offsets = np.concatenate([[0], np.cumsum(users)[:-1]]).astype(np.int64)
    categories = _user_categories(acc, users)
    names = pd.Index(list(cfg.vanity_events) + list(cfg.key_events), dtype="str")
    value = ev["value"].astype(np.float64)
    return pd.DataFrame(
        {
            "account_id": pd.Categorical.from_codes(
                ev["acc"].astype(np.int32), categories=pd.Index(acc.ids, dtype="str")
            ),
            "user_id": pd.Categorical.from_codes(
                _user_codes(ev, offsets).astype(np.int32), categories=categories
            ),
            "ts": _ts(ev["ts"]),
            "event": pd.Categorical.from_codes(ev["event"].astype(np.int8), categories=names),
            "value": value,
        }
    )


def _tickets_table(t: Arrays, acc: Accounts, grid: Grid) -> pd.DataFrame:
    a = t["acc"].astype(np.int64)
    created = t["created_us"].astype(np.int64)
    keep = (created >= np.maximum(acc.created_us[a], grid.start_us)) & (created < grid.end_us)
    t = {k: v[keep] for k, v in t.items()}
    a, created = a[keep], created[keep]
    order = np.lexsort((a, created))
    t = {k: v[order] for k, v in t.items()}
    a, created = a[order], created[order]

    def before_end(us: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        us = np.asarray(us, dtype=np.int64)
        return np.where((us >= 0) & (us < grid.end_us), us, -1)

    resolved = before_end(t["resolved_us"])
    csat = pd.array(np.where(resolved >= 0, t["csat"], 0), dtype="Int64")
    csat[csat == 0] = pd.NA
    return pd.DataFrame(
        {
            "ticket_id": _numbered("T-", created.shape[0]),
            "account_id": _strings(acc.ids[a]),
            "created_at": _ts(created),
            "first_response_at": _ts(before_end(t["first_response_us"])),
            "resolved_at": _ts(resolved),
            "priority": _strings(
                np.array(PRIORITIES, dtype=object)[t["priority"].astype(np.int64)]
            ),
            "csat": csat,
        }
    )


def _surveys_table(s: Arrays, acc: Accounts) -> pd.DataFrame:
    a = s["acc"].astype(np.int64)
    users = np.array(
        [f"{acc.ids[i]}-U{u + 1:03d}" for i, u in zip(a, s["user"], strict=True)], dtype=object
    )
    return pd.DataFrame(
        {
            "account_id": _strings(acc.ids[a]),
            "user_id": _strings(users),
            "ts": _ts(s["ts"]),
            "kind": _strings(np.array(SURVEY_KINDS, dtype=object)[s["kind"].astype(np.int64)]),
            "score": s["score"].astype(np.float64),
        }
    )


def _invoices_table(v: Arrays, acc: Accounts, grid: Grid) -> pd.DataFrame:
    a = v["acc"].astype(np.int64)
    issued = v["issued_us"].astype(np.int64)
    keep = issued < grid.end_us
    v = {k: x[keep] for k, x in v.items()}
    a, issued = a[keep], issued[keep]
    order = np.lexsort((a, issued))
    v = {k: x[order] for k, x in v.items()}
    a, issued = a[order], issued[order]
    paid = v["paid_us"].astype(np.int64)
    paid = np.where((paid >= 0) & (paid < grid.end_us), paid, -1)
    return pd.DataFrame(
        {
            "invoice_id": _numbered("INV-", issued.shape[0]),
            "account_id": _strings(acc.ids[a]),
            "issued_at": _ts(issued),
            "due_at": _ts(v["due_us"]),
            "paid_at": _ts(paid),
            "amount": v["amount"].astype(np.float64),
        }
    )
