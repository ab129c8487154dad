"""Typed settings of the feature and label stages; parsed once at the entry point."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Key features of the simulated world; a team names its own in ``churn.yaml``.
DEFAULT_KEY_EVENTS = (
    "report_exported",
    "workflow_created",
    "integration_synced",
    "dashboard_shared",
)


class Frozen(BaseModel):
    """Base of every settings model: immutable, and unknown keys are an error (typos)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class LabelConfig(Frozen):
    """What is predicted, and from which snapshots.

    renewal: churn at the next contract ``end_date``, snapshots ``lead_days`` before it.
    inactivity: no event in the ``horizon_days`` after a monthly snapshot, for accounts with
    an event in the ``active_days`` before it.
    """

    label: Literal["renewal", "inactivity"] = "renewal"
    lead_days: tuple[Annotated[int, Field(ge=0)], ...] = (0, 30, 60, 90, 120, 180)
    horizon_days: int = Field(90, gt=0)
    active_days: int = Field(90, gt=0)
    snapshot_every: Literal["month", "week"] = "month"
    within_days: int = Field(120, ge=0, description="score renewals ending within this many days")
    return_grace_days: int = Field(
        0,
        ge=0,
        description="a churned term followed by a new term of the same account starting "
        "within this many days of its end counts as renewed (0: a churn is a churn)",
    )


class FeatureConfig(Frozen):
    """Which features are built, over which windows."""

    windows: tuple[int, ...] = (7, 30, 90)
    key_events: tuple[str, ...] = DEFAULT_KEY_EVENTS
    top_events: int = Field(10, ge=0, description="per-event counts for this many common events")
    champion_days: int = Field(
        365, gt=0, description="the champion is the most active user over this many days"
    )


class DataConfig(Frozen):
    """How the data directory is read, where reading cannot tell by itself.

    ``delimiter`` and ``encoding`` apply to every CSV file (default: detected per file, and
    the report says what was assumed). ``export_date``: the day the export was taken; rows
    dated on or after it are reported and excluded (default: derived from the tables).
    ``known_plays``: the values ``activities.play`` may take; others are reported, and kept.
    """

    delimiter: Literal[",", ";", "\t", "|"] | None = None
    encoding: str | None = Field(None, description="e.g. utf-8, cp1252, latin-1")
    export_date: date | None = None
    keep_attributes: tuple[str, ...] = Field(
        (),
        description="accounts columns to use although their names or values look like "
        "outcomes (they must be known from the account's creation on)",
    )
    known_plays: tuple[str, ...] = Field(
        (),
        description="the plays an activities row may name: the keys and texts of the plays "
        "catalogue, matched ignoring case and surrounding spaces (the pipeline fills it from "
        "plays:; empty: every play is accepted)",
    )
