"""The data contract, declared once: tables, columns, types and the rules each must obey.

Everything that reads, validates, simulates or documents the input tables reads this
module, so a rule is stated in one place. The prose version is ``shared/DATA_CONTRACT.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import ibis
import ibis.expr.types as ir

from features.activities import normal_play, normal_play_expr

Kind = Literal["string", "timestamp", "date", "float", "integer"]
Severity = Literal["hard", "soft"]

#: Ibis type each contract kind is normalised to. Timestamps are always UTC.
IBIS_TYPES: dict[str, str] = {
    "string": "string",
    "timestamp": "timestamp('UTC')",
    "date": "date",
    "float": "float64",
    "integer": "int64",
}

OUTCOMES = ("renewed", "expanded", "contracted", "churned")
PRIORITIES = ("low", "normal", "high", "urgent")
SENTIMENTS = ("green", "yellow", "red")
SURVEY_RANGES: dict[str, tuple[float, float]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a contract table."""

    name: str
    kind: Kind
    required: bool


@dataclass(frozen=True)
class TableSpec:
    """One table of the contract: its columns, key and the column that dates a row."""

    name: str
    columns: tuple[ColumnSpec, ...]
    required: bool
    key: str | None = None
    time_column: str | None = None

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)


def _c(name: str, kind: Kind, required: bool = True) -> ColumnSpec:
    return ColumnSpec(name, kind, required)


TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec(
            "accounts",
            (
                _c("account_id", "string"),
                _c("created_at", "timestamp"),
                _c("name", "string", False),
                _c("segment", "string", False),
                _c("csm", "string", False),
            ),
            required=True,
            key="account_id",
            time_column="created_at",
        ),
        TableSpec(
            "account_history",
            (
                _c("account_id", "string"),
                _c("column", "string"),
                _c("value", "string"),
                _c("valid_from", "timestamp"),
            ),
            # Attributes that change over time (plan, tier, ...), read point in time.
            required=False,
            time_column="valid_from",
        ),
        TableSpec(
            "contracts",
            (
                _c("contract_id", "string"),
                _c("account_id", "string"),
                _c("start_date", "date"),
                _c("end_date", "date"),
                _c("arr", "float"),
                _c("seats", "integer", False),
                _c("outcome", "string", False),
            ),
            # Only the renewal label needs contracts; inactivity mode runs without them.
            required=False,
            key="contract_id",
            time_column="end_date",
        ),
        TableSpec(
            "events",
            (
                _c("account_id", "string"),
                _c("user_id", "string"),
                _c("ts", "timestamp"),
                _c("event", "string"),
                _c("value", "float", False),
            ),
            required=True,
            time_column="ts",
        ),
        TableSpec(
            "tickets",
            (
                _c("ticket_id", "string"),
                _c("account_id", "string"),
                _c("created_at", "timestamp"),
                _c("first_response_at", "timestamp", False),
                _c("resolved_at", "timestamp", False),
                _c("priority", "string", False),
                _c("csat", "integer", False),
            ),
            required=False,
            key="ticket_id",
            time_column="created_at",
        ),
        TableSpec(
            "surveys",
            (
                _c("account_id", "string"),
                _c("user_id", "string", False),
                _c("ts", "timestamp"),
                _c("kind", "string"),
                _c("score", "float"),
            ),
            required=False,
            time_column="ts",
        ),
        TableSpec(
            "sentiment",
            (
                _c("account_id", "string"),
                _c("ts", "timestamp"),
                _c("sentiment", "string"),
            ),
            required=False,
            time_column="ts",
        ),
        TableSpec(
            "invoices",
            (
                _c("invoice_id", "string"),
                _c("account_id", "string"),
                _c("issued_at", "timestamp"),
                _c("due_at", "timestamp"),
                _c("paid_at", "timestamp", False),
                _c("amount", "float"),
            ),
            required=False,
            key="invoice_id",
            time_column="issued_at",
        ),
        TableSpec(
            "activities",
            (
                _c("account_id", "string"),
                _c("ts", "timestamp"),
                _c("play", "string"),
                _c("owner", "string", False),
                _c("channel", "string", False),
                # Free text for people: read and validated, never made a feature.
                _c("note", "string", False),
            ),
            # What the CS team did; rows after the end of the data are cut like events'.
            required=False,
            time_column="ts",
        ),
    )
}

Tables = Mapping[str, ir.Table]
#: Returns a boolean column that is True on the rows that break the rule.
Predicate = Callable[[ir.Table, Tables], ir.BooleanValue]


@dataclass(frozen=True)
class ColumnStats:
    """What a file's own statistics (Parquet's, per row group) say of one column, over all
    its rows: ``None`` wherever a row group does not say."""

    nulls: int | None
    #: The smallest value of a numeric column.
    low: float | None = None


