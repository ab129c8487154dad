"""Population stability of the main features between training and scoring."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: PSI above these reads "watch" and "drift" (the usual credit-scoring rule of thumb).
WATCH, DRIFT = 0.1, 0.25
_EPS = 1e-4


def baseline(frame: pd.DataFrame, columns: Sequence[str], bins: int = 10) -> dict[str, dict]:
    """Decile edges and the share of training rows per bin (missing values: own bin)."""
    out = {}
    for c in columns:
        x = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float)
        finite = x[~np.isnan(x)]
        if finite.size == 0:
            continue
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1))[1:-1])
        out[c] = {"edges": edges.tolist(), "shares": _shares(x, edges).tolist()}
    return out


def _shares(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    missing = np.isnan(x)
    idx = np.searchsorted(edges, x[~missing], side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(float)
    counts = np.append(counts, missing.sum())
    return counts / max(len(x), 1)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index: sum((a - e) * ln(a / e)) over bins."""
    e = np.clip(np.asarray(expected, float), _EPS, None)
    a = np.clip(np.asarray(actual, float), _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def drift_table(frame: pd.DataFrame, base: dict[str, dict], labels: dict[str, str]) -> pd.DataFrame:
    """PSI of each baseline feature in ``frame``, with a status: ok, watch or drift."""
    rows = []
    for c, b in base.items():
        if c not in frame:
            continue
        x = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float)
        value = psi(np.asarray(b["shares"]), _shares(x, np.asarray(b["edges"])))
        status = "drift" if value > DRIFT else "watch" if value > WATCH else "ok"
        rows.append({"feature": c, "label": labels.get(c, c), "psi": value, "status": status})
    table = pd.DataFrame(rows, columns=["feature", "label", "psi", "status"])
    return table.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)
