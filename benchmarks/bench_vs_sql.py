"""Issue 15 benchmark: our feature build against a hand-written DuckDB SQL baseline.

Per world, alternating ``--rounds`` times (ours then SQL, then SQL then ours, ...), each run
in its own child process so that its peak RSS is its own (``os.wait4``):

* ``ours`` -- read and validate the data directory, then ``build_training_set`` with every
  family (the path ``churn train`` takes; ``bench_features.stage_ours``);
* ``sql``  -- ``benchmarks/sql_baseline.py``: the contract's Parquet files and the snapshots
  to about 25 features, in one hand-written DuckDB query.

The snapshots are ours (``features.training.training_snapshots``, or
``features.scoring_set.scoring_snapshots`` at ``--as-of``), computed once per world before
the timed runs and handed to the baseline as a Parquet file. After the first round every
feature that both compute is compared, cell by cell (same snapshots, values equal to 1e-9,
NULLs in the same cells); any difference ends the run with exit 1, naming the feature and
showing a few rows.

Worlds absent from ``--data`` are simulated (``--accounts``, ``--session-events``,
``--seed``, one value or one per world). Outputs go next to each world, never into the
repository. The 1-minute load average is recorded beside every run.

    python benchmarks/bench_vs_sql.py --data /tmp/bench/s1 /tmp/bench/s2 \
        --session-events 1 2 --accounts 2300 --rounds 3 --json /tmp/bench/vs-sql.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import bench_features as bf

HERE = Path(__file__).resolve().parent
#: Values of a feature agree when they differ by at most this (relative above 1).
TOLERANCE = 1e-9
SHOWN = 5


def _out(w: argparse.Namespace, kind: str) -> Path:
    """An output file next to the world: ``<world>-<kind>[-<as of>].parquet``."""
    if kind == "ours" and not w.as_of:
        return bf._ours_path(w.data)  # where bench_features.stage_ours writes it
    tail = f"-{w.as_of}" if w.as_of else ""
    return w.data.parent / f"{w.data.name}-{kind}{tail}.parquet"


# --- stages: each runs in a child process and prints one JSON line -------------------------


def stage_snapshots(w: argparse.Namespace) -> dict[str, Any]:
    """Our snapshots of the world, with the ids the baseline keys its rows by (untimed)."""
    import pyarrow.parquet as pq

    from features.config import LabelConfig
    from features.feature_query import _with_ids
    from features.scoring_set import scoring_snapshots
    from features.training import data_end_day, training_snapshots
    from features.validate import load

    t = time.perf_counter()
    tables = load(w.data, bf._connect(w)).tables
    if w.as_of:
        snaps = scoring_snapshots(tables, w.as_of, LabelConfig())
    else:
        snaps = training_snapshots(tables, LabelConfig(), data_end_day(tables))
    cols = ["snapshot_id", "account_id", "contract_id", "as_of_day", "renewal_day", "lead_days"]
    frame = _with_ids(snaps).select(*cols).order_by("snapshot_id").to_pyarrow()
    pq.write_table(frame, _out(w, "snapshots"))
    return {"seconds": time.perf_counter() - t, "rows": frame.num_rows}


def stage_ours(w: argparse.Namespace) -> dict[str, Any]:
    """Files to our features: the training set, or the scoring set at ``--as-of``."""
    if not w.as_of:
        return bf.stage_ours(w)
    from features.config import FeatureConfig, LabelConfig
    from features.scoring_set import build_scoring_set
    from features.validate import load

    t0 = time.perf_counter()
    clean = load(w.data, bf._connect(w))
    t1 = time.perf_counter()
    ts = build_scoring_set(clean.tables, w.as_of, LabelConfig(), FeatureConfig())
    t2 = time.perf_counter()
    ts.frame.to_parquet(_out(w, "ours"), index=False)
    return {
        "validate_seconds": t1 - t0,
        "build_seconds": t2 - t1,
        "seconds": t2 - t0,
        "rows": len(ts.frame),
        "columns": ts.frame.shape[1],
        "soft_problems": [f"{p.table}.{p.column}: {p.rule} ({p.rows})" for p in clean.report.soft],
    }


def stage_sql(w: argparse.Namespace) -> dict[str, Any]:
    """Files and snapshots to the baseline's features, in plain DuckDB."""
    import duckdb
    import pyarrow.parquet as pq
    import sql_baseline

    from features.config import DEFAULT_KEY_EVENTS
    from features.read import MEMORY_LIMIT

    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET threads = {w.threads}")
    # The same cap and spilling as ours (features.read.connect), for a fair peak.
    con.execute(f"SET memory_limit = '{w.memory_limit or MEMORY_LIMIT}'")
    con.execute(f"SET temp_directory = '{w.data.parent / 'duckdb_spill'}'")
    tables = sql_baseline.register(con, w.data, _out(w, "snapshots"))
    result = sql_baseline.baseline_features(con, sql_baseline.WINDOWS, DEFAULT_KEY_EVENTS, tables)
    t1 = time.perf_counter()
    pq.write_table(result, _out(w, "sql"))
    return {"seconds": t1 - t0, "rows": result.num_rows, "columns": result.num_columns}


