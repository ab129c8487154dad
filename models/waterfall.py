"""The SHAP waterfall of one account: from the average account to this one, driver by driver."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import rcParams
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from features.catalog import Feature
from models.palette import palette_png

#: A driver's label on at most three lines of 40 characters: a long event name from the
#: user's data would otherwise squeeze the bars and push the axis label off the picture.
LABEL_LINES = textwrap.TextWrapper(width=40, max_lines=3, placeholder=" ...")


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
    """A PNG waterfall (256-colour palette) of one row's contributions (log-odds) with the
    largest ``top`` shown.

    The axis is in log-odds, labelled with the probabilities at the start and the end, since
    SHAP values add up in log-odds, not in probability.
    """
    labels = {f.name: f.label for f in features}
    base = float(contrib["bias"])
    parts = contrib.drop("bias")
    order = parts.abs().sort_values(ascending=False, kind="stable").index
    shown = list(order[:top])
    rest = float(parts.drop(shown).sum())
    names = [LABEL_LINES.fill(f"{labels.get(n, n)} = {_fmt(values.get(n))}") for n in shown]
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
    canvas = FigureCanvasAgg(fig)
    _fit_margins(fig, ax, canvas.get_renderer())
    canvas.draw()
    # A waterfall is a few flat colours and their anti-aliasing: a 256-colour palette shows
    # the same picture at a third of the size (what the report did to each picture after
    # matplotlib had encoded it; encoding once saves 20-30 ms a picture).
    return palette_png(Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()))


def _fit_margins(fig: Figure, ax: Axes, renderer: RendererAgg) -> None:
    """Margins that hold the chart's texts, measured by ``renderer``, with tight_layout's
    gap to the edge (1.08 times the font size).

    What ``fig.tight_layout()`` gives for this chart, from one measure of each text: the
    tight layout measured every artist of the axes again (a third of a picture's time, 50
    pictures per ``churn score``). Sizes do not depend on where a text is. The drivers'
    values need no margin: they sit in the axes' own padding (15 % of the range, at least
    50 pixels), wider than a value's text.
    """
    width, height = fig.bbox.width, fig.bbox.height
    px = fig.dpi / 72  # pixels per point
    pad = 1.08 * float(rcParams["font.size"]) * px

    def size(texts: Sequence[Text], along: str) -> float:
        shown = [t.get_window_extent(renderer) for t in texts if t.get_text()]
        return max((getattr(b, along) for b in shown), default=0.0)

    # The tick marks (drawn outward) and the gap to their labels, as matplotlib's settings
    # give them.
    x_ticks = (float(rcParams["xtick.major.size"]) + float(rcParams["xtick.major.pad"])) * px
    y_ticks = (float(rcParams["ytick.major.size"]) + float(rcParams["ytick.major.pad"])) * px
    left = pad + size(ax.get_yticklabels(), "width") + y_ticks
    bottom = (pad + size([ax.xaxis.label], "height") + ax.xaxis.labelpad * px
              + size(ax.get_xticklabels(), "height") + x_ticks)  # fmt: skip
    top = pad + size([ax.title], "height") + float(rcParams["axes.titlepad"]) * px
    right = pad + size(ax.get_xticklabels(), "width") / 2  # the last tick's label, centred
    fig.subplots_adjust(left / width, bottom / height, 1 - right / width, 1 - top / height)


def _fmt(v: object) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "none"
    if isinstance(v, float):
        return f"{v:,.2f}".rstrip("0").rstrip(".")
    return str(v)
