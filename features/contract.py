"""The data contract, declared once: tables, columns and types.

Everything that reads, validates, simulates or documents the input tables reads this
module, so a table is declared in one place; the rules its rows must obey are in
:mod:`features.rules`. The prose version is ``shared/DATA_CONTRACT.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import ibis.expr.types as ir

Kind = Literal["string", "timestamp", "date", "float", "integer"]

#: Ibis type each contract kind is normalised to. Timestamps are always UTC.
IBIS_TYPES: dict[str, str] = {
    "string": "string",
    "timestamp": "timestamp('UTC')",
    "date": "date",
    "float": "float64",
    "integer": "int64",
}


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


@dataclass(frozen=True)
class ColumnStats:
    """What a file's own statistics (Parquet's, per row group) say of one column, over all
    its rows: ``None`` wherever a row group does not say."""

    nulls: int | None
    #: The smallest value of a numeric column.
    low: float | None = None