#: The number of rows that break a rule, as a column's statistics tell it; ``None`` when
#: they cannot tell, and the rows are counted.
FromStats = Callable[[ColumnStats], int | None]


@dataclass(frozen=True)
class Rule:
    """A rule a table's rows must obey.

    ``broken`` marks the offending rows; ``phrase`` completes "N rows ..." in the message.
    A hard rule stops the run; a soft rule excludes the offending rows and reports them
    (or, with ``keeps_rows``, only reports them).
    """

    table: str
    column: str
    name: str
    severity: Severity
    broken: Predicate
    phrase: str
    fix: str
    #: Other tables the rule reads (a foreign key); it is skipped when they are absent.
    needs: tuple[str, ...] = field(default=())
    #: The one column of the table that ``broken`` reads, if so: the rule is then checked
    #: once per distinct value of it and weighted by its rows (a foreign key on events
    #: costs a lookup per account, not per event).
    per: str | None = None
    #: The count of broken rows from the statistics of ``column`` (see :data:`FromStats`).
    from_stats: FromStats | None = None
    #: A soft rule that keeps its rows: they are counted and reported, not excluded.
    keeps_rows: bool = False
    #: The columns its examples show, distinct (default: the table's key and ``column``).
    shows: tuple[str, ...] = ()


def _null(col: str) -> Predicate:
    return lambda t, _: t[col].isnull()


def _nulls(stats: ColumnStats) -> int | None:
    return stats.nulls


def _below(col: str, low: float) -> Predicate:
    return lambda t, _: t[col] < low


def _none_below(low: float) -> FromStats:
    """No row is below ``low`` when the column's smallest value is not; otherwise unknown."""
    return lambda s: 0 if s.low is not None and s.low >= low else None


def _not_in(col: str, allowed: tuple[str, ...]) -> Predicate:
    return lambda t, _: t[col].notnull() & ~t[col].isin(allowed)


def _duplicate(col: str) -> Predicate:
    return lambda t, _: t[col].notnull() & (t.count().over(group_by=t[col]) > 1)


def _unknown_account(t: ir.Table, tables: Tables) -> ir.BooleanValue:
    # NOT EXISTS, which DuckDB and Spark both plan as an anti (or mark) hash join. Not
    # NOT IN: its NULL semantics made Spark test every row against every account (a
    # nested-loop join): 160 s for the demo world's 2.7M events, against 0.6 s.
    accounts = tables["accounts"]
    return t.account_id.notnull() & ~(accounts.account_id == t.account_id).any()


def _before(col: str, other: str) -> Predicate:
    return lambda t, _: t[col] < t[other]


def _survey_out_of_range(t: ir.Table, _: Tables) -> ir.BooleanValue:
    kind = t.kind
    out = ibis.literal(False)
    for name, (low, high) in SURVEY_RANGES.items():
        out = out | ((kind == name) & ((t.score < low) | (t.score > high)))
    return out


def _required_rules() -> list[Rule]:
    rules = []
    for spec in TABLES.values():
        for col in spec.columns:
            if not col.required:
                continue
            # An anonymous event (no user) is common in analytics exports: exclude, don't stop.
            soft = (spec.name, col.name) in {("events", "user_id")}
            rules.append(
                Rule(
                    spec.name,
                    col.name,
                    "not empty",
                    "soft" if soft else "hard",
                    _null(col.name),
                    "are empty",
                    f"these rows are excluded; every row needs a {col.name}"
                    if soft
                    else f"every row needs a {col.name}; fill it in or remove those rows",
                    from_stats=_nulls,
                )
            )
        if spec.key:
            rules.append(
                Rule(
                    spec.name,
                    spec.key,
                    "unique",
                    "hard",
                    _duplicate(spec.key),
                    "share a key with another row",
                    f"{spec.key} must identify one row; remove the duplicates or "
                    "check that the export did not repeat rows",
                )
            )
        if spec.name != "accounts" and "account_id" in spec.column_names:
            rules.append(
                Rule(
                    spec.name,
                    "account_id",
                    "known account",
                    "soft",
                    _unknown_account,
                    "name an account_id that is not in accounts",
                    "these rows are excluded; add the accounts or check the ids' format",
                    needs=("accounts",),
                    per="account_id",
                )
            )
    return rules


