"""Issue 15's yardstick: about 25 of our features written by hand as plain DuckDB SQL.

The obvious way to write point-in-time features in SQL, with none of the design of
:mod:`features.usage`: every event of an account is joined to each of its snapshots whose
longest window holds it (a range join), and the windows are ``FILTER`` clauses of one
aggregate per snapshot (``count(DISTINCT ...) FILTER (WHERE ...)`` for users, days and
event names). Tickets, surveys and invoices are joined the same way; the last NPS answer
and the last CSM sentiment are as-of joins.

The definitions are the project's own, so that every value can be compared with
:func:`features.training.build_training_set` (``benchmarks/bench_vs_sql.py`` does):

* a snapshot sees only rows strictly before ``as_of`` (midnight UTC of ``as_of_day``);
* an event window of ``w`` days is the UTC days ``[as_of_day - w, as_of_day)``; a window of
  the small tables is the seconds ``[as_of - w days, as_of)`` (``features.build``: an age
  of at most ``w`` days), the same span since ``as_of`` is a midnight;
* times are whole epoch seconds, floored (``features.build._sec``); a resolution, payment or
  first response at or after ``as_of`` is not known yet: the ticket is open, the invoice
  unpaid;
* the latest NPS answer or sentiment is the mean of the rows of the latest second;
* counts are 0 when a snapshot has no rows, and so are ``oldest_open_ticket_days`` and
  ``days_overdue_max`` (``features.build.ZERO_WHEN_ABSENT``); other values are NULL.

The query reads views named after the contract tables and a ``snapshots`` view with
``snapshot_id``, ``account_id``, ``contract_id``, ``as_of_day`` and ``renewal_day`` (day
numbers since 1970-01-01); :func:`register` creates them over Parquet files.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

#: Event windows of the baseline (days): those of the issue's measurement.
WINDOWS = (30, 90)
#: Families of the small tables, by the table each reads.
OPTIONAL_TABLES = ("tickets", "surveys", "sentiment", "invoices")
SECONDS_PER_DAY = 86_400
SENTIMENT_SCORE = {"red": 0, "yellow": 1, "green": 2}
#: Features of the snapshot and the account alone, last in the output.
LIFECYCLE = ("days_to_renewal", "tenure_days")


def _q(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _sec(col: str) -> str:
    """Whole epoch seconds of a timestamp, floored; NULL stays NULL."""
    return f"epoch_us({col}) // 1000000"


def feature_names(
    windows: Sequence[int] = WINDOWS,
    key_events: Sequence[str] = (),
    tables: Iterable[str] = OPTIONAL_TABLES,
) -> list[str]:
    """The features :func:`baseline_sql` computes, in its column order."""
    present = set(tables)
    names: list[str] = []
    for stem in ("events", "active_days", "user_days", "active_users", "distinct_events"):
        names += [f"{stem}_{w}d" for w in windows]
    if key_events:
        names += [f"key_events_{w}d" for w in windows]
    if "tickets" in present:
        names += ["tickets_30d", "tickets_90d", "urgent_open", "high_open"]
        names += ["oldest_open_ticket_days"]
    if "surveys" in present:
        names += ["nps_last", "days_since_nps", "nps_responses_365d", "csat_mean_365d"]
    if "sentiment" in present:
        names += ["sentiment_last"]
    if "invoices" in present:
        names += ["invoices_overdue", "days_overdue_max", "late_payments_365d"]
    return [*names, *LIFECYCLE]


def _usage(windows: Sequence[int], key_events: Sequence[str]) -> tuple[str, list[str]]:
    """Event features: events of each account range-joined to its snapshots."""
    longest = max(windows)
    aggs = []
    for w in windows:
        # The longest window needs no filter: the join keeps only its rows.
        where = "" if w == longest else f" FILTER (WHERE e.day >= s.as_of_day - {w})"
        aggs += [
            f"count(*){where} AS events_{w}d",
            f"count(DISTINCT e.day){where} AS active_days_{w}d",
            f"count(DISTINCT (e.user_id, e.day)){where} AS user_days_{w}d",
            f"count(DISTINCT e.user_id){where} AS active_users_{w}d",
            f"count(DISTINCT e.event){where} AS distinct_events_{w}d",
        ]
        if key_events:
            key = f"e.event IN ({', '.join(map(_q, key_events))})"
            cond = key if w == longest else f"{key} AND e.day >= s.as_of_day - {w}"
            aggs.append(f"count(*) FILTER (WHERE {cond}) AS key_events_{w}d")
    sep = ",\n        "
    sql = f"""
