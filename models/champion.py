"""The champion gate: does a newly trained model take over from the current champion?"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from models.config import ModelConfig

#: The backtest metrics the gate compares (pooled over folds, lead times and segments).
GATE_METRICS = ("roc_auc", "brier")


@dataclass(frozen=True)
class GateDecision:
    """Whether the challenger becomes the champion, and why, in one sentence."""

    promote: bool
    forced: bool
    reason: str


def champion_gate(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    cfg: ModelConfig,
    force: bool = False,
) -> GateDecision:
    """Promote unless the challenger's backtest is worse than the champion's beyond tolerance.

    Worse means ROC AUC lower by more than ``cfg.champion_max_auc_drop`` or Brier score
    higher by more than ``cfg.champion_max_brier_rise``. With no champion the challenger is
    promoted; ``force`` promotes whatever the metrics say. A champion without recorded
    metrics (logged by hand) can only be replaced with ``force``.
    """
    auc, brier = float(challenger["roc_auc"]), float(challenger["brier"])
    if champion is None:
        return GateDecision(True, False, "no champion yet: the first model becomes champion")
    if any(k not in champion for k in GATE_METRICS):
        if force:
            return GateDecision(True, True, "forced: the champion has no backtest metrics")
        return GateDecision(
            False, False,
            "the champion has no recorded backtest metrics to compare with; use force to "
            "replace it",
        )  # fmt: skip
    old_auc, old_brier = float(champion["roc_auc"]), float(champion["brier"])
    auc_ok = auc >= old_auc - cfg.champion_max_auc_drop
    brier_ok = brier <= old_brier + cfg.champion_max_brier_rise
    figures = (
        f"ROC AUC {auc:.4f} vs {old_auc:.4f} (may drop {cfg.champion_max_auc_drop}), "
        f"Brier {brier:.4f} vs {old_brier:.4f} (may rise {cfg.champion_max_brier_rise})"
    )
    if auc_ok and brier_ok:
        return GateDecision(True, False, f"not worse than the champion: {figures}")
    if force:
        return GateDecision(True, True, f"forced although worse than the champion: {figures}")
    return GateDecision(False, False, f"worse than the champion: {figures}")
