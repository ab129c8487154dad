"""Issue 3 benchmark: build the training set of a ~50M-event world, against two yardsticks.

Measures, each in its own child process (so that peak RSS is that of the measured work alone,
read from ``os.wait4``):

* ``floor``  -- a raw DuckDB scan of the event columns the features read;
* ``ours``   -- connect, read and validate the data directory, then
  ``build_training_set`` with every family (the path ``churn train`` takes);
* ``pandas`` -- ``benchmarks/pandas_reference.py``: frequency, breadth and depth only, in
  plain pandas, whose values are then compared with ours (outside the timing).

After the stages, the events' distinct (account, user, day) are counted (untimed): the
report gives user-days per second beside events per second.

The world is simulated into ``--data`` when it is absent and reused afterwards. Outputs go
next to it (``--data``'s parent), never into the repository. The 1-minute load average is
printed beside every figure: the machine is shared and figures move with it.

    python benchmarks/bench_features.py --accounts 2300 --session-events 8 \
        --data /tmp/bench/sessions --threads 2

``--session-events 1`` simulates one event per action (the default worlds of the tests:
about 1.2 events per active user-day); 8 gives sessions of several events per visit, as
product analytics log them. The build's cost follows user-days and account-days more than
events, so the README reports both worlds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGET_EVENTS_PER_S = 3_000_000
TARGET_PEAK_GIB = 4.0
TARGET_PANDAS_RATIO = 2.5
GIB = 1024**3


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def own_peak_gib() -> float:
    """This process's peak resident memory since it started its program (``VmHWM``).

    What a stage reports about itself: ``ru_maxrss`` of a child, as ``os.wait4`` gives it,
    keeps the resident size the child had before ``exec``, i.e. the driver's at the fork,
    so a driver that grew (comparing two worlds' frames) inflates every later child.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / GIB
    return float("nan")


def peak_of(result: dict[str, Any], usage: Any) -> float:
    """A child's peak: its own ``VmHWM`` when it reported one, else ``ru_maxrss``."""
    own = result.pop("own_peak_gib", None)
    return float(own) if own is not None else usage.ru_maxrss * 1024 / GIB  # KiB on Linux


def _events_glob(data: Path) -> str:
    folder = data / "events"
    return str(folder / "*.parquet") if folder.is_dir() else str(data / "events.parquet")


def _ours_path(data: Path) -> Path:
    return data.parent / f"{data.name}-ours.parquet"


def _connect(a: argparse.Namespace) -> Any:
    from features.read import connect

    # Each run compiles its queries as a first run would: SQL remembered by earlier runs
    # (features.compiled) would hide that cost. CHURN_SQL_CACHE=<folder> measures warm runs.
    os.environ.setdefault("CHURN_SQL_CACHE", "off")
    # engine.memory_limit of churn.yaml; DuckDB spills to its temp directory beyond it.
    con = connect("duckdb", threads=a.threads, memory_limit=a.memory_limit or None)
    con.raw_sql("SET enable_progress_bar = false")
    if a.memory_limit:
        con.raw_sql(f"SET temp_directory = '{a.data.parent / 'duckdb_spill'}'")
    return con


# --- stages: each runs in a child process and prints one JSON line -------------------------


def stage_simulate(a: argparse.Namespace) -> dict[str, Any]:
    from simulator import SimConfig, simulate, write_world

    t = time.perf_counter()
    cfg = SimConfig(accounts=a.accounts, seed=a.seed, session_events=a.session_events)
    write_world(simulate(cfg), a.data)
    return {"seconds": time.perf_counter() - t}


FLOOR_SQL = (
    "SELECT count(*), count(DISTINCT user_id), max(account_id), max(ts), min(event) "
    "FROM read_parquet('{glob}')"
)


def stage_floor(a: argparse.Namespace) -> dict[str, Any]:
    """Best of ``--repeat`` raw scans of account_id, user_id, ts and event."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {a.threads}")
    sql = FLOOR_SQL.format(glob=_events_glob(a.data))
    times = []
    for _ in range(a.repeat):
        t = time.perf_counter()
        # As Arrow: a Python datetime with a zone would need pytz, which is not installed.
        row = con.execute(sql).to_arrow_table()
        times.append(time.perf_counter() - t)
    return {
        "seconds": min(times),
        "all_seconds": times,
        "rows": row.column(0)[0].as_py(),
        "sql": sql,
    }


def stage_ours(a: argparse.Namespace) -> dict[str, Any]:
    from features.config import FeatureConfig, LabelConfig
    from features.training import build_training_set
    from features.validate import load

    t0 = time.perf_counter()
    con = _connect(a)
    clean = load(a.data, con)
    t1 = time.perf_counter()
    ts = build_training_set(clean.tables, LabelConfig(), FeatureConfig())
    t2 = time.perf_counter()
    ts.frame.to_parquet(_ours_path(a.data), index=False)  # for the pandas stage's comparison
    return {
        "validate_seconds": t1 - t0,
        "build_seconds": t2 - t1,
        "seconds": t2 - t0,
        "rows": len(ts.frame),
        "columns": ts.frame.shape[1],
        "soft_problems": [f"{p.table}.{p.column}: {p.rule} ({p.rows})" for p in clean.report.soft],
    }


def stage_pandas(a: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd
    import pandas_reference as ref

    t0 = time.perf_counter()
    events = ref.load_events(a.data)
    t1 = time.perf_counter()
    f = ref.reference_features(a.data, chunk_accounts=a.chunk_accounts, events=events)
    t2 = time.perf_counter()
    out: dict[str, Any] = {"load_seconds": t1 - t0, "features_seconds": t2 - t1}
    out["seconds"] = t2 - t0
    out["rows"] = len(f)
    # How many rows one unchunked merge would hold before the window filter.
    per_account = events["account_id"].value_counts()
    snaps_per_account = f["account_id"].value_counts()
    out["unchunked_merge_rows"] = int(
        (per_account.reindex(snaps_per_account.index, fill_value=0) * snaps_per_account).sum()
    )
    ours_path = _ours_path(a.data)
    if ours_path.exists():
        out["disagreements"] = ref.compare(pd.read_parquet(ours_path), f)
    return out


def stage_profile(a: argparse.Namespace) -> dict[str, Any]:
    """Time each part of the build alone and save DuckDB's profile of the whole query."""
    import ibis

    from features import build, usage, windows
    from features.catalog import families as registered
    from features.config import FeatureConfig, LabelConfig
    from features.feature_query import _with_ids
    from features.training import data_end_day, training_snapshots
    from features.validate import load

    con = _connect(a)
    timed: dict[str, float] = {}

    def clock(name: str, run: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        out = run()
        timed[name] = time.perf_counter() - t
        return out

    clean = clock("validate (load)", lambda: load(a.data, con))
    tables, cfg = clean.tables, FeatureConfig()
    ud, ed = clock(
        "user-day and event-day roll-ups",
        lambda: tuple(t.cache() for t in usage.rollups(tables["events"], cfg)),
    )
    cutoff = clock("data_end_day", lambda: data_end_day(tables, ed))
    snaps_expr = training_snapshots(tables, LabelConfig(), cutoff)
    top = clock("common_events", lambda: usage.common_events(ed, cfg.top_events, cutoff))
    # Materialised once so that each family below is timed without the snapshot query.
    snaps = ibis.memtable(clock("snapshots", lambda: _with_ids(snaps_expr).to_pyarrow()))
    families: dict[str, Callable[[], Any]] = {
        "event features (range joins)": lambda: windows.event_features(ud, ed, snaps, cfg, top),
        **{
            fam.name: partial(fam.query, tables[fam.table], snaps)
            for fam in registered()
            if fam.query is not None and fam.table is not None and fam.table in tables
        },
    }
    for name, make in families.items():
        clock(name, lambda make=make: make().to_pyarrow())  # type: ignore[misc]
    expr, _ = build.feature_table(tables, _with_ids(snaps_expr), cfg, top, (ud, ed))
    plan = a.data.parent / f"{a.data.name}-explain-analyze.txt"
    con.raw_sql(f"PRAGMA enable_profiling = 'query_tree'; PRAGMA profiling_output = '{plan}'")
    clock("whole feature table (profiled)", expr.to_pyarrow)
    con.raw_sql("PRAGMA disable_profiling")
    for t in (ud, ed):
        t.release()
    return {"seconds": sum(timed.values()), "parts": timed, "plan": str(plan)}


STAGES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "simulate": stage_simulate,
    "floor": stage_floor,
    "ours": stage_ours,
    "pandas": stage_pandas,
    "profile": stage_profile,
}


# --- driver ---------------------------------------------------------------------------------


def run_stage(name: str, a: argparse.Namespace) -> dict[str, Any]:
    """Run one stage in a child process; add its peak RSS and the load before and after."""
    argv = [
        sys.executable, str(Path(__file__).resolve()), "--stage", name,
        "--accounts", str(a.accounts), "--seed", str(a.seed), "--data", str(a.data),
        "--session-events", str(a.session_events),
        "--threads", str(a.threads), "--chunk-accounts", str(a.chunk_accounts),
        "--repeat", str(a.repeat), "--memory-limit", a.memory_limit,
    ]  # fmt: skip
    return run_child(argv)


def run_child(argv: Sequence[str]) -> dict[str, Any]:
    """Run a stage's command line; its JSON result (last line of its output) with its peak
    RSS, CPU seconds, whole wall time (``process_seconds``, imports included) and the load
    before and after. A failed stage raises (its stderr is already on the terminal)."""
    load_before = _load()
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(argv[1:4])} failed with exit code {code}; see stderr")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result | {
        "process_seconds": wall,
        "peak_rss_gib": peak_of(result, usage),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "load_before": load_before,
        "load_after": _load(),
    }


