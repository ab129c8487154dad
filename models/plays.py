"""Plays: every score leads to an action, routed to the account's CSM.

A play is chosen from the account's top risk driver family through a configurable mapping
(``plays:`` in ``churn.yaml``); its priority is the ARR at stake times the churn
probability, i.e. the expected churned ARR the play could save.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import Field, field_validator

from features.config import Frozen

DEFAULT_PLAYS: dict[str, str] = {
    "breadth": "Seat-activation campaign: invite and onboard the unused seats",
    "depth": "Key-feature training: run a workshop on the workflows they do not use yet",
    "frequency": "Re-engagement call: review goals and usage with the main users",
    "trend": "Usage is falling: book a health check before it becomes a churn",
    "concentration": "Multi-thread the relationship: the account depends on one user",
    "support": "Escalate to the support lead: urgent tickets are open or answered slowly",
    "voice": "Close the loop on the feedback with the unhappy respondents",
    "sentiment": "Account review with the CSM's manager: the CSM flags risk",
    "billing": "Involve finance: invoices are overdue",
    "lifecycle": "Start the renewal conversation early and confirm the decision makers",
    "static": "Review the account's fit and success plan",
}


class PlayConfig(Frozen):
    """Which play each driver family triggers, and the play of a healthy account.

    A team names only the plays it changes; the other families keep the defaults.
    """

    by_family: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PLAYS))
    healthy: str = "No action: keep the regular cadence"

    @field_validator("by_family")
    @classmethod
    def _over_defaults(cls, value: dict[str, str]) -> dict[str, str]:
        return merged(DEFAULT_PLAYS, value)


def choose_play(top_family: str | None, band: str, cfg: PlayConfig) -> str:
    """The play for an account whose strongest risk driver is ``top_family``."""
    if band == "green" or top_family is None:
        return cfg.healthy
    return cfg.by_family.get(top_family, cfg.healthy)


def priority(arr: float | None, probability: float) -> float:
    """Expected churned ARR: ARR at stake x churn probability (0 when ARR is unknown)."""
    if arr is None or (isinstance(arr, float) and math.isnan(arr)):
        return 0.0
    return float(arr) * float(probability)


def merged(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """Team-specific plays on top of the defaults."""
    return {**base, **extra}
