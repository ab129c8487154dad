"""Did a play work? One estimate per play, from the ``activities`` table (``churn plays``).

A unit is one decided renewal, seen at its snapshot ``plays.lead_days`` (120) days before
the renewal date: the model's churn probability there and its drivers (each driver family's
contribution to the score, in log-odds), from the model's trees refitted without the
renewal's account (:mod:`models.play_risk`), with ARR and segment. A unit is *treated* by
play k when an activity of play k falls in [snapshot, renewal date); the comparison units
are the renewals with no play at all in that window. A renewal that got another play is
neither, so each figure reads "play k against no play". The outcome is churn at that
renewal. The estimate is the cross-fitted doubly robust (AIPW) one of
:func:`models.play_effects.estimate_effect`, over the units whose propensity shows
comparable treated and untreated accounts, with the naive difference beside it.

The probability is a function of the features at the snapshot, all measured before any
play of the window, and of other accounts' outcomes, never the renewal's own. What it
cannot adjust for is what the CSM knew and the data does not hold; the report says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import ibis.expr.types as ir
import numpy as np
import pandas as pd

from features.activities import play_keys
from features.config import FeatureConfig, LabelConfig
from features.errors import ContractError
from features.training import Progress, build_training_set
from models.play_effects import PlayEffect, describe, estimate_effect
from models.play_risk import cross_fitted_risk
from models.plays import MeasuredPlay, PlayConfig
from models.scorer import HealthScorer

#: Covariates besides the driver families: the model's probability, ARR and segment.
RISK, ARR, SEGMENT = "risk", "arr_at_stake", "segment"
DRIVER_PREFIX = "driver_"
NO_ACTIVITIES = (
    "activities: the data directory has no activities table, so no play can be measured. "
    "Export what the CS team did (account_id, ts, play; optional owner, channel, note) into "
    "activities.parquet or activities.csv."
)
NO_UNITS = (
    "plays.lead_days: no decided renewal has a training snapshot {lead} days before it "
    "(found {snapshots} snapshots at other leads), so no play can be measured. Terms shorter "
    "than {lead} days have none: set plays.lead_days below the term length, "
    "e.g. 20 for monthly terms."
)
NOT_RENEWAL = (
    "labels.label: plays are measured against the next renewal, and the model predicts "
    "inactivity; measure plays with a renewal model (labels.label: renewal, with contracts)."
)


@dataclass(frozen=True)
class PlayUnits:
    """The renewals a play is measured on: one row each, and the columns adjusted for."""

    frame: pd.DataFrame
    covariates: tuple[str, ...]
    plays: tuple[str, ...]
    unknown_activities: int


PLAY_PREFIX = "play__"


def play_column(key: str) -> str:
    return f"{PLAY_PREFIX}{key}"


def activity_plays(activities: pd.DataFrame, texts: Mapping[str, str]) -> pd.DataFrame:
    """``account_id``, ``day`` (days since 1970, UTC) and ``key`` of each activity whose play
    is in the catalogue; rows of unknown plays are left out (validation counted them)."""
    keys = play_keys(activities["play"], texts)
    ts = pd.to_datetime(activities["ts"], utc=True)
    days = (ts - pd.Timestamp(0, tz="UTC")).dt.days
    out = pd.DataFrame(
        {"account_id": activities["account_id"].astype("str"), "day": days, "key": keys}
    )
    return out.loc[out["key"].notna()].reset_index(drop=True)


def play_units(
    training: pd.DataFrame,
    scorer: HealthScorer,
    activities: pd.DataFrame,
    plays: PlayConfig,
    rows: pd.DataFrame | None = None,
    *,
    seed: int = 0,
    num_threads: int = 1,
) -> PlayUnits:
    """Units of the renewals ``rows`` (default: the rows of ``training`` at
    ``plays.lead_days``), with their treatments.

    ``training`` is the training set's frame the model learned from; the risk and drivers
    of each unit come from the model's trees refitted without the unit's account
    (:func:`models.play_risk.cross_fitted_risk`). ``activities`` is the contract table
    (``account_id``, ``ts``, ``play``).
    """
    rows = training if rows is None else rows
    rows = rows.loc[(rows["lead_days"] == plays.lead_days) & rows["label"].notna()]
    rows = rows.reset_index(drop=True)
    fitted = cross_fitted_risk(training, rows, scorer, seed=seed, num_threads=num_threads)
    drivers = fitted.drop(columns="risk").add_prefix(DRIVER_PREFIX)
    units = pd.DataFrame(
        {
            "account_id": rows["account_id"].astype("str"),
            "contract_id": rows["contract_id"],
            "as_of": rows["as_of"],
            "renewal_date": rows["renewal_date"],
            "churned": rows["label"].astype("int64"),
            RISK: fitted["risk"].to_numpy(),
            ARR: rows["arr"].astype("float64"),
            SEGMENT: rows.get("segment"),
        }
    )
    units = pd.concat([units, drivers.reset_index(drop=True)], axis=1)
    acts = activity_plays(activities, plays.texts())
    marks = treatments(units, acts)
    units = pd.concat([units, marks], axis=1)
    seen = tuple(c.removeprefix(PLAY_PREFIX) for c in marks.columns if c != "any_play")
    covariates = (RISK, ARR, *drivers.columns)
    if units[SEGMENT].notna().any():
        covariates = (*covariates, SEGMENT)
    return PlayUnits(units, tuple(covariates), seen, int(len(activities) - len(acts)))


def units_from_tables(
    tables: Mapping[str, ir.Table],
    training: pd.DataFrame,
    top_events: Sequence[str],
    scorer: HealthScorer,
    labels: LabelConfig,
    features: FeatureConfig,
    plays: PlayConfig,
    end: date | None,
    *,
    seed: int = 0,
    num_threads: int = 1,
) -> PlayUnits:
    """:func:`play_units` of validated tables: the renewals at ``plays.lead_days`` come from
    ``training`` (the frame the model learned from) when its lead days include it, else
    from a training set built at that lead alone; the activities are read here."""
    rows = None
    if plays.lead_days not in labels.lead_days:
        at_lead = labels.model_copy(update={"lead_days": (plays.lead_days,)})
        rows = build_training_set(tables, at_lead, features, end, None, top_events).frame
    acts = tables["activities"].select("account_id", "ts", "play").to_pandas()
    return play_units(training, scorer, acts, plays, rows, seed=seed, num_threads=num_threads)


def treatments(units: pd.DataFrame, acts: pd.DataFrame) -> pd.DataFrame:
    """0/1 columns ``play__<key>`` (an activity of that play in [as_of, renewal_date)) and
    ``any_play``, one row per unit in order; ``acts`` from :func:`activity_plays`."""
    epoch = pd.Timestamp(0, tz="UTC")
    spans = pd.DataFrame(
        {
            "account_id": units["account_id"].astype("str").to_numpy(),
            "unit": np.arange(len(units)),
            "start": (pd.to_datetime(units["as_of"], utc=True) - epoch).dt.days.to_numpy(),
            "end": (pd.to_datetime(units["renewal_date"], utc=True) - epoch).dt.days.to_numpy(),
        }
    )
    hits = spans.merge(acts, on="account_id")
    hits = hits.loc[(hits["day"] >= hits["start"]) & (hits["day"] < hits["end"])]
    index = np.arange(len(units))
    marks = {
        play_column(key): np.isin(index, hits.loc[hits["key"] == key, "unit"]).astype("int64")
        for key in sorted(hits["key"].unique())
    }
    marks["any_play"] = np.isin(index, hits["unit"]).astype("int64")
    return pd.DataFrame(marks, index=units.index)


def measure(
    units: PlayUnits,
    plays: PlayConfig,
    *,
    level: float = 0.9,
    n_boot: int = 500,
    seed: int = 0,
    progress: Progress = None,
) -> tuple[list[PlayEffect], tuple[MeasuredPlay, ...]]:
    """Each play's estimate (against renewals with no play), most-run play first."""
    texts = plays.texts()
    frame = units.frame
    order = sorted(units.plays, key=lambda k: (-int(frame[play_column(k)].sum()), k))
    effects, measured = [], []
    for i, key in enumerate(order):
        if progress:
            progress(f"measuring {key}", i / max(len(order), 1))
        column = play_column(key)
        rows = frame.loc[(frame[column] == 1) | (frame["any_play"] == 0)].reset_index(drop=True)
        effect = estimate_effect(
            rows, treatment=column, outcome="churned", covariates=units.covariates,
            play=texts.get(key, key), groups="account_id", level=level, n_boot=n_boot,
            seed=seed,
        )  # fmt: skip
        effects.append(effect)
        measured.append(as_measured(key, effect))
    return effects, tuple(measured)


