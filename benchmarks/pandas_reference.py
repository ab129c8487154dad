"""A plain pandas version of the frequency, breadth and depth families: the yardstick of issue 3.

Written the way a data scientist would write it without an engine: load the event columns,
merge them to the snapshots of their account, keep the rows strictly before ``as_of`` and
inside the window, and ``groupby``-aggregate. It is independent of :mod:`features.build`
(only the configuration defaults and the catalog's feature names are shared), so
:func:`check` also compares our values with a second implementation.

The merge repeats every event once per snapshot of its account before the window filter
drops most of them, so on the benchmark world it is run on chunks of accounts
(``chunk_accounts``); ``0`` merges everything at once.

Run ``python benchmarks/pandas_reference.py --check`` to compare with ours on a small world.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from features.catalog import _slug
from features.config import FeatureConfig, LabelConfig

#: Columns of ``events`` that the three families read.
EVENT_COLUMNS = ["account_id", "user_id", "ts", "event"]
#: ``days_since_last_event`` looks back this far; none in that span gives LOOKBACK_DAYS + 1.
LOOKBACK_DAYS = 180
EPOCH = pd.Timestamp(0, tz="UTC")


def day_number(ts: pd.Series) -> pd.Series:
    """UTC day number (days since 1970-01-01) of timestamps or dates."""
    ts = pd.to_datetime(ts, utc=True)
    return ((ts - EPOCH) // pd.Timedelta(days=1)).astype("int64")


def events_source(data_dir: Path) -> Path:
    """``events.parquet`` or the folder ``events/`` of Parquet parts."""
    folder = data_dir / "events"
    return folder if folder.is_dir() else data_dir / "events.parquet"


def load_events(data_dir: Path) -> pd.DataFrame:
    """The four event columns, text as categoricals, plus ``day``.

    Events without a user are dropped, as the contract's soft rule does in the pipeline.
    """
    ev = pd.read_parquet(
        events_source(data_dir),
        columns=EVENT_COLUMNS,
        # Categoricals straight from Parquet's dictionaries: plain str columns of 50 million
        # rows would need several GiB more.
        read_dictionary=["account_id", "user_id", "event"],
    )
    ev = ev[ev["user_id"].notna()]
    return ev.assign(day=day_number(ev["ts"])).drop(columns="ts")


def top_events(events: pd.DataFrame, n: int, before_day: int) -> list[str]:
    """The ``n`` most frequent events before ``before_day``, ties broken by name."""
    counts = events.loc[events["day"] < before_day, "event"].value_counts()
    ranked = counts[counts > 0].rename_axis("event").reset_index(name="c")
    return ranked.sort_values(["c", "event"], ascending=[False, True])["event"].head(n).tolist()


def renewal_snapshots(
    contracts: pd.DataFrame, lead_days: Sequence[int], cutoff_day: int
) -> pd.DataFrame:
    """Snapshots ``lead_days`` before the end of each decided term that ended before the cut-off.

    A snapshot must fall after the term's start. Carries the term's seats for utilisation.
    """
    c = contracts.assign(
        start_day=day_number(contracts["start_date"]), end_day=day_number(contracts["end_date"])
    )
    decided = c[c["outcome"].notna() & (c["end_day"] < cutoff_day)]
    s = decided.merge(pd.DataFrame({"lead_days": list(lead_days)}), how="cross")
    s = s.assign(as_of_day=s["end_day"] - s["lead_days"])
    s = s[s["as_of_day"] > s["start_day"]]
    return s[["account_id", "contract_id", "as_of_day", "seats"]].reset_index(drop=True)


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    return (num / den).where(den > 0)


def window_features(
    events: pd.DataFrame,
    snaps: pd.DataFrame,
    windows: Sequence[int],
    key_events: Sequence[str],
    top: Sequence[str],
) -> pd.DataFrame:
    """Frequency, breadth and depth features of ``snaps`` (index: the snapshots' index).

    ``events`` has ``account_id``, ``user_id``, ``day``, ``event``; ``snaps`` has
    ``account_id``, ``as_of_day`` and ``seats``. Only events strictly before ``as_of`` count.
    """
    j = snaps[["account_id", "as_of_day"]].rename_axis("snapshot").reset_index()
    j = j.merge(events, on="account_id")
    j = j.assign(age=j["as_of_day"] - j["day"], key=j["event"].isin(key_events))
    j = j[(j["age"] >= 1) & (j["age"] <= LOOKBACK_DAYS)]

    out: dict[str, pd.Series] = {}
    for w in windows:
        win = j[j["age"] <= w]
        by = win.groupby("snapshot")
        out[f"events_{w}d"] = by.size()
        out[f"active_days_{w}d"] = by["day"].nunique()
        out[f"user_days_{w}d"] = (
            win.drop_duplicates(["snapshot", "user_id", "day"]).groupby("snapshot").size()
        )
        out[f"active_users_{w}d"] = by["user_id"].nunique()
        out[f"distinct_events_{w}d"] = by["event"].nunique()
        out[f"key_events_{w}d"] = win[win["key"]].groupby("snapshot").size()

    # Per snapshot and user: active in the last 30 days, 31-60 days ago, 31-90 days ago.
    users = (
        j.assign(
            last30=j["age"] <= 30,
            prev30=(j["age"] > 30) & (j["age"] <= 60),
            prior60=(j["age"] > 30) & (j["age"] <= 90),
            key30=(j["age"] <= 30) & j["key"],
        )
        .groupby(["snapshot", "user_id"], observed=True)[["last30", "prev30", "prior60", "key30"]]
        .any()
    )
    out["new_users_30d"] = (users["last30"] & ~users["prior60"]).groupby(level="snapshot").sum()
    out["lost_users_30d"] = (users["prev30"] & ~users["last30"]).groupby(level="snapshot").sum()
    out["key_users_30d"] = users["key30"].groupby(level="snapshot").sum()
    out["_last_age"] = j.groupby("snapshot")["age"].min()

    last30 = j[(j["age"] <= 30) & j["event"].isin(top)]
    per_event = last30.groupby(["snapshot", "event"], observed=True).size().unstack()
    for e in top:
        out[f"event_{_slug(e)}_30d"] = per_event[e] if e in per_event else pd.Series(dtype=float)

    f = pd.DataFrame(out).reindex(snaps.index)
    counts = [c for c in f.columns if c != "_last_age"]
    f[counts] = f[counts].fillna(0).astype("float64")
    f["days_since_last_event"] = f.pop("_last_age").fillna(LOOKBACK_DAYS + 1).astype("float64")
    f["stickiness_30d"] = _ratio(f["user_days_30d"], f["active_users_30d"] * 30)
    for w in windows:
        f[f"key_share_{w}d"] = _ratio(f[f"key_events_{w}d"], f[f"events_{w}d"])
        f[f"utilisation_{w}d"] = _ratio(f[f"active_users_{w}d"], snaps["seats"].astype("float64"))
    return f


def in_account_chunks(
    events: pd.DataFrame,
    snaps: pd.DataFrame,
    chunk_accounts: int,
    **kwargs: object,
) -> pd.DataFrame:
    """:func:`window_features` on groups of ``chunk_accounts`` accounts (``0``: all at once).

    Bounds the merge's memory: it holds (events of the chunk) x (snapshots per account) rows.
    """
    if chunk_accounts <= 0:
        return window_features(events, snaps, **kwargs)  # type: ignore[arg-type]
    codes = events["account_id"].cat.codes.to_numpy()
    snap_codes = snaps["account_id"].astype(events["account_id"].dtype).cat.codes.to_numpy()
    by_chunk = dict(tuple(snaps.groupby(snap_codes // chunk_accounts)))
    parts = [
        window_features(ev, by_chunk[k], **kwargs)  # type: ignore[arg-type]
        for k, ev in events.groupby(codes // chunk_accounts)
        if k in by_chunk
    ]
    return pd.concat(parts).reindex(snaps.index)


def reference_features(
    data_dir: Path,
    chunk_accounts: int = 1000,
    lead_days: Sequence[int] | None = None,
    events: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Snapshots (``account_id``, ``contract_id``, ``as_of``) and their three families.

    Uses the defaults of ``LabelConfig`` and ``FeatureConfig`` (renewal snapshots; windows
    7, 30, 90; the configured key events; the 10 most common events).
    """
    labels, cfg = LabelConfig(), FeatureConfig()
    events = load_events(data_dir) if events is None else events
    contracts = pd.read_parquet(data_dir / "contracts.parquet")
    cutoff_day = int(events["day"].max()) + 1
    snaps = renewal_snapshots(contracts, lead_days or labels.lead_days, cutoff_day)
    snaps = snaps[snaps["account_id"].isin(events["account_id"].cat.categories)]
    snaps = snaps.assign(account_id=snaps["account_id"].astype(events["account_id"].dtype))
    f = in_account_chunks(
        events,
        snaps,
        chunk_accounts,
        windows=cfg.windows,
        key_events=cfg.key_events,
        top=top_events(events, cfg.top_events, cutoff_day),
    )
    keys = pd.DataFrame(
        {
            "account_id": snaps["account_id"].astype("str"),
            "contract_id": snaps["contract_id"].astype("str"),
            "as_of": pd.to_datetime(snaps["as_of_day"], unit="D", utc=True),
        }
    )
    return pd.concat([keys, f], axis=1)


def compare(ours: pd.DataFrame, ref: pd.DataFrame, rtol: float = 1e-9) -> list[str]:
    """Differences between our training frame and the reference; empty when they agree.

    Rows are matched on (``contract_id``, ``as_of``); every reference column is compared.
    """
    key = ["contract_id", "as_of"]
    a = ours.assign(as_of=ours["as_of"].astype("datetime64[us, UTC]")).set_index(key)
    b = ref.assign(as_of=ref["as_of"].astype("datetime64[us, UTC]")).set_index(key)
    problems: list[str] = []
    if set(a.index) != set(b.index):
        problems.append(
            f"snapshots differ: {len(a.index.difference(b.index))} only in ours, "
            f"{len(b.index.difference(a.index))} only in the reference"
        )
        return problems
    b = b.loc[a.index]
    for col in b.columns.drop("account_id"):
        if col not in a.columns:
            problems.append(f"{col}: missing from our frame")
            continue
        x, y = a[col].to_numpy("float64"), b[col].to_numpy("float64")
        bad = ~np.isclose(x, y, rtol=rtol, atol=1e-12, equal_nan=True)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            problems.append(
                f"{col}: {int(bad.sum())} of {len(x)} rows differ "
                f"(first: {a.index[i]}: ours {x[i]}, reference {y[i]})"
            )
    return problems


def check(data_dir: Path, accounts: int = 100, seed: int = 7) -> int:
    """Build both on a small simulated world (written if absent) and compare; rows compared."""
    from features.read import connect
    from features.training import build_training_set
    from features.validate import load
    from simulator import SimConfig, simulate, write_world

    if not data_dir.exists():
        write_world(simulate(SimConfig(accounts=accounts, seed=seed)), data_dir)
    con = connect("duckdb", threads=2)
    con.raw_sql("SET enable_progress_bar = false")
    ours = build_training_set(load(data_dir, con).tables, LabelConfig(), FeatureConfig()).frame
    ref = reference_features(data_dir, chunk_accounts=0)
    chunked = reference_features(data_dir, chunk_accounts=max(1, accounts // 7))
    problems = compare(ours, ref) + [f"chunked: {p}" for p in compare(ref, chunked)]
    if problems:
        raise AssertionError(
            f"pandas reference and features/build.py disagree on {data_dir}:\n  "
            + "\n  ".join(problems)
        )
    return len(ours)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare with ours on a small world")
    p.add_argument("--data", type=Path, default=Path("/tmp/bench/small"))
    p.add_argument("--accounts", type=int, default=100, help="size of the --check world")
    a = p.parse_args(argv)
    if not a.check:
        p.error("nothing to do: pass --check (the timing lives in bench_features.py)")
    n = check(a.data, a.accounts)
    print(f"ok: {n} snapshots of {a.data}, every frequency/breadth/depth feature agrees")
    return 0


if __name__ == "__main__":
    sys.exit(main())