ev AS (
    SELECT account_id, user_id, event, epoch_us(ts) // {SECONDS_PER_DAY * 1_000_000} AS day
    FROM events
),
usage AS (
    SELECT s.snapshot_id,
        {sep.join(aggs)}
    FROM snap AS s
    JOIN ev AS e
      ON e.account_id = s.account_id
     AND e.day >= s.as_of_day - {longest} AND e.day < s.as_of_day
    GROUP BY s.snapshot_id
)"""
    return sql, ["usage"]


def _support() -> tuple[str, list[str]]:
    """Tickets opened in 30 and 90 days, urgent and high open, the oldest open one's age."""
    is_open = "(t.resolved_sec IS NULL OR t.resolved_sec >= s.as_of_sec)"
    sql = f"""
tk AS (
    SELECT account_id, priority, {_sec("created_at")} AS sec,
        {_sec("resolved_at")} AS resolved_sec
    FROM tickets
),
support AS (
    SELECT s.snapshot_id,
        count(*) FILTER (WHERE t.sec >= s.as_of_sec - 30 * {SECONDS_PER_DAY}) AS tickets_30d,
        count(*) FILTER (WHERE t.sec >= s.as_of_sec - 90 * {SECONDS_PER_DAY}) AS tickets_90d,
        count(*) FILTER (WHERE {is_open} AND t.priority = 'urgent') AS urgent_open,
        count(*) FILTER (WHERE {is_open} AND t.priority = 'high') AS high_open,
        max((s.as_of_sec - t.sec) / {SECONDS_PER_DAY}) FILTER (WHERE {is_open})
            AS oldest_open_ticket_days
    FROM snap AS s
    JOIN tk AS t ON t.account_id = s.account_id AND t.sec < s.as_of_sec
    GROUP BY s.snapshot_id
)"""
    return sql, ["support"]


def _voice() -> tuple[str, list[str]]:
    """Last NPS answer and its age (as-of join), NPS answers and mean CSAT over a year."""
    sql = f"""
sv AS (SELECT account_id, kind, score, {_sec("ts")} AS sec FROM surveys),
voice AS (
    SELECT s.snapshot_id,
        count(*) FILTER (WHERE v.kind = 'nps') AS nps_responses_365d,
        avg(v.score) FILTER (WHERE v.kind = 'csat') AS csat_mean_365d
    FROM snap AS s
    JOIN sv AS v
      ON v.account_id = s.account_id
     AND v.sec >= s.as_of_sec - 365 * {SECONDS_PER_DAY} AND v.sec < s.as_of_sec
    GROUP BY s.snapshot_id
),
nps AS (
    SELECT account_id, sec, avg(score) AS score FROM sv WHERE kind = 'nps' GROUP BY ALL
),
nps_asof AS (
    SELECT s.snapshot_id, n.score AS nps_last,
        (s.as_of_sec - n.sec) / {SECONDS_PER_DAY} AS days_since_nps
    FROM snap AS s
    ASOF JOIN nps AS n ON n.account_id = s.account_id AND s.as_of_sec > n.sec
)"""
    return sql, ["voice", "nps_asof"]


def _sentiment() -> tuple[str, list[str]]:
    """The CSM's latest sentiment, 0 red to 2 green (as-of join)."""
    cases = " ".join(f"WHEN {_q(k)} THEN {v}" for k, v in SENTIMENT_SCORE.items())
    sql = f"""
sent AS (
    SELECT account_id, {_sec("ts")} AS sec, avg(CASE sentiment {cases} END) AS score
    FROM sentiment GROUP BY ALL
),
sentiment_asof AS (
    SELECT s.snapshot_id, m.score AS sentiment_last
    FROM snap AS s
    ASOF JOIN sent AS m ON m.account_id = s.account_id AND s.as_of_sec > m.sec
)"""
    return sql, ["sentiment_asof"]


def _billing() -> tuple[str, list[str]]:
    """Invoices overdue and unpaid at the snapshot, the most overdue one's days, late
    payments over a year."""
    overdue = "(i.due_sec < s.as_of_sec AND (i.paid_sec IS NULL OR i.paid_sec >= s.as_of_sec))"
    sql = f"""
inv AS (
    SELECT account_id, {_sec("issued_at")} AS sec, {_sec("due_at")} AS due_sec,
        {_sec("paid_at")} AS paid_sec
    FROM invoices
),
billing AS (
    SELECT s.snapshot_id,
        count(*) FILTER (WHERE {overdue}) AS invoices_overdue,
        max((s.as_of_sec - i.due_sec) / {SECONDS_PER_DAY}) FILTER (WHERE {overdue})
            AS days_overdue_max,
        count(*) FILTER (
            WHERE i.paid_sec < s.as_of_sec
              AND i.paid_sec >= s.as_of_sec - 365 * {SECONDS_PER_DAY}
              AND i.paid_sec > i.due_sec
        ) AS late_payments_365d
    FROM snap AS s
    JOIN inv AS i ON i.account_id = s.account_id AND i.sec < s.as_of_sec
    GROUP BY s.snapshot_id
)"""
    return sql, ["billing"]