def count_events(data: Path) -> int:
    import pyarrow.dataset as ds

    return ds.dataset(_events_glob(data).replace("*.parquet", ""), format="parquet").count_rows()


def count_user_days(data: Path) -> int:
    """Distinct (account, user, UTC day) of the events: what the build's cost follows."""
    import duckdb

    sql = (
        "SELECT count(*) FROM (SELECT DISTINCT account_id, user_id, "
        f"epoch_us(ts) // 86400000000 FROM read_parquet('{_events_glob(data)}'))"
    )
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def report(n_events: int, r: dict[str, dict[str, Any]]) -> str:
    """The results table, then the targets with PASS or MISS."""
    rows = [("stage", "wall s", "M events/s", "peak RSS GiB", "CPU s", "load 1m before/after")]

    def add(label: str, res: dict[str, Any], seconds: float, rss: bool = True) -> None:
        rows.append(
            (
                label,
                f"{seconds:.1f}",
                f"{n_events / seconds / 1e6:.2f}",
                f"{res['peak_rss_gib']:.2f}" if rss else "",
                f"{res['cpu_seconds']:.0f}" if rss else "",
                f"{res['load_before']:.2f} / {res['load_after']:.2f}",
            )
        )

    if "floor" in r:
        add("floor: DuckDB raw scan (best)", r["floor"], r["floor"]["seconds"])
    if "ours" in r:
        o = r["ours"]
        add("ours: read + validate", o, o["validate_seconds"], rss=False)
        add("ours: build_training_set", o, o["build_seconds"], rss=False)
        add("ours: end to end", o, o["seconds"])
    if "pandas" in r:
        p = r["pandas"]
        add("pandas: load events", p, p["load_seconds"], rss=False)
        add("pandas: 3 families", p, p["features_seconds"], rss=False)
        add("pandas: total", p, p["seconds"])
    width = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, width, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in width))
    lines.append("")
    lines.append(f"events: {n_events:,}")
    lines += _verdicts(n_events, r)
    if "profile" in r:
        lines.append("")
        lines.append("profile (each query timed alone, seconds):")
        for name, s in r["profile"]["parts"].items():
            lines.append(f"  {name:<42} {s:7.1f}")
        lines.append(f"  DuckDB's query profile written to {r['profile']['plan']}")
    return "\n".join(lines)


