"""The scorers a backtest compares, declared once: the learned model, the baselines, the oracle.

Each is a :class:`models.baselines.Scorer` (name of its risk column, plot label, whether
its risk is a probability or a 0-100 health score). The baselines enter from
:data:`models.baselines.BASELINES`; the model and the oracle (true churn probabilities,
simulations only) are declared here. The backtest's metrics, the plots and the logged
metrics iterate over :data:`SCORERS`, in its order.
"""

from __future__ import annotations

from collections.abc import Iterable

from models.baselines import BASELINES, Scorer

#: The learned model: :class:`models.train.ChurnModel`'s calibrated probability.
MODEL = Scorer("model", "learned model", probabilistic=True)
#: The true churn probability of a simulated world, when the backtest is given it.
ORACLE = Scorer("oracle", "oracle (true probability)", probabilistic=True)

#: Every scorer, in the order tables and plots show them: the model, each baseline, the
#: oracle.
SCORERS: dict[str, Scorer] = {s.name: s for s in (MODEL, *BASELINES.values(), ORACLE)}
#: Each scorer's plot label by name, in registry order (e.g. to rename risk columns).
LABELS: dict[str, str] = {s.name: s.label for s in SCORERS.values()}


def scorers_in(columns: Iterable[str]) -> list[Scorer]:
    """The registered scorers whose risk column is among ``columns``, in registry order."""
    present = set(columns)
    return [s for s in SCORERS.values() if s.name in present]


def declared(name: str) -> Scorer:
    """The declaration of the risk column ``name``; an undeclared column reads as a plain
    ranking (neither a probability nor a health score), labelled by its name."""
    return SCORERS.get(name) or Scorer(name, name)
