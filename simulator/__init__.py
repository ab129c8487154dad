"""A deterministic B2B SaaS world: the eight contract tables plus the ground truth.

>>> from simulator import SimConfig, simulate, write_world
>>> world = simulate(SimConfig(accounts=200, seed=7))  # doctest: +SKIP
>>> write_world(world, Path("data/sim"))  # doctest: +SKIP

See ``docs/simulator.md`` for the mechanisms, their parameters and the churn formula.
"""

from simulator.config import (
    KEY_EVENTS,
    PLAY_KEYS,
    VANITY_EVENTS,
    ChurnWeights,
    Mechanisms,
    PlayAssignment,
    PlayEffects,
    SimConfig,
)
from simulator.outcome import DRIVERS
from simulator.plays import PLAY_TEXTS
from simulator.world import TABLES, World, simulate
from simulator.write import truth_path, write_world

__all__ = [
    "DRIVERS",
    "KEY_EVENTS",
    "PLAY_KEYS",
    "PLAY_TEXTS",
    "TABLES",
    "VANITY_EVENTS",
    "ChurnWeights",
    "Mechanisms",
    "PlayAssignment",
    "PlayEffects",
    "SimConfig",
    "World",
    "simulate",
    "truth_path",
    "write_world",
]
