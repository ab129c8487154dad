"""Bootstrap intervals that resample accounts, not rows.

The snapshots of one account (several lead times before a renewal, several renewals) are
not independent, so resampling rows would make every interval too narrow. A replicate
draws as many accounts as there are, with replacement, and weights each row by the number
of times its account was drawn (the cluster bootstrap; Field & Welsh 2007, "Bootstrapping
clustered data"). The statistic is computed by the metric functions of
:mod:`models.metrics` with those counts as weights, many replicates at once, so an interval
and the figure it brackets always come from one definition.

Intervals are percentile intervals. A paired difference (challenger minus champion on the
same rows) uses the same replicate for both sides, which is what makes it paired.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

#: Replicates drawn per batch: a (batch, rows) weight matrix stays small.
BATCH = 50


@dataclass(frozen=True)
class Interval:
    """A figure with its bootstrap interval (``level`` is e.g. 0.95)."""

    estimate: float
    low: float
    high: float
    level: float

    def text(self, fmt: str = "{:.3f}") -> str:
        """E.g. "0.781 [0.752, 0.807]"; "–" when the figure is undefined."""
        if not np.isfinite(self.estimate):
            return "–"
        if not (np.isfinite(self.low) and np.isfinite(self.high)):
            return fmt.format(self.estimate)
        return f"{fmt.format(self.estimate)} [{fmt.format(self.low)}, {fmt.format(self.high)}]"


def group_codes(groups: npt.ArrayLike) -> np.ndarray:
    """Integer codes of the clusters (accounts); a missing id is a cluster of its own row."""
    codes, _ = pd.factorize(pd.Series(groups), use_na_sentinel=True)
    missing = codes < 0
    if missing.any():
        codes = codes.copy()
        codes[missing] = codes.max() + 1 + np.arange(int(missing.sum()))
    return codes


def replicate_weights(codes: np.ndarray, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Batches of (replicates, rows) weights: how often each row's account was drawn."""
    n_groups = int(codes.max()) + 1 if codes.size else 0
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_boot:
        size = min(BATCH, n_boot - done)
        counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / max(n_groups, 1)), size=size)
        yield counts[:, codes].astype(float)
        done += size


def bootstrap(
    stat: Callable[[np.ndarray | None], float | np.ndarray],
    groups: npt.ArrayLike,
    *,
    n_boot: int,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """``stat(None)`` with the percentile interval of ``stat(weights)`` over replicates.

    ``stat`` takes ``None`` (the observed rows) or a (replicates, rows) weight matrix and
    returns one value per replicate, like the metrics of :mod:`models.metrics`. No interval
    (NaN bounds) when the figure is undefined or most replicates are (one class left).
    """
    return bootstrap_many({"stat": stat}, groups, n_boot=n_boot, level=level, seed=seed)["stat"]


def bootstrap_many(
    stats: dict[str, Callable[[np.ndarray | None], float | np.ndarray]],
    groups: npt.ArrayLike,
    *,
    n_boot: int,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """:func:`bootstrap` of several statistics on the same replicates (one draw for all)."""
    codes = group_codes(groups)
    estimates = {k: float(np.asarray(f(None)).reshape(-1)[0]) for k, f in stats.items()}
    draws: dict[str, list[np.ndarray]] = {k: [] for k in stats}
    if n_boot > 0 and codes.size:
        for w in replicate_weights(codes, n_boot, seed):
            for k, f in stats.items():
                if np.isfinite(estimates[k]):
                    draws[k].append(np.asarray(f(w), float).reshape(-1))
    tail = (1.0 - level) / 2.0
    out = {}
    for k, est in estimates.items():
        d = np.concatenate(draws[k]) if draws[k] else np.empty(0)
        d = d[np.isfinite(d)]
        if not np.isfinite(est) or d.size < max(10, n_boot // 2):
            out[k] = Interval(est, float("nan"), float("nan"), level)
            continue
        low, high = np.quantile(d, [tail, 1.0 - tail])
        out[k] = Interval(est, float(low), float(high), level)
    return out