def _value(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def as_measured(key: str, e: PlayEffect) -> MeasuredPlay:
    """The stored form of an estimate (what the model carries for routing and the report)."""
    return MeasuredPlay(
        key=key, text=e.play, status=e.status, effect=_value(e.effect.estimate),
        low=_value(e.effect.low), high=_value(e.effect.high), level=e.effect.level,
        naive=_value(e.naive.estimate), naive_low=_value(e.naive.low),
        naive_high=_value(e.naive.high), units=e.n_overlap if e.ok else e.n_units,
        treated=e.n_treated_overlap if e.ok else e.n_treated,
        untreated=e.n_untreated_overlap if e.ok else e.n_untreated, trimmed=e.n_trimmed,
        lines=tuple(describe(e)),
    )  # fmt: skip


def measured_table(measured: Sequence[MeasuredPlay]) -> pd.DataFrame:
    """One row per play: the estimate, its interval, the naive difference and the counts."""
    return pd.DataFrame(
        [
            {
                "play": m.key, "text": m.text, "status": m.status, "effect_points": m.effect,
                "low": m.low, "high": m.high, "level": m.level, "naive_points": m.naive,
                "naive_low": m.naive_low, "naive_high": m.naive_high,
                "accounts": m.units, "treated": m.treated, "untreated": m.untreated,
                "trimmed": m.trimmed, "words": " ".join(m.lines),
            }
            for m in measured
        ],
        columns=["play", "text", "status", "effect_points", "low", "high", "level",
                 "naive_points", "naive_low", "naive_high", "accounts", "treated",
                 "untreated", "trimmed", "words"],
    )  # fmt: skip


def check_measurable(tables: Mapping[str, object], label: str) -> None:
    """Exit 2 (a ContractError) when the data or the model cannot measure plays."""
    if "activities" not in tables:
        raise ContractError(NO_ACTIVITIES)
    if label != "renewal":
        raise ContractError(NOT_RENEWAL)


def check_units(units: PlayUnits, training: pd.DataFrame, plays: PlayConfig) -> None:
    """Exit 2 (a ContractError) when no renewal was seen at ``plays.lead_days``."""
    if units.frame.empty:
        raise ContractError(NO_UNITS.format(lead=plays.lead_days, snapshots=f"{len(training):,}"))


def units_table(
    units: PlayUnits, effects: Sequence[PlayEffect], measured: Sequence[MeasuredPlay]
) -> pd.DataFrame:
    """The renewals measured, for an audit: ids, outcome, covariates and treatments, and
    per play ``overlap__<key>``: 1 when the renewal is among those the estimate averages
    over (its treated and the comparable untreated), 0 when trimmed, missing when the
    renewal is not in that play's comparison (it got another play)."""
    frame = units.frame.copy()
    for m, effect in zip(measured, effects, strict=True):
        column = play_column(m.key)
        compared = ((frame[column] == 1) | (frame["any_play"] == 0)).to_numpy()
        flags = pd.Series(pd.NA, index=frame.index, dtype="Int8")
        if effect.overlap is not None:
            flags[compared] = effect.overlap.astype("int8")
        frame[f"overlap__{m.key}"] = flags
    return frame
