"""Typed, frozen configuration of the simulated world.

Every knob that changes the world lives here, so that one ``SimConfig`` (plus its seed)
names one world exactly. The numbers below the models are the documented defaults of the
mechanisms; ``docs/simulator.md`` explains each of them.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

KEY_EVENTS: tuple[str, ...] = (
    "report_exported",
    "workflow_created",
    "integration_synced",
    "dashboard_shared",
)
"""Events that carry value for the customer: the default key features of the pipeline."""

VANITY_EVENTS: tuple[str, ...] = ("login", "dashboard_viewed", "page_viewed")
"""Events emitted in proportion to active users whatever the depth of use."""

SEGMENTS: tuple[str, ...] = ("SMB", "Mid-Market", "Enterprise")

TERM_MONTHS: tuple[int, ...] = (1, 3, 6, 12)
"""Contract term lengths the simulator offers, in months."""


def min_window_days(term_months: int) -> int:
    """Fewest days ``end - start`` may span for terms of ``term_months`` months.

    Annual terms need one year: the pre-existing customers (term begun 0-270 days before
    ``start``) then all renew inside the window, each with a full 13-week behaviour window.
    Shorter terms need one term plus 30 days (a term is at most ``31 * term_months``
    days), and at least 180 days, so that most renewals read a full 13-week window and
    every account that joins in the first 30 days reaches a term end.
    """
    if term_months == 12:
        return 365
    return max(180, 31 * term_months + 30)


class Mechanisms(BaseModel):
    """Switches for the planted mechanisms; each one, when off, removes its effect.

    See ``docs/simulator.md`` for what each switch does to the world.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    usage_drift: bool = True
    vanity_events: bool = True
    watermelon: bool = True
    champion_departure: bool = True
    under_utilisation: bool = True
    support_pain: bool = True
    nps_bias: bool = True
    sentiment_lag: bool = True
    late_invoices: bool = True
    expansions: bool = True


class ChurnWeights(BaseModel):
    """Weights of the churn logit at each term end (``docs/simulator.md``, "Outcome").

    ``logit = intercept + intercept_per_year * years + sum_k weight_k * x_k + noise`` with
    ``noise ~ Normal(0, noise_sd)`` and ``years = (end_date - start).days / 365.25`` (the
    term's end date, measured from ``SimConfig.start``). ``sigmoid(logit)`` is an annual
    churn probability; a term of ``m`` months churns with ``1 - (1 - sigmoid(logit)) **
    (m / 12)``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    intercept: float = -2.8
    #: Base-rate drift: the intercept rises by this much per year since ``start``
    #: (negative: churn falls over time). 0 keeps the base rate stable.
    intercept_per_year: float = 0.0
    low_key_usage: float = 0.85
    low_utilisation: float = 0.45
    champion_left: float = 1.1
    support_pain: float = 0.55
    overdue_invoices: float = 0.7
    watermelon: float = 0.9
    low_health: float = 0.2
    noise_sd: float = 0.3


PLAY_KEYS: tuple[str, ...] = ("exec_sponsor", "support", "checkin_email", "renewal_discount")
"""The CS plays the simulator plants, in the order of the truth's ``effect_<key>`` columns."""


class PlayAssignment(BaseModel):
    """How CSMs choose which terms get a play (``docs/simulator.md``, "CS plays").

    At the decision day ``d`` the probability of any play is ``sigmoid(intercept +
    sentiment_k + log10_arr * log10(arr / arr_ref) + open_ticket * ticket)``, where
    ``sentiment_k`` is the coefficient of the CSM's latest sentiment recorded before ``d``
    (green 0) and ``ticket`` is 1 when an urgent or high-priority ticket is open at ``d``.
    A treated term with an open ticket gets ``support`` with probability
    ``support_if_ticket``; otherwise the play is drawn among the others with weights
    ``exp(exec_sponsor_log10_arr * log10(arr / arr_ref))`` for ``exec_sponsor`` and the
    fixed weights below for the rest.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    intercept: float = -0.8
    yellow: float = 1.6
    red: float = 3.0
    no_sentiment: float = 0.6
    log10_arr: float = 0.8
    arr_ref: float = Field(default=20_000.0, gt=0.0)
    open_ticket: float = 1.2
    support_if_ticket: float = Field(default=0.8, ge=0.0, le=1.0)
    exec_sponsor_log10_arr: float = 1.2
    checkin_email_weight: float = Field(default=1.0, ge=0.0)
    renewal_discount_weight: float = Field(default=0.7, ge=0.0)


class PlayEffects(BaseModel):
    """CS plays with known true effects (``docs/simulator.md``, "CS plays").

    Effects are additive on the term's churn probability (probability units: -0.08 is
    8 points fewer churners), applied at the renewal decision and clipped to
    ``[0.001, 0.999]``; ``support`` acts only when an urgent or high-priority ticket is
    open at the decision day. With ``enabled=False`` no play is run and the world is the
    one without plays (no activities; the truth still gives each play's hypothetical
    effect).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    exec_sponsor: float = Field(default=-0.08, ge=-1.0, le=1.0)
    support: float = Field(default=-0.12, ge=-1.0, le=1.0)
    checkin_email: float = Field(default=0.0, ge=-1.0, le=1.0)
    renewal_discount: float = Field(default=0.05, ge=-1.0, le=1.0)
    #: The CSM decides this many days before each renewal (or 7 days into a shorter term).
    decision_lead_days: int = Field(default=120, ge=30)
    #: ``renewal_discount`` is run in the last this many days before the renewal.
    discount_last_days: int = Field(default=21, ge=1)
    #: The other plays are run from the decision day to this many days before the renewal.
    others_stop_days: int = Field(default=30, ge=1)
    assignment: PlayAssignment = PlayAssignment()

    def effect(self, key: str) -> float:
        """The planted effect of the play ``key`` (probability units)."""
        return float(getattr(self, key))


