"""The SHAP waterfall of one account: from the average account to this one, driver by driver."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from features.catalog import Feature


def _sigmoid(x: float) -> float:
    # The only sigmoid of the models layer, on one float for the axis label. Not
    # scipy.special.expit: it differs from this expression in the last bit for about 2 %
    # of inputs, and models may not import the simulator's (import-linter).
    return float(1.0 / (1.0 + np.exp(-x)))


def waterfall_png(
    contrib: pd.Series,
    features: Sequence[Feature],
    values: pd.Series,
    title: str,
    top: int = 8,
) -> bytes:
    """A PNG waterfall of one row's contributions (log-odds) with the largest ``top`` shown.

    The axis is in log-odds, labelled with the probabilities at the start and the end, since
    SHAP values add up in log-odds, not in probability.
    """
    labels = {f.name: f.label for f in features}
    base = float(contrib["bias"])
    parts = contrib.drop("bias")
    order = parts.abs().sort_values(ascending=False, kind="stable").index
    shown = list(order[:top])
    rest = float(parts.drop(shown).sum())
    names = [f"{labels.get(n, n)} = {_fmt(values.get(n))}" for n in shown]
    deltas = [float(parts[n]) for n in shown]
    if len(order) > top:
        names.append(f"{len(order) - top} other features")
        deltas.append(rest)
    # The Figure API draws without pyplot's global state: no backend switch, safe in
    # notebooks and batch jobs alike.
    fig = Figure(figsize=(8, 0.45 * len(deltas) + 1.6), dpi=90)
    ax = fig.subplots()
    start = base
    for i, d in enumerate(deltas):
        ax.barh(i, d, left=start, color="#c0392b" if d > 0 else "#27864a", height=0.6)
        ax.text(start + d, i, f" {d:+.2f}", va="center", ha="left" if d > 0 else "right",
                fontsize=8)  # fmt: skip
        start += d
    ends = np.cumsum([base, *deltas])
    pad = 0.15 * max(float(np.ptp(ends)), 0.5)
    ax.set_xlim(float(ends.min()) - pad, float(ends.max()) + pad)  # room for the labels
    ax.axvline(base, color="#888", lw=0.8, ls="--")
    ax.axvline(start, color="#333", lw=0.8)
    ax.set_yticks(range(len(deltas)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(
        f"log-odds of churn: average account {_sigmoid(base):.0%} -> this account "
        f"{_sigmoid(start):.0%} (before calibration)\nred raises the risk, green lowers it",
        fontsize=8,
    )
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _fmt(v: object) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "none"
    if isinstance(v, float):
        return f"{v:,.2f}".rstrip("0").rstrip(".")
    return str(v)
