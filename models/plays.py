"""Plays: every score leads to an action, routed to the account's CSM.

A play is chosen from the account's top risk driver family through a configurable mapping
(``plays:`` in ``churn.yaml``); its priority is the ARR at stake times the churn
probability, i.e. the expected churned ARR the play could save.

Every play has a key. The play of a driver family is keyed by the family's name
(``support``, ``billing``, ...); the other plays of the catalogue (``catalogue``) say which
families they address (``addresses``). The ``activities`` table names plays by key or by
text. When training measured a play's effect (:mod:`pipelines.plays`, stored in
``measured``), routing prefers, for an account's top driver family, the addressing play
whose interval lies wholly below zero (fewer churners) with the largest effect; otherwise
the family's own play (``prefer_measured: false`` turns this off).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import Field, field_validator

from features.catalog import FamilyField
from features.config import Frozen

#: Each registered family's own play, by family (declared with the family).
DEFAULT_PLAYS = FamilyField("play")

#: Plays that are not one family's own, by key, and the driver families each addresses.
EXTRA_PLAYS: dict[str, str] = {
    "exec_sponsor": "Executive sponsor call",
    "checkin_email": "Check-in email from the CSM",
    "renewal_discount": "Renewal discount offer",
}
EXTRA_ADDRESSES: dict[str, tuple[str, ...]] = {
    "exec_sponsor": ("sentiment", "concentration", "lifecycle", "trend"),
    "checkin_email": ("frequency", "activities"),
    "renewal_discount": ("lifecycle", "billing"),
}


class MeasuredPlay(Frozen):
    """One play's effect on churn at the next renewal as training measured it.

    Effects are in percentage points of churn probability, treated minus comparable
    untreated (negative: fewer churners); ``naive`` is the raw difference, shown beside it.
    ``status`` is "ok" or why there is no estimate ("too few", "no overlap"); ``lines`` are
    the plain words of :func:`models.play_effects.describe`.
    """

    key: str
    text: str
    status: str
    effect: float | None = None
    low: float | None = None
    high: float | None = None
    level: float = 0.9
    naive: float | None = None
    naive_low: float | None = None
    naive_high: float | None = None
    units: int = 0
    treated: int = 0
    untreated: int = 0
    trimmed: int = 0
    lines: tuple[str, ...] = ()

    @property
    def helps(self) -> bool:
        """The whole interval lies below zero: the play measurably lowers churn."""
        return self.status == "ok" and self.high is not None and self.high < 0


class PlayConfig(Frozen):
    """Which play each driver family triggers, and the play of a healthy account.

    A team names only the plays it changes; the other families keep the defaults.
    """

    by_family: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PLAYS))
    healthy: str = "No action: keep the regular cadence"
    catalogue: dict[str, str] = Field(
        default_factory=lambda: dict(EXTRA_PLAYS),
        description="plays beyond the family plays, by key (the activities table names them)",
    )
    addresses: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: dict(EXTRA_ADDRESSES),
        description="the driver families each catalogue play addresses",
    )
    prefer_measured: bool = Field(
        True, description="route to a play whose measured effect lowers churn, when there is one"
    )
    lead_days: int = Field(
        120, gt=0, description="plays run in this many days before a renewal are measured"
    )
    measured: tuple[MeasuredPlay, ...] = ()

    @field_validator("by_family")
    @classmethod
    def _over_defaults(cls, value: dict[str, str]) -> dict[str, str]:
        return merged(DEFAULT_PLAYS, value)

    @field_validator("catalogue")
    @classmethod
    def _over_extra(cls, value: dict[str, str]) -> dict[str, str]:
        return merged(EXTRA_PLAYS, value)

    @field_validator("addresses")
    @classmethod
    def _over_extra_addresses(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        return {**EXTRA_ADDRESSES, **value}

    def texts(self) -> dict[str, str]:
        """Every play of the catalogue: key -> text (the family plays keyed by family)."""
        return {**self.by_family, **self.catalogue}

    def families_of(self, key: str) -> tuple[str, ...]:
        """The driver families the play ``key`` addresses."""
        own = (key,) if key in self.by_family else ()
        return own + tuple(f for f in self.addresses.get(key, ()) if f != key)

    def preferred(self, family: str) -> str | None:
        """The text of the measured play that lowers churn most among those addressing
        ``family``, or None (no such play, or ``prefer_measured`` is off)."""
        if not self.prefer_measured:
            return None
        texts = self.texts()
        helping = [m for m in self.measured
                   if m.helps and m.key in texts and family in self.families_of(m.key)]  # fmt: skip
        if not helping:
            return None
        best = min(helping, key=lambda m: (m.effect, m.key))
        return texts[best.key]


def choose_play(top_family: str | None, band: str, cfg: PlayConfig) -> str:
    """The play for an account whose strongest risk driver is ``top_family``: the measured
    play that lowers churn most for that family when there is one (:meth:`PlayConfig.preferred`),
    else the family's own play."""
    if band == "green" or top_family is None:
        return cfg.healthy
    return cfg.preferred(top_family) or cfg.by_family.get(top_family, cfg.healthy)


def priority(arr: float | None, probability: float) -> float:
    """Expected churned ARR: ARR at stake x churn probability (0 when ARR is unknown)."""
    if arr is None or (isinstance(arr, float) and math.isnan(arr)):
        return 0.0
    return float(arr) * float(probability)


def merged(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """Team-specific plays on top of the defaults."""
    return {**base, **extra}