def _verdicts(n_events: int, r: dict[str, dict[str, Any]]) -> list[str]:
    """Each target's figure with PASS or MISS, and what the pandas reference did."""
    lines: list[str] = []
    if "ours" in r:
        o = r["ours"]
        eps, gib = n_events / o["seconds"], o["peak_rss_gib"]
        ok = lambda b: "PASS" if b else "MISS"  # noqa: E731
        lines.append(f"training set: {o['rows']:,} rows x {o['columns']} columns")
        if o.get("user_days"):
            lines.append(
                f"user-days: {o['user_days']:,} ({o['user_days'] / o['seconds'] / 1e6:.2f} M/s "
                f"end to end; {n_events / o['user_days']:.1f} events per user-day)"
            )
        if o["memory_limit"]:
            lines.append(f"ours ran with engine.memory_limit = {o['memory_limit']}")
        lines.append(
            f"events/s end to end: {eps / 1e6:.2f} M (target >= {TARGET_EVENTS_PER_S / 1e6:.0f} M)"
            f"  {ok(eps >= TARGET_EVENTS_PER_S)}"
        )
        lines.append(
            f"peak RSS: {gib:.2f} GiB (target < {TARGET_PEAK_GIB:.0f} GiB)  "
            f"{ok(gib < TARGET_PEAK_GIB)}"
        )
        if "floor" in r:
            lines.append(
                f"ours / floor: {o['seconds'] / r['floor']['seconds']:.1f}x "
                f"(build alone: {o['build_seconds'] / r['floor']['seconds']:.1f}x)"
            )
        if "pandas" in r:
            ratio = r["pandas"]["seconds"] / o["seconds"]
            lines.append(
                f"pandas / ours: {ratio:.2f}x (target >= {TARGET_PANDAS_RATIO}x)  "
                f"{ok(ratio >= TARGET_PANDAS_RATIO)}"
            )
    if "pandas" in r:
        p = r["pandas"]
        lines.append(
            f"pandas ran in chunks of {p['chunk_accounts']} accounts; one merge of all accounts "
            f"would hold {p['unchunked_merge_rows']:,} rows before the window filter"
        )
        if "disagreements" in p:
            lines.append(
                f"pandas vs ours on this world ({p['rows']:,} snapshots): "
                + (
                    "every value agrees"
                    if not p["disagreements"]
                    else "; ".join(p["disagreements"])
                )
            )
    return lines


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accounts", type=int, default=2_300, help="accounts of a new world")
    p.add_argument(
        "--session-events", type=float, default=8.0, help="mean events per session (new world)"
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--data", type=Path, default=Path("/tmp/bench/sessions"))
    p.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    p.add_argument("--chunk-accounts", type=int, default=1000, help="pandas: accounts per merge")
    p.add_argument("--repeat", type=int, default=3, help="floor: best of this many scans")
    p.add_argument("--memory-limit", default="", help="engine.memory_limit for ours, e.g. 3GB")
    p.add_argument(
        "--only", nargs="+", choices=["floor", "ours", "pandas", "profile"],
        default=["floor", "ours", "pandas"], help="stages to run (profile is opt-in)",
    )  # fmt: skip
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--stage", choices=list(STAGES), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.data = a.data.resolve()
    if a.data.is_relative_to(HERE.parent):
        p.error(f"--data {a.data} is inside the repository; put big worlds under /tmp/bench")
    return a


def main(argv: Sequence[str] | None = None) -> int:
    a = parse(argv)
    if a.stage:
        sys.path.insert(0, str(HERE))
        result = STAGES[a.stage](a)
        print(
            json.dumps(
                result
                | {
                    "chunk_accounts": a.chunk_accounts,
                    "memory_limit": a.memory_limit,
                    "own_peak_gib": own_peak_gib(),
                },
                default=str,
            )
        )
        return 0
    results: dict[str, dict[str, Any]] = {}
    if not a.data.exists():
        print(f"simulating {a.accounts:,} accounts into {a.data} ...", flush=True)
        results["simulate"] = run_stage("simulate", a)
        s = results["simulate"]
        print(f"  {s['seconds']:.0f} s, peak RSS {s['peak_rss_gib']:.2f} GiB", flush=True)
    n_events = count_events(a.data)
    print(f"{n_events:,} events in {a.data}; load average {os.getloadavg()}", flush=True)
    for name in a.only:
        print(f"running {name} ...", flush=True)
        results[name] = run_stage(name, a)
        done = results[name]
        print(f"  {done['seconds']:.1f} s (load {done['load_after']})", flush=True)
    if "ours" in results:
        results["ours"]["user_days"] = count_user_days(a.data)  # after every timed stage
    print()
    print(report(n_events, results))
    if a.json:
        a.json.write_text(json.dumps({"events": n_events, **results}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
