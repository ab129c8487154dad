"""The champion gate: does a newly trained model take over from the current champion?

Champion and challenger are compared on *identical rows*, paired: the difference of their
ROC AUC and of their Brier score on the same backtest rows, with a bootstrap interval that
resamples accounts (:mod:`models.uncertainty`). Figures saved from two different backtests
(other months, other churn rates) are never compared.

The rule (:data:`GATE_RULE`): the challenger replaces the champion only when, on some
comparison, it is better beyond doubt (the interval of the difference lies wholly on its
side for ROC AUC or for Brier) and on none worse beyond doubt; everything else is a tie,
and a tie keeps the champion. A first model becomes champion only when it ranks its own
backtest rows better than the hand-weighted health score and the logistic baseline.
``force`` promotes whatever the figures say, and the decision says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from models.metrics import brier, roc_auc
from models.uncertainty import Interval, bootstrap_many

Verdict = Literal["better", "worse", "tie"]
GATE_RULE = (
    "Champion and challenger are scored on identical backtest rows. The challenger replaces "
    "the champion only when it is better beyond doubt on at least one comparison (the "
    "{level:.0%} bootstrap interval of the paired difference in ROC AUC or in Brier score, "
    "resampling accounts, lies wholly on the challenger's side) and worse beyond doubt on "
    "none; otherwise it is a tie and the champion stays. A first model becomes champion only "
    "when its backtest ROC AUC is above both the hand-weighted health score's and the "
    "logistic baseline's on the same rows. --force overrides, and is recorded."
)


@dataclass(frozen=True)
class Comparison:
    """The challenger against one opponent on identical rows, paired.

    ``auc`` and ``brier`` are challenger minus opponent (for Brier, lower is better, so a
    negative difference favours the challenger); ``brier`` is ``None`` when the opponent's
    score is not a probability.
    """

    name: str
    rows: int
    accounts: int
    churned: int
    challenger_auc: float
    opponent_auc: float
    auc: Interval
    brier: Interval | None

    @property
    def verdict(self) -> Verdict:
        """better / worse beyond doubt, else tie (undefined intervals are ties)."""
        worse = self.auc.high < 0 or (self.brier is not None and self.brier.low > 0)
        better = self.auc.low > 0 or (self.brier is not None and self.brier.high < 0)
        if worse:
            return "worse"
        return "better" if better else "tie"

    def text(self) -> str:
        """One line: the rows, the two AUCs and both differences with their intervals."""
        parts = [
            f"{self.name}: {self.rows:,} snapshots of {self.accounts:,} accounts "
            f"({self.churned:,} churned); ROC AUC {self.challenger_auc:.3f} vs "
            f"{self.opponent_auc:.3f}, "
            f"difference {_signed(self.auc)}"
        ]
        if self.brier is not None:
            parts.append(f"Brier difference {_signed(self.brier, 4)}")
        return ", ".join(parts) + f": {self.verdict}"


def _signed(iv: Interval, digits: int = 3) -> str:
    fmt = f"{{:+.{digits}f}}"
    return iv.text(fmt)


def compare(
    name: str,
    y: npt.ArrayLike,
    challenger: npt.ArrayLike,
    opponent: npt.ArrayLike,
    accounts: npt.ArrayLike,
    *,
    probabilities: bool = True,
    n_boot: int = 500,
    level: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Paired differences (challenger minus opponent) of ROC AUC and, for two probabilities,
    Brier score on the same rows, with bootstrap intervals resampling ``accounts``."""
    y, a, b = (np.asarray(v, float) for v in (y, challenger, opponent))
    stats = {"auc": lambda w: roc_auc(y, a, w) - roc_auc(y, b, w)}
    if probabilities:
        stats["brier"] = lambda w: brier(y, a, w) - brier(y, b, w)
    ivs = bootstrap_many(stats, accounts, n_boot=n_boot, level=level, seed=seed)
    return Comparison(
        name=name,
        rows=int(y.size),
        accounts=len(set(np.asarray(accounts, dtype=object).tolist())),
        churned=int(y.sum()),
        challenger_auc=float(roc_auc(y, a)),
        opponent_auc=float(roc_auc(y, b)),
        auc=ivs["auc"],
        brier=ivs.get("brier"),
    )


@dataclass(frozen=True)
class GateDecision:
    """Whether the challenger becomes the champion, why, and the comparisons behind it."""

    promote: bool
    forced: bool
    reason: str
    comparisons: tuple[Comparison, ...] = field(default=())


def _forced(decision: GateDecision, force: bool) -> GateDecision:
    if not force or decision.promote:
        return decision
    return GateDecision(
        True, True, f"FORCED (--force): promoted although {decision.reason}",
        decision.comparisons,
    )  # fmt: skip


def first_model_gate(versus_baselines: Sequence[Comparison], force: bool = False) -> GateDecision:
    """A first model is champion only when it out-ranks every baseline on its backtest."""
    comps = tuple(versus_baselines)
    losing = [c for c in comps if not c.challenger_auc > c.opponent_auc]
    details = "; ".join(c.text() for c in comps)
    if not comps:
        decision = GateDecision(False, False, "no baseline could be scored to compare with")
    elif losing:
        names = " and ".join(c.name for c in losing)
        decision = GateDecision(
            False, False,
            f"the first model does not beat the {names} on its own backtest ({details}); it "
            "is registered without the champion alias",
            comps,
        )  # fmt: skip
    else:
        decision = GateDecision(
            True, False,
            "first model, and its backtest ROC AUC is above every baseline's on the same rows "
            f"(for a first model the estimates decide; with their intervals: {details})",
            comps,
        )  # fmt: skip
    return _forced(decision, force)


def champion_gate(
    comparisons: Sequence[Comparison],
    champion_version: str,
    force: bool = False,
    unavailable: str = "",
) -> GateDecision:
    """Promote a challenger that is better than champion ``champion_version`` beyond doubt
    on some comparison and worse on none (see :data:`GATE_RULE`); a tie keeps the champion.

    ``unavailable`` says why a comparison could not be made (shown when none could).
    """
    comps = tuple(comparisons)
    details = "; ".join(c.text() for c in comps)
    verdicts = [c.verdict for c in comps]
    if not comps:
        decision = GateDecision(
            False, False,
            f"no comparison with champion v{champion_version} on identical rows was possible "
            f"({unavailable or 'nothing to compare'}); the champion stays",
        )  # fmt: skip
    elif "worse" in verdicts:
        decision = GateDecision(
            False, False, f"worse than champion v{champion_version} ({details})", comps
        )
    elif "better" in verdicts:
        decision = GateDecision(
            True, False, f"better than champion v{champion_version} ({details})", comps
        )
    else:
        decision = GateDecision(
            False, False,
            f"a tie with champion v{champion_version}, which stays ({details})",
            comps,
        )  # fmt: skip
    return _forced(decision, force)
