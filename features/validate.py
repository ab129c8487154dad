"""Check typed tables against the contract's rules, inside the engine.

The rules are declared once in :mod:`features.rules`. This module turns them into pandera
schemas (``pandera.ibis``: columns, types and the rules as one check, so that tens of
millions of events never reach pandas); the pipeline validates the columns with pandera and
counts the rows that break each rule in one pass per table (a rule that reads one column,
such as a foreign key, on that column's distinct values), then returns the clean tables:
hard problems stop the run, soft ones exclude their rows and are reported. A Parquet
source's statistics (:func:`features.parquet_stats.parquet_stats`) answer the rules they
settle (``Rule.from_stats``) and its summary; a table with nothing else to count is not
read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandera.ibis as pa
from ibis.backends import BaseBackend

from features.attributes import NOT_ATTRIBUTES, looks_like_outcome
from features.config import DataConfig
from features.conform import EXAMPLES
from features.contract import IBIS_TYPES, TABLES, Tables
from features.data_end import DataEnd, derive_end
from features.errors import ContractError, Problem
from features.parquet_stats import TableStats
from features.read import DataSet, read_data
from features.rules import RULES, Rule, contract_rules
from features.snapshots import day_number, overdue_terms


@dataclass(frozen=True)
class TableSummary:
    """What ``churn validate`` prints per table."""

    table: str
    source: str
    rows: int
    first: datetime | None
    last: datetime | None


@dataclass(frozen=True)
class Report:
    """The outcome of validating a data directory."""

    summaries: tuple[TableSummary, ...]
    problems: tuple[Problem, ...]
    #: The end of the data (exclusive): no row dated on or after it is used.
    end: DataEnd | None = None
    #: What was assumed or found besides problems, one line each.
    notes: tuple[str, ...] = ()
    #: Attributes of ``accounts`` that are not used (they look like outcomes).
    dropped_columns: tuple[str, ...] = ()

    @property
    def hard(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "hard")

    @property
    def soft(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "soft")

    @property
    def ok(self) -> bool:
        return not self.hard


@dataclass(frozen=True)
class CleanData:
    """Validated tables with the rows of soft problems excluded; what the features read."""

    con: BaseBackend
    tables: dict[str, ir.Table]
    report: Report


def _applicable(rule: Rule, tables: Tables) -> bool:
    return rule.table in tables and all(n in tables for n in rule.needs)


def _rules(table: str, tables: Tables, rules: Sequence[Rule] = RULES) -> list[Rule]:
    return [r for r in rules if r.table == table and _applicable(r, tables)]


def _broken(rule: Rule, t: ir.Table, tables: Tables) -> ir.BooleanValue:
    """The rows of ``t`` that break ``rule``; a rule that evaluates to NULL is not broken."""
    return rule.broken(t, tables).fill_null(False)


def _flags(t: ir.Table, rules: list[Rule], tables: Tables, **keep: ir.Value) -> ir.Table:
    """One boolean column per rule (``r0``, ``r1``, ...): the row breaks it; and ``keep``.

    A flag may be NULL, which the counts' ``where`` reads as not broken, as :func:`_broken`
    does (without a ``COALESCE`` per row and rule).
    """
    return t.select(**keep, **{f"r{i}": r.broken(t, tables) for i, r in enumerate(rules)})


def _per_value(t: ir.Table, col: str, rules: list[Rule], tables: Tables) -> list[int]:
    """Rows of ``t`` that break each of ``rules``, which read ``col`` alone: each distinct
    value is checked once and weighted by its rows."""
    values = t.group_by(col).aggregate(_rows=t.count())
    flags = _flags(values, rules, tables, _rows=values._rows)
    sums = {f"r{i}": flags._rows.sum(where=flags[f"r{i}"]) for i in range(len(rules))}
    row = flags.aggregate(**sums).to_pyarrow().to_pylist()[0]
    return [int(row[f"r{i}"] or 0) for i in range(len(rules))]


def _none_broken(t: ir.Table, rules: list[Rule], tables: Tables) -> ir.BooleanValue:
    ok: ir.BooleanValue = ibis.literal(True)
    for rule in rules:
        ok &= ~_broken(rule, t, tables)
    return ok


def schema_for(table: str, tables: Tables, rules: bool = True) -> pa.DataFrameSchema:
    """The pandera schema of one table: contract columns and types, and all its rules.

    The rules form one check (pandera runs a query per check), for validating a table with
    pandera alone; :func:`validate` checks the columns with ``rules=False`` and counts
    every rule in one pass of its own (``_scan``), which also gives the counts it reports.
    """
    spec = TABLES[table]
    chosen = _rules(table, tables) if rules else []
    checks = [
        pa.Check(
            lambda data: data.table.select(ok=_none_broken(data.table, chosen, tables)),
            name="contract rules",
            n_failure_cases=EXAMPLES,
        )
    ]
    columns = {
        c.name: pa.Column(ibis.dtype(IBIS_TYPES[c.kind]), nullable=True) for c in spec.columns
    }
    return pa.DataFrameSchema(columns, checks=checks if chosen else [], name=table, strict=False)


def _examples(rule: Rule, t: ir.Table, tables: Tables) -> tuple[str, ...]:
    spec = TABLES[rule.table]
    default = [c for c in dict.fromkeys([spec.key or "account_id", rule.column]) if c]
    show = list(rule.shows) or default
    bad = t.filter(_broken(rule, t, tables)).select(*show).distinct().order_by(show).limit(EXAMPLES)
    rows = bad.to_pyarrow().to_pylist()
    return tuple(", ".join(f"{k} {_fmt(r[k])}" for k in show) for r in rows)


def _fmt(value: object) -> str:
    return "empty" if value is None else str(value)


def _told(rules: list[Rule], stats: TableStats | None) -> dict[int, int]:
    """The counts of broken rows that the file's statistics give (by ``id`` of the rule)."""
    told: dict[int, int] = {}
    for rule in rules:
        column = stats.columns.get(rule.column) if stats else None
        count = rule.from_stats(column) if rule.from_stats and column else None
        if count is not None:
            told[id(rule)] = count
    return told


