"""Explanations a CSM can act on: SHAP contributions grouped into business drivers.

Contributions are TreeSHAP values in the trees' raw (log-odds) space, from LightGBM's own
``pred_contrib`` (exact TreeSHAP, and much faster than a Python explainer). They are summed
per feature family (breadth, depth, support, ...) so that a CSM reads "low breadth" rather
than three correlated breadth columns, and each driver is stated with the account's own
value and a reference from healthy accounts of the same segment. They are associations
learned from history, not causes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.catalog import Feature

#: How a family reads in a sentence, when it raises risk.
FAMILY_NAMES = {
    "frequency": "usage frequency",
    "breadth": "breadth of adoption",
    "depth": "depth of key-feature use",
    "trend": "usage trend",
    "concentration": "dependence on one user",
    "support": "support pain",
    "voice": "customer feedback",
    "sentiment": "CSM sentiment",
    "billing": "billing",
    "lifecycle": "contract and tenure",
    "static": "account profile",
}
SENTIMENT_NAMES = {0: "red", 1: "yellow", 2: "green"}
ALL_SEGMENTS = "all"


@dataclass(frozen=True)
class Driver:
    """One business driver of an account's score."""

    family: str
    feature: str
    #: Sum of the family's contributions to the log-odds of churn (> 0 raises risk).
    contribution: float
    text: str


def contributions(
    booster: object, X: pd.DataFrame, num_iteration: int | None = None
) -> pd.DataFrame:
    """TreeSHAP contributions per feature plus ``bias``, in log-odds (LightGBM native).

    Each row sums to the trees' raw output for that row (additivity).
    """
    raw = booster.predict(X, pred_contrib=True, num_iteration=num_iteration)  # type: ignore[attr-defined]
    return pd.DataFrame(np.asarray(raw), index=X.index, columns=[*X.columns, "bias"])


def family_contributions(contrib: pd.DataFrame, features: Sequence[Feature]) -> pd.DataFrame:
    """Contributions summed per feature family (one column per family present)."""
    families = {f.name: f.family for f in features}
    cols = [c for c in contrib.columns if c in families]
    return contrib[cols].T.groupby(pd.Series(families)[cols]).sum().T


def references(
    frame: pd.DataFrame, features: Sequence[Feature], healthy: pd.Series
) -> dict[str, dict[str, float]]:
    """Median of each numeric feature among healthy accounts, per segment and overall.

    ``healthy`` marks the reference rows (e.g. training snapshots of terms that renewed).
    Stored with the model, so that a score is explained against the history it learned.
    """
    numeric = [f.name for f in features if not f.categorical]
    ref = frame.loc[healthy.to_numpy(dtype=bool), numeric]
    out = {ALL_SEGMENTS: _medians(ref)}
    if "segment" in frame:
        seg = frame.loc[healthy.to_numpy(dtype=bool), "segment"]
        for name, rows in ref.groupby(seg.astype("str"), sort=True):
            out[str(name)] = _medians(rows)
    return out


def _medians(rows: pd.DataFrame) -> dict[str, float]:
    medians = rows.median(numeric_only=True)
    return {str(c): float(v) for c, v in medians.items() if not math.isnan(v)}


