"""Time-ordered folds: the cut-offs, the purged training rows and the validation rows.

The rule, for a cut-off ``c`` (midnight UTC) and a purge of ``g`` days (``None``: none beyond
each row's own label window)::

    train:    label_known_at < c   and   as_of < c - g
    validate: c <= as_of < next cut-off   and   label_known_at <= data end

A training row's label window ``[as_of, label_known_at]`` therefore ends before the
validation period starts, which is what a model trained at ``c`` and used from then on
would have had. Validation rows whose outcome is not yet known at the data end are
dropped, so the latest folds hold only the shorter lead times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class Fold:
    """One cut-off with boolean masks over the rows of the frame it was cut from."""

    name: str
    cutoff: pd.Timestamp
    until: pd.Timestamp
    train: np.ndarray
    valid: np.ndarray


def data_end(frame: pd.DataFrame) -> pd.Timestamp:
    """The end of the outcomes: the latest ``label_known_at`` of a labelled row."""
    known = frame.loc[frame["label"].notna(), "label_known_at"]
    if known.empty:
        raise ValueError(
            "the training set has no labelled rows (column 'label' is empty); "
            "a model needs outcomes: check the data's date range and the label settings"
        )
    return known.max()


def train_mask(frame: pd.DataFrame, cutoff: pd.Timestamp, purge_days: int | None) -> np.ndarray:
    """Rows a model trained at ``cutoff`` may learn from (see the module docstring)."""
    ok = frame["label"].notna() & (frame["label_known_at"] < cutoff)
    if purge_days:
        ok &= frame["as_of"] < cutoff - purge_days * DAY
    return ok.to_numpy()


def valid_mask(
    frame: pd.DataFrame, cutoff: pd.Timestamp, until: pd.Timestamp, end: pd.Timestamp
) -> np.ndarray:
    """Snapshots taken in ``[cutoff, until)`` whose label is known by ``end``."""
    ok = (
        frame["label"].notna()
        & (frame["as_of"] >= cutoff)
        & (frame["as_of"] < until)
        & (frame["label_known_at"] <= end)
    )
    return ok.to_numpy()


def cutoffs(end: pd.Timestamp, k: int, step_days: int) -> list[pd.Timestamp]:
    """``k`` cut-offs ``step_days`` apart, the last one ``step_days`` before ``end``, oldest first.

    With the defaults (k=4, 91 days) they are quarterly over the last year of outcomes.
    """
    last = (end - step_days * DAY).normalize()
    return [last - (k - 1 - i) * step_days * DAY for i in range(k)]


def time_folds(
    frame: pd.DataFrame,
    k: int,
    step_days: int,
    purge_days: int | None = None,
    end: pd.Timestamp | None = None,
) -> list[Fold]:
    """Rolling-origin folds over the last ``k`` cut-offs; folds without rows are dropped.

    Each fold validates on the snapshots up to the next cut-off (the last one: up to the
    data end), so folds do not overlap and their rows can be pooled.
    """
    end = data_end(frame) if end is None else end
    cuts = cutoffs(end, k, step_days)
    bounds = [*cuts[1:], end + DAY]
    folds = []
    for cut, until in zip(cuts, bounds, strict=True):
        fold = Fold(
            name=cut.strftime("%Y-%m-%d"),
            cutoff=cut,
            until=until,
            train=train_mask(frame, cut, purge_days),
            valid=valid_mask(frame, cut, until, end),
        )
        if fold.train.any() and fold.valid.any():
            folds.append(fold)
    if not folds:
        raise ValueError(
            f"no time-ordered fold has both training and validation rows (k={k}, "
            f"step_days={step_days}, purge_days={purge_days}, outcomes up to {end:%Y-%m-%d}); "
            "the history is too short: lower backtest_folds/tune_folds or step_days"
        )
    return folds


def latest_split(
    frame: pd.DataFrame, share: float, purge_days: int | None = None
) -> tuple[np.ndarray, np.ndarray, pd.Timestamp]:
    """Split the labelled rows at the day after which the latest ``share`` of snapshots fall.

    Returns the training mask, the held-out mask (snapshots on or after the cut-off) and the
    cut-off. Used to fit a calibrator on out-of-time rows the trees never saw.
    """
    labelled = frame["label"].notna()
    as_of = frame.loc[labelled, "as_of"]
    # The quantile of timestamps is a timestamp (the stubs say float).
    cut = pd.Timestamp(as_of.quantile(1 - share)).normalize()  # type: ignore[arg-type]
    if cut <= as_of.min():
        cut = as_of.min() + DAY
    held = (labelled & (frame["as_of"] >= cut)).to_numpy()
    return train_mask(frame, cut, purge_days), held, cut