#: Features that are 0, not NULL, when the snapshot has no rows: the project's convention
#: (``features.build.ZERO_WHEN_ABSENT``), restated so that the baseline's process does not
#: load Ibis; the comparison in ``bench_vs_sql.py`` catches any drift.
ZERO_WHEN_ABSENT = ("events_", "active_days_", "user_days_", "active_users_",
                    "distinct_events_", "key_events_", "tickets_", "urgent_open", "high_open",
                    "oldest_open_ticket_days", "nps_responses_", "invoices_overdue",
                    "days_overdue_max", "late_payments_")  # fmt: skip


def baseline_sql(
    windows: Sequence[int] = WINDOWS,
    key_events: Sequence[str] = (),
    tables: Iterable[str] = OPTIONAL_TABLES,
) -> str:
    """The whole query: one row per snapshot, ``snapshot_id`` and the keys, then the
    features of :func:`feature_names`, ordered by ``snapshot_id``.

    ``tables``: the optional tables present (their families are computed).
    """
    present = set(tables)
    parts = [_usage(windows, key_events)]
    makers = {
        "tickets": _support,
        "surveys": _voice,
        "sentiment": _sentiment,
        "invoices": _billing,
    }
    parts += [make() for name, make in makers.items() if name in present]
    ctes = ",".join(sql for sql, _ in parts)
    joins = "\n".join(f"LEFT JOIN {cte} USING (snapshot_id)" for _, names in parts for cte in names)
    cols = []
    for name in feature_names(windows, key_events, present):
        if name in LIFECYCLE:
            continue
        value = f"coalesce({name}, 0)" if name.startswith(ZERO_WHEN_ABSENT) else name
        cols.append(f"{value}::DOUBLE AS {name}")
    cols += [
        "(renewal_day - as_of_day)::DOUBLE AS days_to_renewal",
        f"(as_of_sec - {_sec('a.created_at')}) / {SECONDS_PER_DAY} AS tenure_days",
    ]
    sep = ",\n    "
    return f"""
WITH
snap AS (
    SELECT snapshot_id, account_id, contract_id, as_of_day, renewal_day,
        as_of_day * {SECONDS_PER_DAY} AS as_of_sec
    FROM snapshots
),{ctes}
SELECT snapshot_id, snap.account_id, contract_id, as_of_day,
    {sep.join(cols)}
FROM snap
LEFT JOIN accounts AS a ON a.account_id = snap.account_id
{joins}
ORDER BY snapshot_id
"""


def _parquet(path: Path) -> str:
    """The ``read_parquet`` argument of a file or a folder of Parquet parts."""
    return _q(str(path / "**" / "*.parquet") if path.is_dir() else str(path))


def register(con: Any, data_dir: Path, snapshots: Path) -> set[str]:
    """Views of the contract tables of ``data_dir`` and of the ``snapshots`` Parquet file on
    a DuckDB connection; returns the optional tables present.

    Only Parquet sources are read (a CSV export would be typed by the project's reader
    first: this baseline is about the query).
    """
    from features.read import find_sources

    sources = find_sources(data_dir)
    needed = ["accounts", "events", *(t for t in OPTIONAL_TABLES if t in sources)]
    for name in needed:
        path = sources[name]
        if path.suffix == ".csv":
            raise ValueError(
                f"{name}: the SQL baseline reads Parquet only, and {path} is CSV; convert "
                "the data directory to Parquet (or simulate it with --format parquet)"
            )
        con.execute(
            f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet({_parquet(path)})"
        )
    con.execute(
        f"CREATE OR REPLACE VIEW snapshots AS SELECT * FROM read_parquet({_q(str(snapshots))})"
    )
    return {t for t in OPTIONAL_TABLES if t in sources}


def baseline_features(
    con: Any,
    windows: Sequence[int] = WINDOWS,
    key_events: Sequence[str] = (),
    tables: Iterable[str] = OPTIONAL_TABLES,
) -> Any:
    """Run :func:`baseline_sql` on ``con`` (views from :func:`register`); a pyarrow Table."""
    return con.execute(baseline_sql(windows, key_events, tables)).to_arrow_table()