def format_value(f: Feature, value: object) -> str:
    """A feature value in the words and units a CSM reads."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none recorded"
    if f.categorical:
        return str(value)
    v = float(value)  # type: ignore[arg-type]
    if f.name.startswith("sentiment_last"):
        return SENTIMENT_NAMES.get(round(v), f"{v:.1f}")
    if "share" in f.unit or f.unit == "ratio" or f.name.startswith("stickiness"):
        sign = "+" if f.family == "trend" and v > 0 else ""
        return f"{sign}{v:.0%}"
    if f.unit in ("0-10", "1-5", "1-7"):
        return f"{v:.1f} (scale {f.unit})"
    if f.unit == "currency":
        return f"{v:,.0f}"
    if f.unit == "hours":
        return f"{v:,.0f} h"
    unit = f.unit[:-1] if f.unit.endswith("s") and round(v) == 1 else f.unit  # 1 day, 1 ticket
    if f.unit == "days":
        return f"{v:,.0f} {unit}"
    # Counts read as whole numbers; a median of counts may fall between two.
    return f"{v:,.0f} {unit}" if abs(v) >= 10 or abs(v - round(v)) < 1e-9 else f"{v:,.1f} {unit}"


def describe(
    f: Feature,
    row: Mapping[Any, Any],
    reference: Mapping[str, float],
    segment: str | None,
) -> str:
    """E.g. "Licence utilisation (30 d): 8% (3 of 40 seats); healthy SMB accounts: 55%"."""
    text = f"{f.label}: {format_value(f, row.get(f.name))}"
    if f.name.startswith("utilisation_") and row.get("seats"):
        users = row.get(f.name.replace("utilisation_", "active_users_"))
        if users is not None and not (isinstance(users, float) and math.isnan(users)):
            text += f" ({float(users):,.0f} of {float(row['seats']):,.0f} seats)"
    if f.name in reference and not f.categorical:
        who = f"healthy {segment} accounts" if segment else "healthy accounts"
        text += f"; {who}: {format_value(f, reference[f.name])}"
    return text


def explain_rows(
    frame: pd.DataFrame,
    contrib: pd.DataFrame,
    features: Sequence[Feature],
    refs: Mapping[str, Mapping[str, float]],
    top: int = 3,
) -> list[tuple[list[Driver], Driver | None]]:
    """Up to ``top`` risk drivers (largest positive family contribution first) and the main
    protective factor of each row.

    A family is described by its feature with the largest contribution in the same
    direction; its text carries the account's value and the healthy reference. The choice
    of families and features is vectorised over rows; only the sentences are built per row.
    """
    by_name = {f.name: f for f in features}
    fam = family_contributions(contrib, features)
    names = [c for c in contrib.columns if c in by_name]
    c_all = contrib[names].to_numpy()
    family_of = np.array([by_name[n].family for n in names])
    f_all = fam.to_numpy()
    n_rows, n_fam = f_all.shape
    # For each family, the member feature pushing hardest up (risk) and down (protective).
    up = np.empty((n_rows, n_fam), dtype=np.int64)
    down = np.empty((n_rows, n_fam), dtype=np.int64)
    for j, family in enumerate(fam.columns):
        members = np.flatnonzero(family_of == family)
        part = c_all[:, members]
        up[:, j] = members[np.argmax(part, axis=1)]
        down[:, j] = members[np.argmin(part, axis=1)]
    order = np.argsort(-f_all, axis=1, kind="stable")[:, :top]
    lowest = np.argmin(f_all, axis=1)
    # Only the columns a sentence can read, as arrays: far cheaper than a dict per row.
    wanted = [c for c in frame.columns if c in by_name or c in ("seats", "segment")]
    cols = {c: frame[c].to_numpy(dtype=object) for c in wanted}
    segments = cols.get("segment", np.full(n_rows, None, dtype=object))
    out: list[tuple[list[Driver], Driver | None]] = []
    for i in range(n_rows):
        segment = segments[i]
        segment = None if segment is None or isinstance(segment, float) else str(segment)
        reference = refs.get(segment or ALL_SEGMENTS) or refs.get(ALL_SEGMENTS, {})

        def driver(j: int, member: int, i: int = i, seg: str | None = segment,
                   ref: Mapping[str, float] = reference) -> Driver:  # fmt: skip
            f = by_name[names[member]]
            row = _RowView(cols, i)
            return Driver(fam.columns[j], f.name, float(f_all[i, j]), describe(f, row, ref, seg))

        risks = [driver(j, up[i, j]) for j in order[i] if f_all[i, j] > 1e-6]
        low = lowest[i]
        protective = driver(low, down[i, low]) if f_all[i, low] < -1e-6 else None
        out.append((risks, protective))
    return out


class _RowView(Mapping[str, Any]):
    """One row of column arrays, read lazily (``describe`` reads two or three cells)."""

    def __init__(self, cols: Mapping[str, np.ndarray], i: int) -> None:
        self._cols, self._i = cols, i

    def __getitem__(self, key: str) -> Any:
        return self._cols[key][self._i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cols)

    def __len__(self) -> int:
        return len(self._cols)


def change_since(previous: pd.DataFrame, current: pd.DataFrame, top: int = 2) -> pd.Series:
    """What moved each account's score since the last run, in words.

    Both frames: ``account_id``, ``as_of``, ``churn_probability`` and one column per family
    (its contribution). Accounts not scored last time get an empty text.
    """
    fams = [c for c in current.columns if c in FAMILY_NAMES]
    prev: dict[Any, Any] = {r["account_id"]: r for r in previous.to_dict("records")}
    texts = []
    for row in current.to_dict("records"):
        p = prev.get(row["account_id"])
        if p is None:
            texts.append("")
            continue
        delta = {f: float(row[f]) - float(p.get(f, 0.0) or 0.0) for f in fams}
        moved = sorted(delta.items(), key=lambda kv: -abs(kv[1]))[:top]
        parts = [
            f"{FAMILY_NAMES[f]} {'raised' if d > 0 else 'lowered'} risk"
            for f, d in moved
            if abs(d) > 0.05
        ]
        was, now = float(p["churn_probability"]), float(row["churn_probability"])
        since = pd.Timestamp(p["as_of"]).strftime("%Y-%m-%d")
        head = f"churn risk {was:.0%} -> {now:.0%} since {since}"
        texts.append(head + (": " + ", ".join(parts) if parts else ""))
    return pd.Series(texts, index=current.index, dtype="str")