def _scan(
    name: str, data: DataSet, all_rules: Sequence[Rule] = RULES
) -> tuple[TableSummary, list[Problem]]:
    """One table's summary and broken rules: from its statistics where they tell, one pass
    over it for the rest, one small pass per column that rules read alone
    (:func:`_per_value`), and the examples of each broken rule."""
    t, tables = data.tables[name], data.tables
    schema_for(name, tables, rules=False).validate(t)
    rules = _rules(name, tables, all_rules)
    stats = data.stats.get(name)
    broken = _told(rules, stats)
    per_row = [r for r in rules if r.per is None and id(r) not in broken]
    col = TABLES[name].time_column
    has_time = bool(col) and col in t.columns
    source = str(data.sources[name])
    if stats and not per_row and (stats.first is not None or not has_time or not stats.rows):
        # The file's statistics answer every rule checked row by row, and the summary.
        summary = TableSummary(name, source, stats.rows, stats.first, stats.last)
    else:
        # Flag first, then count: a rule may use a window (duplicates), which cannot nest
        # in a count.
        flags = _flags(t, per_row, tables, _t=t[col] if has_time else ibis.null("timestamp"))
        row = (
            flags.aggregate(
                rows=flags.count(),
                first=flags._t.min(),
                last=flags._t.max(),
                **{f"r{i}": flags.count(where=flags[f"r{i}"]) for i in range(len(per_row))},
            )
            .to_pyarrow()
            .to_pylist()[0]
        )
        broken.update({id(r): row[f"r{i}"] for i, r in enumerate(per_row)})
        summary = TableSummary(name, source, row["rows"], row["first"], row["last"])
    for per in dict.fromkeys(r.per for r in rules if r.per):
        chosen = [r for r in rules if r.per == per]
        broken.update(zip(map(id, chosen), _per_value(t, per, chosen, tables), strict=True))
    problems = [
        Problem(
            rule.table,
            rule.column,
            rule.name,
            rule.severity,
            broken[id(rule)],
            _examples(rule, t, tables),
            rule.phrase,
            rule.fix,
        )
        for rule in rules
        if broken[id(rule)]
    ]
    return summary, problems


def validate(data: DataSet, settings: DataConfig | None = None) -> Report:
    """Check a data set against the contract; nothing is raised, everything is reported."""
    settings = settings or DataConfig()
    notes = data.notes
    if any(p.severity == "hard" for p in data.problems):
        # Columns are missing or do not parse: the rules cannot be evaluated on such tables.
        return Report(summarise_safe(data), data.problems, notes=notes)
    rules = contract_rules(settings.known_plays)
    scans = [_scan(name, data, rules) for name in data.tables]
    problems = [*data.problems, *(p for _, ps in scans for p in ps)]
    if any(p.severity == "hard" for p in problems):
        return Report(tuple(s for s, _ in scans), tuple(problems), notes=notes)
    stats = data.stats.get("events")
    end = derive_end(
        data.tables["events"],
        settings.export_date,
        rows=stats.rows if stats else None,
        last=stats.last if stats else None,
    )
    problems += _after_end(data, end.day)
    attrs = _outcome_like(data.tables["accounts"], settings.keep_attributes)
    problems += attrs
    notes += (f"End of the data: {end.day} ({end.how}); rows dated on or after it are not used.",)
    if "contracts" in data.tables:
        notes += _overdue_note(clean(data, Report((), tuple(problems), end))["contracts"], end)
    return Report(
        tuple(s for s, _ in scans),
        tuple(problems),
        end,
        notes,
        tuple(p.column for p in attrs),
    )


#: The tables whose rows the end of the data cuts off, by the column that dates them (the
#: contract's ``time_column``). Not accounts (an account outlives the end) nor contracts
#: (an open term ends after it).
DATED = {
    name: spec.time_column
    for name, spec in TABLES.items()
    if spec.time_column and name not in ("accounts", "contracts")
}


