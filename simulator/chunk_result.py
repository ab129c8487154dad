"""What the weekly loop of a chunk produces: :class:`ChunkResult` and its column names.

The loop (:mod:`simulator.dynamics`) fills growing column buffers (:class:`Rows`) for the
contracts, tickets and invoices, and weekly arrays from which :mod:`simulator.emit` builds
the other tables. A branch (:mod:`simulator.branch`) reads a result's ``state`` and
``history`` to resume an account where the run left it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


@dataclass
class Rows:
    """Column buffers of a table growing week by week."""

    cols: dict[str, list[npt.NDArray[Any]]] = field(default_factory=dict)

    def add(self, **arrays: npt.NDArray[Any]) -> None:
        for name, arr in arrays.items():
            self.cols.setdefault(name, []).append(arr)

    def done(self, names: tuple[str, ...]) -> dict[str, npt.NDArray[Any]]:
        return {n: np.concatenate(self.cols[n]) if n in self.cols else np.empty(0) for n in names}


@dataclass(frozen=True)
class ChunkResult:
    """Everything one chunk (or one branch of it, see :func:`~simulator.branch.resume_chunk`)
    produced.

    Account indices are local to the chunk (or branch). Rows dated before ``act_from_us``
    or at or after ``act_to_us`` belong to no table. ``state`` and ``history`` keep what a
    branch needs to resume an account where this run left it; ``own_from_week`` is the
    first week whose hidden health is this run's own (0, or the week after the branch
    point).
    """

    reg_counts: npt.NDArray[np.int32]
    champ_counts: npt.NDArray[np.int32]
    wau_reg: npt.NDArray[np.int32]
    pool_lo: npt.NDArray[np.int32]
    pool_n: npt.NDArray[np.int32]
    champ_user: npt.NDArray[np.int32]
    health: npt.NDArray[np.float32]
    alive: npt.NDArray[np.bool_]
    act_from_us: I64
    act_to_us: I64
    contracts: dict[str, npt.NDArray[Any]]
    tickets: dict[str, npt.NDArray[Any]]
    invoices: dict[str, npt.NDArray[Any]]
    state: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    history: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    tickets_raw: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    own_from_week: I64 = field(default_factory=lambda: np.zeros(0, np.int64))


CONTRACT_COLS = (
    "acc",
    "term",
    "start_day",
    "end_day",
    "seats",
    "arr",
    "outcome",
    "p",
    "p_noisy",
    "p_noisy_annual",
    "u_churn",
    "survive",
    "contrib",
    "noise",
    "champion_left_us",
    "mean_health",
)
TICKET_COLS = ("acc", "created_us", "first_response_us", "resolved_us", "priority", "csat")
INVOICE_COLS = ("acc", "issued_us", "due_us", "paid_us", "amount")
OUTCOMES = ("renewed", "expanded", "contracted", "churned")
CHURNED = OUTCOMES.index("churned")
# Per-account state carried from week to week; a churned account's state is frozen at its
# churn (only its hidden health moves on), which is what lets a branch resume it.
STATE_COLS = (
    "health",
    "term",
    "term_start",
    "term_end",
    "seats",
    "arr",
    "started",
    "churned",
    "present",
    "base",
    "last_dep",
    "bad_known_day",
    "bad_count",
    "act_from",
    "act_to",
    "pool_a",
    "health_at_churn",
)
# Weekly histories (accounts x weeks) the churn windows read back.
HISTORY_COLS = ("key_hist", "wau_hist", "pain_hist")
# Weekly arrays (accounts x weeks, or x event kinds) a branch copies from its parent.
WEEKLY_COLS = ("reg_counts", "champ_counts", "wau_reg", "pool_lo", "pool_n", "champ_user")
