"""A deterministic B2B SaaS world: the seven contract tables plus the ground truth.

>>> from features.simulator import SimConfig, simulate, write_world
>>> world = simulate(SimConfig(accounts=200, seed=7))  # doctest: +SKIP
>>> write_world(world, Path("data/sim"))  # doctest: +SKIP

See ``docs/simulator.md`` for the mechanisms, their parameters and the churn formula.
"""

from features.simulator.config import (
    KEY_EVENTS,
    VANITY_EVENTS,
    ChurnWeights,
    Mechanisms,
    SimConfig,
)
from features.simulator.outcome import DRIVERS
from features.simulator.world import TABLES, World, simulate
from features.simulator.write import truth_path, write_world

__all__ = [
    "DRIVERS",
    "KEY_EVENTS",
    "TABLES",
    "VANITY_EVENTS",
    "ChurnWeights",
    "Mechanisms",
    "SimConfig",
    "World",
    "simulate",
    "truth_path",
    "write_world",
]