STAGES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "simulate": bf.stage_simulate,
    "snapshots": stage_snapshots,
    "ours": stage_ours,
    "sql": stage_sql,
}


# --- driver ---------------------------------------------------------------------------------


def run_stage(name: str, w: argparse.Namespace) -> dict[str, Any]:
    """Run one stage in a child process; add its peak RSS, its whole wall time (imports
    included) and the load before and after."""
    argv = [
        sys.executable, str(Path(__file__).resolve()), "--stage", name,
        "--data", str(w.data), "--accounts", str(w.accounts),
        "--session-events", str(w.session_events), "--seed", str(w.seed),
        "--threads", str(w.threads), "--memory-limit", w.memory_limit,
        *(["--as-of", str(w.as_of)] if w.as_of else []),
    ]  # fmt: skip
    return bf.run_child(argv)


def compare(w: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The features both compute, and the differences between ours and the baseline's.

    Rows are matched on (``as_of`` day, ``account_id``, ``contract_id``); the snapshots
    must be the same on both sides.
    """
    import numpy as np
    import pandas as pd

    ours = pd.read_parquet(_out(w, "ours"))
    sql = pd.read_parquet(_out(w, "sql"))
    snaps = pd.read_parquet(_out(w, "snapshots"))
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    ours = ours.assign(as_of_day=(ours["as_of"] - epoch).dt.days)
    keys = ["as_of_day", "account_id", "contract_id"]
    ours = ours.assign(contract_id=ours["contract_id"].fillna(""))
    sql = sql.assign(contract_id=sql["contract_id"].fillna(""))
    problems: list[str] = []
    for side, frame in (("ours", ours), ("SQL", sql)):
        if frame.duplicated(keys).any():
            problems.append(f"{side}: several rows share a snapshot key {keys}")
    if len(ours) != len(snaps) or len(sql) != len(snaps):
        problems.append(
            f"snapshots: {len(snaps):,} computed, ours has {len(ours):,} rows, the SQL {len(sql):,}"
        )
    features = [c for c in sql.columns if c in ours.columns and c not in keys]
    features = [c for c in features if c not in ("account_id", "contract_id")]
    m = ours[[*keys, *features]].merge(
        sql[[*keys, *features]], on=keys, how="outer", suffixes=("", "__sql"), indicator=True
    )
    alone = m[m["_merge"] != "both"]
    if len(alone):
        problems.append(
            f"snapshots: {len(alone):,} rows are on one side only, e.g.\n"
            + alone[[*keys, "_merge"]].head(SHOWN).to_string(index=False)
        )
    m = m[m["_merge"] == "both"]
    for f in features:
        a = m[f].astype("float64").to_numpy()
        b = m[f"{f}__sql"].astype("float64").to_numpy()
        null_differs = np.isnan(a) != np.isnan(b)
        both = ~np.isnan(a) & ~np.isnan(b)
        value_differs = both & (np.abs(a - b) > TOLERANCE * np.maximum(1.0, np.abs(a)))
        bad = null_differs | value_differs
        if bad.any():
            shown = m.loc[bad, [*keys, f, f"{f}__sql"]].head(SHOWN)
            shown = shown.rename(columns={f: "ours", f"{f}__sql": "sql"})
            problems.append(
                f"{f}: {int(bad.sum()):,} of {len(m):,} snapshots differ "
                f"({int(null_differs.sum()):,} NULL on one side only), e.g.\n"
                + shown.to_string(index=False)
            )
    return features, problems


def _spread(runs: list[dict[str, Any]], key: str = "seconds") -> dict[str, float]:
    values = [r[key] for r in runs]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _fmt(s: dict[str, float]) -> str:
    return f"{s['median']:.2f} [{s['min']:.2f}-{s['max']:.2f}]"


def summarise(world: dict[str, Any]) -> dict[str, Any]:
    """The figures of one world from its runs."""
    ours, sql = world["runs"]["ours"], world["runs"]["sql"]
    o, s = _spread(ours), _spread(sql)
    return {
        "ours_s": o,
        "ours_build_s": _spread(ours, "build_seconds"),
        "ours_process_s": _spread(ours, "process_seconds"),
        "sql_s": s,
        "sql_process_s": _spread(sql, "process_seconds"),
        "ratio_ours_sql": o["median"] / s["median"],
        "ratio_ours_sql_process": statistics.median(r["process_seconds"] for r in ours)
        / statistics.median(r["process_seconds"] for r in sql),
        "ours_peak_gib": max(r["peak_rss_gib"] for r in ours),
        "sql_peak_gib": max(r["peak_rss_gib"] for r in sql),
        "ours_events_per_s": world["events"] / o["median"],
        "load": [r["load_before"] for r in ours + sql],
    }


def report(worlds: list[dict[str, Any]]) -> str:
    """One row per world, then the notes (compared features, loads)."""
    head = ("world", "events", "user-days", "events/user-day", "snapshots",
            "ours s median [range]", "SQL s median [range]", "ours/SQL",
            "ours peak GiB", "SQL peak GiB", "ours M events/s")  # fmt: skip
    rows = [head]
    for x in worlds:
        s = x["summary"]
        rows.append(
            (
                x["data"],
                f"{x['events']:,}",
                f"{x['user_days']:,}",
                f"{x['events'] / max(x['user_days'], 1):.2f}",
                f"{x['snapshots']:,}",
                _fmt(s["ours_s"]),
                _fmt(s["sql_s"]),
                f"{s['ratio_ours_sql']:.2f}",
                f"{s['ours_peak_gib']:.2f}",
                f"{s['sql_peak_gib']:.2f}",
                f"{s['ours_events_per_s'] / 1e6:.2f}",
            )
        )
    width = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(n) for c, n in zip(r, width, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * n for n in width))
    lines.append("")
    for x in worlds:
        s = x["summary"]
        lines.append(
            f"{x['data']}: ours build alone {_fmt(s['ours_build_s'])} s; whole processes "
            f"(imports included) ours {_fmt(s['ours_process_s'])} s, SQL "
            f"{_fmt(s['sql_process_s'])} s, ratio {s['ratio_ours_sql_process']:.2f}; "
            f"1-minute load before each run {min(s['load']):.2f}-{max(s['load']):.2f}"
        )
        lines.append(
            f"  {len(x['features'])} features agree on every snapshot: {', '.join(x['features'])}"
        )
    return "\n".join(lines)


def _worlds(a: argparse.Namespace) -> list[argparse.Namespace]:
    """One namespace per world, with that world's ``data``, ``accounts`` and
    ``session_events`` (a single value given is used for every world)."""
    n = len(a.data)
    out = []
    for name in ("accounts", "session_events"):
        if len(getattr(a, name)) not in (1, n):
            raise SystemExit(f"--{name.replace('_', '-')}: give one value or one per --data")
    for i, data in enumerate(a.data):
        w = argparse.Namespace(**vars(a))
        w.data = data
        w.accounts = a.accounts[i if len(a.accounts) == n else 0]
        w.session_events = a.session_events[i if len(a.session_events) == n else 0]
        out.append(w)
    return out


def run_world(w: argparse.Namespace) -> dict[str, Any]:
    """Simulate if absent, snapshot once, then the alternating rounds; exit 1 on any
    difference after the first round."""
    if not w.data.exists():
        print(f"simulating {w.accounts:,} accounts into {w.data} ...", flush=True)
        s = run_stage("simulate", w)
        print(f"  {s['seconds']:.0f} s, peak RSS {s['peak_rss_gib']:.2f} GiB", flush=True)
    events = bf.count_events(w.data)
    snaps = run_stage("snapshots", w)
    print(f"{w.data}: {events:,} events, {snaps['rows']:,} snapshots", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "sql": []}
    features: list[str] = []
    for r in range(w.rounds):
        for name in ("ours", "sql") if r % 2 == 0 else ("sql", "ours"):
            done = run_stage(name, w)
            runs[name].append(done)
            print(
                f"  round {r + 1} {name}: {done['seconds']:.2f} s, peak "
                f"{done['peak_rss_gib']:.2f} GiB (load {done['load_before']})",
                flush=True,
            )
        if r == 0:
            features, problems = compare(w)
            if problems:
                soft = runs["ours"][0].get("soft_problems") or []
                print(f"\nFAIL: ours and the SQL baseline disagree on {w.data}:", file=sys.stderr)
                for p in problems:
                    print(p, file=sys.stderr)
                if soft:
                    print(f"(ours excluded rows the baseline reads: {soft})", file=sys.stderr)
                raise SystemExit(1)
            print(f"  {len(features)} features agree on every snapshot", flush=True)
    world = {
        "data": str(w.data),
        "as_of": str(w.as_of) if w.as_of else None,
        "threads": w.threads,
        "memory_limit": w.memory_limit,
        "events": events,
        "user_days": bf.count_user_days(w.data),  # after every timed run
        "snapshots": snaps["rows"],
        "features": features,
        "runs": runs,
    }
    return world | {"summary": summarise(world)}


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, nargs="+", default=[Path("/tmp/bench/sessions")])
    p.add_argument(
        "--accounts",
        type=int,
        nargs="+",
        default=[2_300],
        help="accounts of a world to simulate (one, or one per --data)",
    )
    p.add_argument(
        "--session-events",
        type=float,
        nargs="+",
        default=[8.0],
        help="mean events per session of a world to simulate (one, or one per --data)",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rounds", type=int, default=3, help="runs of each, alternating")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="DuckDB threads of both (default: the free cores at the start)",
    )
    p.add_argument(
        "--memory-limit",
        default="",
        help="DuckDB memory limit of both (default: features.read.MEMORY_LIMIT)",
    )
    p.add_argument(
        "--as-of",
        type=date.fromisoformat,
        help="the scoring path instead: features of the renewals open on this day",
    )
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--stage", choices=list(STAGES), help=argparse.SUPPRESS)
    # bench_features.stage_ours reads these through its namespace.
    p.set_defaults(chunk_accounts=1000, repeat=1)  # fmt: skip
    a = p.parse_args(argv)
    a.data = [d.resolve() for d in a.data]
    inside = [d for d in a.data if d.is_relative_to(HERE.parent)]
    if inside:
        p.error(f"--data {inside[0]} is inside the repository; put worlds under /tmp/bench")
    if not a.threads:
        from features.resources import free_cores

        a.threads = free_cores()
    return a


def main(argv: Sequence[str] | None = None) -> int:
    a = parse(argv)
    if a.stage:
        sys.path.insert(0, str(HERE))
        (w,) = _worlds(a)
        print(json.dumps(STAGES[a.stage](w) | {"own_peak_gib": bf.own_peak_gib()}, default=str))
        return 0
    print(f"DuckDB threads: {a.threads}; load average {os.getloadavg()}", flush=True)
    worlds = [run_world(w) for w in _worlds(a)]
    print()
    print(report(worlds))
    if a.json:
        a.json.write_text(json.dumps({"worlds": worlds}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
