"""What is refused before features are built for a model or an as-of day, with the fix.

Each check raises :class:`~features.errors.ContractError` (exit 2 at the CLI) naming what
was found and what to change: an as-of after the end of the data, data without a table the
model was trained with, an as-of at which no account is eligible (and why none is).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import ibis.expr.types as ir

from features.errors import ContractError
from features.scoring_set import scoring_snapshots
from features.snapshots import day_number, terms
from features.validate import CleanData
from pipelines.config import ChurnConfig

if TYPE_CHECKING:
    from pipelines.scoring_model import ScoringModel


def check_within_data(clean: CleanData, as_of: date, after_end: bool) -> None:
    """Refuse an ``as_of`` after the end of the data unless asked for (``--after-end``):
    the days between would read as silence, every account as inactive."""
    end = clean.report.end
    if end is None or as_of <= end.day or after_end:
        return
    raise ContractError(
        f"--as-of {as_of} is after the end of the data, {end.day} ({end.how}): the "
        f"{(as_of - end.day).days} days between would read as days without any activity. "
        f"Score at --as-of {end.day} or earlier, export newer data, or pass --after-end "
        "to score at that date anyway."
    )


def check_model_tables(sm: ScoringModel, tables: Mapping[str, object], data_dir: Path) -> None:
    """Refuse data that lacks a table the model was trained with (naming it), before any
    feature is built."""
    missing: dict[str, list[str]] = {}
    for f in sm.features:
        if f.source not in tables:
            missing.setdefault(f.source, []).append(f.name)
    if missing:
        raise ContractError(
            "\n".join(
                f"{table}: the model {sm.uri} (version {sm.version}) was trained with the "
                f"{table} table ({len(names)} features: {', '.join(names[:3])}"
                f"{', ...' if len(names) > 3 else ''}), and {data_dir} has no {table}.parquet "
                f"or {table}.csv. Add the {table} export, or score with a model trained "
                f"without it (churn train --data DIR on the same tables)."
                for table, names in missing.items()
            )
        )


def check_eligible(tables: Mapping[str, ir.Table], as_of: date, cfg: ChurnConfig) -> None:
    """Refuse an ``as_of`` at which no account is eligible, saying why and what to change.

    Scoring zero rows would write an empty scores directory (and ``features`` an empty
    file): a wrong ``--as-of`` or ``labels.within_days`` far more often than a fact.
    """
    if scoring_snapshots(tables, as_of, cfg.labels).count().to_pyarrow().as_py():
        return
    raise ContractError(
        f"no account is eligible at --as-of {as_of}: {_why_none(tables, as_of, cfg)}"
    )


def _why_none(tables: Mapping[str, ir.Table], as_of: date, cfg: ChurnConfig) -> str:
    """What the data hold around ``as_of`` when no account is eligible then."""
    labels, day = cfg.labels, day_number(as_of)
    on = lambda d: date(1970, 1, 1) + timedelta(days=int(d))  # noqa: E731  (a day number)
    if labels.label == "inactivity":
        ev = tables["events"]
        row = ev.aggregate(first=ev.ts.min(), last=ev.ts.max()).to_pyarrow().to_pylist()[0]
        if row["first"] is None:
            return "the events table has no rows."
        first, last = row["first"].date(), row["last"].date()
        if as_of <= first:
            return (
                f"it is not after the first event ({first}). Choose an --as-of between "
                f"{first + timedelta(days=1)} and {last + timedelta(days=1)}."
            )
        return (
            f"no account has an event in the labels.active_days ({labels.active_days}) days "
            f"before it ({as_of - timedelta(days=labels.active_days)} to "
            f"{as_of - timedelta(days=1)}); the events run from {first} to {last}. Choose an "
            "--as-of with events in the days before it, or raise --active-days "
            "(labels.active_days)."
        )
    t = terms(tables["contracts"])
    is_open = (t.start_day < day) & (t.end_day > day)
    row = (
        t.aggregate(
            first=t.start_day.min(), last=t.end_day.max(), next=t.end_day.min(where=is_open)
        )
        .to_pyarrow()
        .to_pylist()[0]
    )
    if row["first"] is None:
        return "the contracts table has no terms."
    span = f"the contract terms run from {on(row['first'])} to {on(row['last'])}"
    if row["next"] is None:
        return (
            f"no contract term is open then (started before it, ending after it); {span}. "
            f"Choose an --as-of between {on(row['first'] + 1)} and {on(row['last'] - 1)}."
        )
    lead = int(row["next"]) - day
    return (
        f"no open contract term ends within labels.within_days ({labels.within_days}) days "
        f"of it; the next renewal is on {on(row['next'])}, {lead} days later ({span}). "
        f"Raise --within (labels.within_days) to at least {lead}, or choose a later --as-of."
    )
