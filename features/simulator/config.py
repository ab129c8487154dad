"""Typed, frozen configuration of the simulated world.

Every knob that changes the world lives here, so that one ``SimConfig`` (plus its seed)
names one world exactly. The numbers below the models are the documented defaults of the
mechanisms; ``docs/simulator.md`` explains each of them.
"""

from __future__ import annotations

from datetime import date

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

    ``logit = intercept + sum_k weight_k * x_k + noise``, ``noise ~ Normal(0, noise_sd)``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    intercept: float = -2.8
    low_key_usage: float = 0.85
    low_utilisation: float = 0.45
    champion_left: float = 1.1
    support_pain: float = 0.55
    overdue_invoices: float = 0.7
    watermelon: float = 0.9
    low_health: float = 0.2
    noise_sd: float = 0.3


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
        after it, and terms ending at or after it have no outcome yet.
    chunk_accounts
        Accounts simulated together (memory bound). Part of the world's identity: a
        different value gives a different (equally valid) world.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    accounts: int = Field(default=1000, ge=1)
    seed: int = Field(default=7, ge=0)
    start: date = date(2023, 1, 1)
    end: date = date(2026, 1, 1)
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
    chunk_accounts: int = Field(default=2000, ge=1)

    @model_validator(mode="after")
    def _check(self) -> SimConfig:
        if (self.end - self.start).days < 400:
            raise ValueError(
                f"end ({self.end}) must be at least 400 days after start ({self.start}): "
                "terms are annual and churn is decided at the end of a term."
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