RULES: tuple[Rule, ...] = (
    *_required_rules(),
    Rule(
        "contracts",
        "end_date",
        "after start_date",
        "hard",
        lambda t, _: t.end_date <= t.start_date,
        "end on or before their start_date",
        "a term must end after it starts; check that the columns are not swapped",
    ),
    Rule(
        "contracts",
        "arr",
        ">= 0",
        "hard",
        _below("arr", 0),
        "have a negative arr",
        "ARR is the annual recurring revenue of the term and cannot be negative",
        from_stats=_none_below(0),
    ),
    Rule(
        "contracts",
        "seats",
        ">= 0",
        "hard",
        _below("seats", 0),
        "have a negative number of seats",
        "seats are the licensed seats of the term; leave the cell empty when unknown",
        from_stats=_none_below(0),
    ),
    Rule(
        "contracts",
        "outcome",
        "known outcome",
        "hard",
        _not_in("outcome", OUTCOMES),
        f"have an outcome that is not one of {', '.join(OUTCOMES)}",
        "map your CRM's stages onto these four, or leave the cell empty while the term is open",
    ),
    Rule(
        "events",
        "value",
        ">= 0",
        "soft",
        _below("value", 0),
        "have a negative value",
        "these events are excluded; value is a magnitude (seconds, items, amount)",
        from_stats=_none_below(0),
    ),
    Rule(
        "tickets",
        "priority",
        "known priority",
        "soft",
        _not_in("priority", PRIORITIES),
        f"have a priority that is not one of {', '.join(PRIORITIES)}",
        "these tickets are excluded; map your help desk's priorities onto these four",
    ),
    Rule(
        "tickets",
        "csat",
        "1 to 5",
        "soft",
        lambda t, _: (t.csat < 1) | (t.csat > 5),
        "have a csat outside 1-5",
        "these tickets are excluded; rescale the rating to 1-5",
    ),
    Rule(
        "tickets",
        "first_response_at",
        "not before created_at",
        "soft",
        _before("first_response_at", "created_at"),
        "were answered before they were created",
        "these tickets are excluded; check the time zones of both columns",
    ),
    Rule(
        "tickets",
        "resolved_at",
        "not before created_at",
        "soft",
        _before("resolved_at", "created_at"),
        "were resolved before they were created",
        "these tickets are excluded; check the time zones of both columns",
    ),
    Rule(
        "surveys",
        "kind",
        "known kind",
        "soft",
        _not_in("kind", tuple(SURVEY_RANGES)),
        f"have a kind that is not one of {', '.join(SURVEY_RANGES)}",
        "these answers are excluded; name each survey nps, csat or ces",
    ),
    Rule(
        "surveys",
        "score",
        "within the range of its kind",
        "soft",
        _survey_out_of_range,
        "have a score outside the range of its kind (nps 0-10, csat 1-5, ces 1-7)",
        "these answers are excluded; rescale the scores to the range of their kind",
    ),
    Rule(
        "sentiment",
        "sentiment",
        "known sentiment",
        "soft",
        _not_in("sentiment", SENTIMENTS),
        f"have a sentiment that is not one of {', '.join(SENTIMENTS)}",
        "these rows are excluded; map your CSM ratings onto green, yellow and red",
    ),
    Rule(
        "invoices",
        "due_at",
        "not before issued_at",
        "hard",
        _before("due_at", "issued_at"),
        "fall due before they were issued",
        "check that issued_at and due_at are not swapped",
    ),
    Rule(
        "invoices",
        "amount",
        ">= 0",
        "hard",
        _below("amount", 0),
        "have a negative amount",
        "record credit notes outside this table; an invoice amount is >= 0",
        from_stats=_none_below(0),
    ),
    Rule(
        "invoices",
        "paid_at",
        "not before issued_at",
        "soft",
        _before("paid_at", "issued_at"),
        "were paid before they were issued",
        "these invoices are excluded; check the time zones of both columns",
    ),
)


def _unknown_play(known: Iterable[str]) -> Predicate:
    accepted = sorted({normal_play(p) for p in known})
    return lambda t, _: t.play.notnull() & ~normal_play_expr(t.play).isin(accepted)


def play_rule(known_plays: Iterable[str]) -> Rule:
    """The rule that ``activities.play`` names a known play (key or text of the catalogue).

    Soft, and its rows are kept: a touch is a touch whatever its play is called, so the
    touch features count it; only crediting it to a play of the catalogue needs the match.
    The catalogue belongs to :mod:`models` (``plays:``), so the accepted values arrive as a
    setting (``data.known_plays``) rather than from this module.
    """
    return Rule(
        "activities",
        "play",
        "known play",
        "soft",
        _unknown_play(known_plays),
        "name a play that is not in the plays catalogue (compared ignoring case and "
        "surrounding spaces)",
        "these rows are kept, as a touch is a touch: they count in touches_30d, touches_90d "
        "and days_since_last_touch, but cannot be matched to a play; use a key of the plays "
        "catalogue (or its text), or add the play to plays: in churn.yaml",
        per="play",
        keeps_rows=True,
        shows=("play",),
    )


def contract_rules(known_plays: Iterable[str] = ()) -> tuple[Rule, ...]:
    """:data:`RULES` and the rules that depend on settings: the known plays, when given."""
    known = tuple(known_plays)
    return (*RULES, play_rule(known)) if known else RULES
