"""Check typed tables against the contract's rules with pandera, inside the engine.

The rules are declared once in :mod:`features.contract`; this module turns them into
pandera schemas (``pandera.ibis``, so the checks run in DuckDB or Spark and tens of millions
of events never reach pandas), counts the rows that break each rule, and returns the clean
tables: hard problems stop the run, soft ones exclude their rows and are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandera.ibis as pa
from ibis.backends import BaseBackend

from features.contract import IBIS_TYPES, RULES, TABLES, Rule, Tables
from features.errors import ContractError, Problem
from features.read import EXAMPLES, DataSet, read_data


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


def _rules(table: str, tables: Tables) -> list[Rule]:
    return [r for r in RULES if r.table == table and _applicable(r, tables)]


def _flags(t: ir.Table, rules: list[Rule], tables: Tables) -> ir.Table:
    """One 0/1 column per rule (``r0``, ``r1``, ...): the row breaks it."""
    return t.select(
        **{f"r{i}": r.broken(t, tables).fill_null(False).cast("int64") for i, r in enumerate(rules)}
    )


def schema_for(table: str, tables: Tables) -> pa.DataFrameSchema:
    """The pandera schema of one table: contract columns, types and all its rules.

    The rules form one check, so that a valid table is read once whatever the number of
    rules (pandera runs a query per check); :func:`check_rules` counts them one by one
    only when that check fails.
    """
    spec = TABLES[table]
    rules = _rules(table, tables)
    checks = [
        pa.Check(
            lambda data: _flags(data.table, rules, tables).select(
                ok=sum((ibis._[f"r{i}"] for i in range(len(rules))), ibis.literal(0)) == 0
            ),
            name="contract rules",
            n_failure_cases=EXAMPLES,
        )
    ]
    columns = {
        c.name: pa.Column(ibis.dtype(IBIS_TYPES[c.kind]), nullable=True) for c in spec.columns
    }
    return pa.DataFrameSchema(columns, checks=checks if rules else [], name=table, strict=False)


def _passes(table: str, t: ir.Table, tables: Tables) -> bool:
    try:
        schema_for(table, tables).validate(t, lazy=True)
    except pa.errors.SchemaErrors:
        return False
    return True


def _examples(rule: Rule, t: ir.Table, tables: Tables) -> tuple[str, ...]:
    spec = TABLES[rule.table]
    show = [c for c in dict.fromkeys([spec.key or "account_id", rule.column]) if c]
    bad = t.filter(rule.broken(t, tables)).select(*show).distinct().order_by(show).limit(EXAMPLES)
    rows = bad.to_pyarrow().to_pylist()
    return tuple(", ".join(f"{k} {_fmt(r[k])}" for k in show) for r in rows)


def _fmt(value: object) -> str:
    return "empty" if value is None else str(value)


def check_rules(tables: Tables) -> list[Problem]:
    """Run every applicable rule; return one problem per broken rule, with counts."""
    problems: list[Problem] = []
    for name, t in tables.items():
        rules = _rules(name, tables)
        if not rules or _passes(name, t, tables):
            continue
        # Flag first, then sum: a rule may use a window (duplicates), which cannot nest in a sum.
        flags = _flags(t, rules, tables)
        counts = flags.aggregate(**{c: flags[c].sum() for c in flags.columns}).to_pyarrow()
        for i, rule in enumerate(rules):
            n = counts[f"r{i}"][0].as_py() or 0
            if n == 0:
                continue
            problems.append(
                Problem(
                    rule.table,
                    rule.column,
                    rule.name,
                    rule.severity,
                    int(n),
                    _examples(rule, t, tables),
                    rule.phrase,
                    rule.fix,
                )
            )
    return problems


def summarise(data: DataSet) -> tuple[TableSummary, ...]:
    """Rows and time span of each table."""
    out = []
    for name, t in data.tables.items():
        col = TABLES[name].time_column
        if col and col in t.columns:
            agg = t.aggregate(rows=t.count(), first=t[col].min(), last=t[col].max())
        else:
            agg = t.aggregate(
                rows=t.count(), first=ibis.null("timestamp"), last=ibis.null("timestamp")
            )
        row = agg.to_pyarrow().to_pylist()[0]
        out.append(
            TableSummary(name, str(data.sources[name]), row["rows"], row["first"], row["last"])
        )
    return tuple(out)


def validate(data: DataSet) -> Report:
    """Check a data set against the contract; nothing is raised, everything is reported."""
    if any(p.severity == "hard" for p in data.problems):
        # Columns are missing or do not parse: the rules cannot be evaluated on such tables.
        return Report(summarise_safe(data), data.problems)
    return Report(summarise(data), (*data.problems, *check_rules(data.tables)))


def summarise_safe(data: DataSet) -> tuple[TableSummary, ...]:
    """Row counts only, for tables whose columns could not be typed."""
    return tuple(
        TableSummary(n, str(data.sources[n]), int(t.count().to_pyarrow().as_py()), None, None)
        for n, t in data.tables.items()
    )


def clean(data: DataSet, report: Report) -> dict[str, ir.Table]:
    """Exclude the rows that break soft rules, which the report has counted."""
    broken = {(p.table, p.column, p.rule) for p in report.soft}
    out = dict(data.tables)
    for rule in RULES:
        if (rule.table, rule.column, rule.name) in broken:
            t = out[rule.table]
            # Evaluate foreign keys against the original tables, as the report did.
            out[rule.table] = t.filter(~rule.broken(t, data.tables).fill_null(False))
    return out


def load(data_dir: Path, con: BaseBackend | None = None) -> CleanData:
    """Read and validate ``data_dir``; raise :class:`ContractError` on any hard problem."""
    data = read_data(data_dir, con)
    report = validate(data)
    if not report.ok:
        raise ContractError(report.hard)
    return CleanData(data.con, clean(data, report), report)
