"""Folds: out-of-time where the history allows, accounts held out where it does not.

Out of time (rolling origin). For a cut-off ``c`` (midnight UTC) and a purge of ``g`` days
(``None``: none beyond each row's own label window)::

    train:    label_known_at < c   and   as_of < c - g
    validate: c <= as_of < next cut-off   and   label_known_at <= data end

A training row's label window ``[as_of, label_known_at]`` therefore ends before the
validation period starts, which is what a model trained at ``c`` and used from then on
would have had. Validation rows whose outcome is not yet known at the data end are
dropped, so the latest folds hold only the shorter lead times.

Folds are laid where the labels are: of the ``k`` cut-offs ``step_days`` apart, walking
back from the data end, a fold is used only when its training part and its validation part
each hold at least ``min_churned`` churned and ``min_retained`` retained *outcomes* (a
renewal term, or one inactivity snapshot's window: the snapshots of one term at several
lead times share one outcome, so they count once). The others are skipped, with the counts
that ruled them out.

When no cut-off qualifies (a young book: one renewal cycle, a one-year retail log), the
plan holds ``cv_folds`` folds of *accounts* instead: each fold holds out a set of accounts
and trains on the others (cross-fitting). That checks the model on accounts it never saw,
but not on a later period, and every report says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from features.errors import ContractError

DAY = pd.Timedelta(days=1)
Kind = Literal["out_of_time", "cross_fitted"]
#: How each kind of check is named wherever it is shown.
KIND_TEXT: dict[str, str] = {
    "out_of_time": "out of time (rolling origin: trained before each cut-off, checked after it)",
    "cross_fitted": "accounts held out (cross-fitted): checked on accounts the model never "
    "saw, over the same period; not out of time",
}


class TooFewLabels(ContractError):
    """The history holds too few churned or retained outcomes to fit and check a model."""


@dataclass(frozen=True)
class Fold:
    """A training and a validation part, as boolean masks over the rows of one frame.

    ``cutoff``/``until`` bound the validation snapshots of an out-of-time fold; they are
    ``None`` for a fold of held-out accounts.
    """

    name: str
    kind: Kind
    train: np.ndarray
    valid: np.ndarray
    cutoff: pd.Timestamp | None = None
    until: pd.Timestamp | None = None


@dataclass(frozen=True)
class SkippedFold:
    """A cut-off that could not be used, and why (the counts found and needed)."""

    name: str
    cutoff: pd.Timestamp
    reason: str


@dataclass(frozen=True)
class FoldPlan:
    """The folds a check runs on, and the cut-offs it had to skip."""

    kind: Kind
    folds: tuple[Fold, ...]
    skipped: tuple[SkippedFold, ...] = field(default=())

    def describe(self) -> str:
        """One plain sentence: how many folds of which kind, and what was skipped."""
        what = "out-of-time folds" if self.kind == "out_of_time" else "folds of held-out accounts"
        text = f"{len(self.folds)} {what}"
        if self.skipped:
            text += f"; {len(self.skipped)} cut-off{'s' if len(self.skipped) > 1 else ''} skipped"
            text += " (" + "; ".join(f"{s.name}: {s.reason}" for s in self.skipped) + ")"
        return text


@dataclass(frozen=True)
class OutcomeCounts:
    """Distinct churned and retained outcomes among some rows."""

    churned: int
    retained: int

    def short_of(self, min_churned: int, min_retained: int) -> str | None:
        """Why these are too few (``None`` when enough)."""
        if self.churned >= min_churned and self.retained >= min_retained:
            return None
        return (
            f"{self.churned} churned and {self.retained} retained outcomes, "
            f"needs {min_churned} and {min_retained}"
        )


def outcome_ids(frame: pd.DataFrame) -> np.ndarray:
    """One integer per outcome: the contract term when there is one, else the snapshot."""
    if "contract_id" in frame:
        term = pd.factorize(frame["contract_id"], use_na_sentinel=True)[0]
    else:
        term = np.full(len(frame), -1, dtype=np.int64)
    snapshot = frame.groupby(["account_id", "as_of"], sort=False, observed=True).ngroup()
    return np.where(term >= 0, term, term.max(initial=-1) + 1 + snapshot.to_numpy())


def count_outcomes(frame: pd.DataFrame, mask: np.ndarray, ids: np.ndarray) -> OutcomeCounts:
    """Distinct churned and retained outcomes among the rows of ``mask``."""
    label = frame["label"].to_numpy()
    churned = np.unique(ids[mask & (label == 1)]).size
    retained = np.unique(ids[mask & (label == 0)]).size
    return OutcomeCounts(int(churned), int(retained))


def data_end(frame: pd.DataFrame) -> pd.Timestamp:
    """The end of the outcomes: the latest ``label_known_at`` of a labelled row."""
    known = frame.loc[frame["label"].notna(), "label_known_at"]
    if known.empty:
        raise TooFewLabels(
            "the training set has no labelled rows (column 'label' is empty): a model needs "
            "outcomes. Renewal mode needs contract terms with an outcome whose end_date is "
            "before the data's end; inactivity mode needs snapshots at least --horizon days "
            "before the last event. Check the data's date range and the label settings."
        )
    return pd.Timestamp(known.max())


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
    *,
    min_churned: int = 1,
    min_retained: int = 1,
    end: pd.Timestamp | None = None,
) -> tuple[list[Fold], list[SkippedFold]]:
    """Rolling-origin folds over the last ``k`` cut-offs, and the cut-offs too thin to use.

    Each fold validates on the snapshots up to the next cut-off (the last one: up to the
    data end), so folds do not overlap and their rows can be pooled.
    """
    end = data_end(frame) if end is None else end
    ids = outcome_ids(frame)
    cuts = cutoffs(end, k, step_days)
    bounds = [*cuts[1:], end + DAY]
    folds, skipped = [], []
    for cut, until in zip(cuts, bounds, strict=True):
        name = cut.strftime("%Y-%m-%d")
        train = train_mask(frame, cut, purge_days)
        valid = valid_mask(frame, cut, until, end)
        reasons = [
            f"{part} part has {why}"
            for part, mask in (("training", train), ("validation", valid))
            if (why := count_outcomes(frame, mask, ids).short_of(min_churned, min_retained))
        ]
        if reasons:
            skipped.append(SkippedFold(name, cut, "; ".join(reasons)))
        else:
            folds.append(Fold(name, "out_of_time", train, valid, cut, until))
    return folds, skipped


def account_folds(frame: pd.DataFrame, k: int, seed: int) -> list[Fold]:
    """``k`` folds that each hold out about 1/k of the accounts (seeded, the same every run)."""
    codes, accounts = pd.factorize(frame["account_id"].astype(str), sort=True)
    k = max(2, min(k, len(accounts)))
    group = np.empty(len(accounts), dtype=np.int64)
    group[np.random.default_rng(seed).permutation(len(accounts))] = np.arange(len(accounts)) % k
    row_group = group[codes]
    labelled = frame["label"].notna().to_numpy()
    return [
        Fold(f"accounts {i + 1}/{k}", "cross_fitted", labelled & (row_group != i),
             labelled & (row_group == i))
        for i in range(k)
    ]  # fmt: skip


def require_outcomes(
    frame: pd.DataFrame, min_churned: int, min_retained: int, what: str = "the training set"
) -> OutcomeCounts:
    """The outcome counts of ``frame``'s labelled rows; :class:`TooFewLabels` when too few."""
    data_end(frame)  # no labelled row at all: its own message
    labelled = frame["label"].notna().to_numpy()
    counts = count_outcomes(frame, labelled, outcome_ids(frame))
    if counts.short_of(min_churned, min_retained):
        raise TooFewLabels(
            f"{what} holds {counts.churned} churned and {counts.retained} retained outcomes "
            f"(renewal terms, or inactivity windows); at least {min_churned} churned and "
            f"{min_retained} retained are needed to fit a model and check it. Add history or "
            "accounts, or lower model.min_churned / model.min_retained in churn.yaml (the "
            "fewer outcomes, the wider every figure's interval)."
        )
    return counts


def plan_folds(
    frame: pd.DataFrame,
    k: int,
    step_days: int,
    purge_days: int | None,
    *,
    min_churned: int,
    min_retained: int,
    cv_folds: int,
    seed: int,
) -> FoldPlan:
    """Usable out-of-time folds, or folds of held-out accounts when there is none."""
    folds, skipped = time_folds(
        frame, k, step_days, purge_days, min_churned=min_churned, min_retained=min_retained
    )
    if folds:
        return FoldPlan("out_of_time", tuple(folds), tuple(skipped))
    return FoldPlan("cross_fitted", tuple(account_folds(frame, cv_folds, seed)), tuple(skipped))


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


def rows_of(folds: Sequence[Fold]) -> np.ndarray:
    """Every row any of ``folds`` reads (training or validation)."""
    if not folds:
        return np.zeros(0, dtype=bool)
    return np.logical_or.reduce([f.train | f.valid for f in folds])
