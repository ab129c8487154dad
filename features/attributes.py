"""Account attributes as features, point in time.

The rule (``shared/DATA_CONTRACT.md``): an extra column of ``accounts`` is known from the
account's ``created_at`` on and never changes, so a snapshot reads it as it is. A value
that changes over time belongs in ``account_history`` (``account_id``, ``column``,
``value``, ``valid_from``), and a snapshot reads the latest value with ``valid_from``
strictly before it; a column named there is read from the history only (its ``accounts``
value is today's, the future of every older snapshot), and is empty before its first
``valid_from``. A timestamp or date attribute (``renewed_at``, ``churned_at``) is never read
as a raw value: it becomes "days since" it, empty while it lies at or after the snapshot.

Names: an attribute named like a column of the training set or a feature (``seats``,
``events_30d``, ``tickets_tier``) becomes the feature ``account_<name>``; the feature
dictionary says which column it comes from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import ibis.expr.types as ir

from features.catalog import Feature

#: ``accounts`` columns that are not attributes: the key, the start and the display columns.
NOT_ATTRIBUTES = ("account_id", "created_at", "name", "csm")
#: Columns of the snapshot rows and of the training set; an attribute cannot take these names.
RESERVED = frozenset(
    ("snapshot_id", "contract_id", "as_of", "as_of_day", "lead_days", "label", "label_known_at",
     "label_known_day", "expansion", "renewal_day", "renewal_date", "arr", "seats", "prev_arr",
     "term_number", "tenure_days", "cohort_month", "tenure_bucket", "signup_quarter")
)  # fmt: skip
#: Names and values that suggest an attribute records how the account ended: a value decided
#: after most snapshots, which a model would learn from (a CRM's ``status = closed-lost``).
OUTCOME_WORDS = frozenset(
    ("closed", "lost", "lapsed", "renewed", "outcome", "status", "reason", "end", "ended",
     "enddate", "won", "downgraded", "downgrade")
)  # fmt: skip
OUTCOME_STEMS = ("churn", "cancel", "terminat")
OUTCOME_VALUE = re.compile(
    r"^(closed[\s_-]*lost|churn(ed)?|cancel+ed|terminated|lapsed|lost|former|inactive)$",
    re.IGNORECASE,
)

Kind = Literal["category", "number", "days_since"]


@dataclass(frozen=True)
class Attribute:
    """One attribute feature: where it comes from and how a snapshot reads it."""

    #: The feature's name (the source column's, unless that name is taken).
    name: str
    #: The column in ``accounts``, or the ``column`` value in ``account_history``.
    column: str
    table: Literal["accounts", "account_history"]
    kind: Kind

    def feature(self) -> Feature:
        renamed = f" (the name '{self.column}' is taken)" if self.name != self.column else ""
        if self.kind == "days_since":
            return Feature(
                self.name,
                "static",
                f"Days since {self.column.replace('_', ' ')}",
                "days",
                None,
                "none",
                f"days from the accounts column '{self.column}' to the snapshot; empty while "
                f"it lies at or after the snapshot{renamed}",
                source="accounts",
            )
        where = (
            "from the accounts table"
            if self.table == "accounts"
            else "from account_history, its latest value before the snapshot"
        )
        return Feature(
            self.name,
            "static",
            self.name.replace("_", " ").capitalize(),
            "category" if self.kind == "category" else "value",
            None,
            "none",
            f"account attribute '{self.column}' {where}{renamed}",
            categorical=self.kind == "category",
            source="accounts",
        )


def feature_name(column: str, taken: set[str], prefixes: Sequence[str]) -> str:
    """``column``, or ``account_<column>`` when a training-set column or feature has the
    name or a family's prefix (``tickets_``), or it starts with an underscore."""

    def clashes(name: str) -> bool:
        return name in taken or name in RESERVED or name.startswith(("_", *prefixes))

    if not clashes(column):
        return column
    name, n = f"account_{column}", 2
    while clashes(name):
        name, n = f"account_{column}_{n}", n + 1
    return name


def attributes(
    accounts: ir.Table,
    history_columns: Mapping[str, bool],
    taken: Iterable[str],
    prefixes: Sequence[str],
) -> tuple[Attribute, ...]:
    """The attribute features of ``accounts`` and ``account_history``.

    ``history_columns``: each attribute named in ``account_history``, True when all its
    values are numbers. ``taken``: the names of the other features.
    """
    used = set(taken)
    out: list[Attribute] = []
    schema = accounts.schema()
    for col in accounts.columns:
        if col in NOT_ATTRIBUTES or col in history_columns:
            continue
        dtype = schema[col]
        kind: Kind = "days_since" if dtype.is_timestamp() or dtype.is_date() else "category"
        base = f"days_since_{col}" if kind == "days_since" else col
        name = feature_name(base, used, prefixes)
        used.add(name)
        out.append(Attribute(name, col, "accounts", kind))
    for col, numeric in history_columns.items():
        name = feature_name(col, used, prefixes)
        used.add(name)
        out.append(Attribute(name, col, "account_history", "number" if numeric else "category"))
    return tuple(out)


def history_columns(history: ir.Table | None) -> dict[str, bool]:
    """Each attribute named in ``account_history``, and whether all its values are numbers
    (then the feature is numeric), in name order."""
    if history is None:
        return {}
    h = history.mutate(_num=history.value.try_cast("float64"))
    rows = (
        h.group_by("column")
        .aggregate(values=h.value.count(), numbers=h._num.count())
        .order_by("column")
        .to_pyarrow()
        .to_pylist()
    )
    return {r["column"]: r["values"] == r["numbers"] for r in rows}


def looks_like_outcome(column: str, values: Sequence[object]) -> str | None:
    """Why an attribute looks like a record of how the account ended, or ``None``."""
    words = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", column).lower())
    if any(w in OUTCOME_WORDS or w.startswith(OUTCOME_STEMS) for w in words):
        return "its name"
    hits = sorted({str(v) for v in values if v is not None and OUTCOME_VALUE.match(str(v).strip())})
    if hits:
        return "its values " + ", ".join(repr(v) for v in hits[:3])
    return None