class SimConfig(BaseModel):
    """The whole description of a simulated B2B SaaS world.

    Parameters
    ----------
    accounts
        Number of customer accounts. Events scale linearly (about 2,500 per account over
        three years).
    seed
        Seed of every random draw; the same config gives byte-identical output files.
    start, end
        The simulated window. ``end`` is the "today" of the world: nothing is dated at or
        after it, and terms ending at or after it have no outcome yet. It spans at least
        :func:`min_window_days` days (365 for annual terms).
    term_months
        Length of every contract term in months (1, 3, 6 or 12). Terms renew on the same
        day of the month ``term_months`` months later (the 1st of the next month when that
        month is too short) and the churn formula decides at every term end.
    plays
        CS plays with known true effects on the churn probability, and how CSMs assign
        them (:class:`PlayEffects`); ``PlayEffects(enabled=False)`` switches them off.
    chunk_accounts
        Accounts simulated together (memory bound). Part of the world's identity: a
        different value gives a different (equally valid) world.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    accounts: int = Field(default=1000, ge=1)
    seed: int = Field(default=7, ge=0)
    start: date = date(2023, 1, 1)
    end: date = date(2026, 1, 1)
    term_months: Literal[1, 3, 6, 12] = 12
    mechanisms: Mechanisms = Mechanisms()
    churn: ChurnWeights = ChurnWeights()
    key_events: tuple[str, ...] = KEY_EVENTS
    vanity_events: tuple[str, ...] = VANITY_EVENTS
    segment_shares: tuple[float, float, float] = (0.6, 0.3, 0.1)
    preexisting_share: float = Field(default=0.3, ge=0.0, le=1.0)
    watermelon_share: float = Field(default=0.08, ge=0.0, le=1.0)
    under_utilised_share: float = Field(default=0.2, ge=0.0, le=1.0)
    accounts_per_csm: int = Field(default=60, ge=1)
    #: Mean events per session: each simulated action is emitted as a burst of
    #: ``1 + Poisson(session_events - 1)`` events of the same name, a minute or two apart.
    #: 1 keeps one event per action (the default worlds); product analytics typically log
    #: several events per visit, which large benchmark worlds use.
    session_events: float = Field(default=1.0, ge=1.0)
    plays: PlayEffects = PlayEffects()
    chunk_accounts: int = Field(default=2000, ge=1)

    @model_validator(mode="after")
    def _check(self) -> SimConfig:
        span, need = (self.end - self.start).days, min_window_days(self.term_months)
        if span < need:
            rule = (
                "one year for annual terms"
                if self.term_months == 12
                else "one term plus 30 days, and at least 180 days"
            )
            raise ValueError(
                f"end ({self.end}) is {span} days after start ({self.start}); with "
                f"term_months={self.term_months} the window needs at least {need} days "
                f"({rule}), so that renewals fall inside it. Move end to "
                f"{self.start + timedelta(days=need)} or later, start "
                "earlier, or choose shorter terms."
            )
        if len(self.vanity_events) != len(VANITY_EVENTS):
            raise ValueError(
                f"vanity_events needs {len(VANITY_EVENTS)} names (login, dashboard view, "
                f"page view roles); got {self.vanity_events!r}."
            )
        if not self.key_events:
            raise ValueError("key_events must name at least one event.")
        names = self.key_events + self.vanity_events
        if len(set(names)) != len(names):
            raise ValueError(f"event names must be distinct; got {names!r}.")
        if abs(sum(self.segment_shares) - 1.0) > 1e-6:
            raise ValueError(f"segment_shares must sum to 1; got {self.segment_shares!r}.")
        return self