def _after(t: ir.Table, col: str, end: date) -> ir.BooleanValue:
    return (t[col] >= ibis.timestamp(datetime(end.year, end.month, end.day, tzinfo=UTC))).fill_null(
        False
    )


def _after_end(data: DataSet, end: date) -> list[Problem]:
    """Rows dated on or after the end of the data: soft, excluded by :func:`clean`."""
    out = []
    for name, col in DATED.items():
        if name not in data.tables:
            continue
        stats = data.stats.get(name)
        if stats is not None and stats.last is not None and stats.last.date() < end:
            continue  # the file's statistics say no row is that late
        t = data.tables[name]
        late = t.filter(_after(t, col, end))
        n = int(late.count().to_pyarrow().as_py())
        if not n:
            continue
        key = TABLES[name].key or "account_id"
        shown = late.select(key, col).order_by([ibis.desc(col), key]).limit(EXAMPLES)
        examples = tuple(f"{key} {r[key]}, {col} {r[col]}" for r in shown.to_pyarrow().to_pylist())
        out.append(
            Problem(
                name,
                col,
                "before the end of the data",
                "soft",
                n,
                examples,
                f"are dated on or after the end of the data, {end}",
                "these rows are excluded; fix the timestamps, or set data.export_date to the "
                "day the export was taken if the end is wrong",
            )
        )
    return out


def _overdue_note(contracts: ir.Table, end: DataEnd) -> tuple[str, ...]:
    """How many renewals are overdue at the end of the data: scored and flagged, never
    dropped, and said here so that their outcomes get recorded."""
    last = day_number(end.day - timedelta(days=1))
    late = overdue_terms(contracts, last)
    # One query: the first few and, on each row, how many there are.
    first = (
        late.select("contract_id", "end_day", _n=late.end_day.count().over(ibis.window()))
        .order_by("end_day", "contract_id")
        .limit(EXAMPLES)
        .to_pyarrow()
        .to_pylist()
    )
    if not first:
        return ()
    n = int(first[0]["_n"])
    shown = ", ".join(r["contract_id"] for r in first)
    return (
        f"Overdue renewals: {n:,} contract term{'s' if n != 1 else ''} ended without a "
        f"recorded outcome and no later term ({shown}); scoring scores them and flags them "
        "overdue. Record the outcomes in contracts.outcome when known.",
    )


def _outcome_like(accounts: ir.Table, keep: tuple[str, ...]) -> list[Problem]:
    """Attributes whose names or values look like a record of how the account ended."""
    out = []
    schema = accounts.schema()
    for col in accounts.columns:
        if col in NOT_ATTRIBUTES or col in keep:
            continue
        values: list[object] = []
        if schema[col].is_string():
            values = accounts.select(col).distinct().limit(1000).to_pyarrow()[col].to_pylist()
        why = looks_like_outcome(col, values)
        if why is None:
            continue
        out.append(
            Problem(
                "accounts",
                col,
                "known from created_at",
                "soft",
                0,
                (),
                f"looks like a record of how the account ended ({why}); a value decided "
                "after a snapshot would teach the model the future, so the column is not used",
                "if its value was known from the account's creation on, list it in "
                "data.keep_attributes; if it changes over time, give its values in "
                "account_history (account_id, column, value, valid_from)",
            )
        )
    return out


def summarise_safe(data: DataSet) -> tuple[TableSummary, ...]:
    """Row counts only, for tables whose columns could not be typed."""
    return tuple(
        TableSummary(n, str(data.sources[n]), int(t.count().to_pyarrow().as_py()), None, None)
        for n, t in data.tables.items()
    )


def clean(data: DataSet, report: Report) -> dict[str, ir.Table]:
    """Exclude the rows that break soft rules and those after the end of the data, which
    the report has counted, and the attributes that look like outcomes. The rows of a rule
    that keeps them (an unknown play, which the settings add) stay."""
    broken = {(p.table, p.column, p.rule) for p in report.soft}
    out = dict(data.tables)
    for rule in RULES:
        if (rule.table, rule.column, rule.name) in broken and not rule.keeps_rows:
            t = out[rule.table]
            # Evaluate foreign keys against the original tables, as the report did.
            out[rule.table] = t.filter(~_broken(rule, t, data.tables))
    if report.end is not None:
        for name, col in DATED.items():
            if (name, col, "before the end of the data") in broken:
                out[name] = out[name].filter(~_after(out[name], col, report.end.day))
    if report.dropped_columns:
        out["accounts"] = out["accounts"].drop(*report.dropped_columns)
    return out


def load(
    data_dir: Path, con: BaseBackend | None = None, settings: DataConfig | None = None
) -> CleanData:
    """Read and validate ``data_dir``; raise :class:`ContractError` on any hard problem."""
    data = read_data(data_dir, con, settings)
    report = validate(data, settings)
    if not report.ok:
        raise ContractError(report.hard)
    return CleanData(data.con, clean(data, report), report)
