"""The rules each contract table's rows must obey, declared once.

:data:`RULES` holds the rules that every run checks (required columns filled, keys unique,
rows naming a known account, and each table's own value rules); :func:`contract_rules` adds
those that depend on settings (the known plays). :mod:`features.validate` turns them into
checks; the tables themselves are declared in :mod:`features.contract`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import ibis
import ibis.expr.types as ir

from features.activities import normal_play, normal_play_expr
from features.contract import TABLES, ColumnStats, Tables

Severity = Literal["hard", "soft"]

OUTCOMES = ("renewed", "expanded", "contracted", "churned")
PRIORITIES = ("low", "normal", "high", "urgent")
SENTIMENTS = ("green", "yellow", "red")
SURVEY_RANGES: dict[str, tuple[float, float]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}

#: Returns a boolean column that is True on the rows that break the rule.
Predicate = Callable[[ir.Table, Tables], ir.BooleanValue]


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
