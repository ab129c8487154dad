"""Explanations a CSM can act on: SHAP contributions grouped into business drivers.

Contributions are TreeSHAP values in the trees' raw (log-odds) space, from LightGBM's own
``pred_contrib`` (exact TreeSHAP, and much faster than a Python explainer). They are summed
per feature family (breadth, depth, support, ...) so that a CSM reads "low breadth" rather
than three correlated breadth columns, and each driver is stated with the account's own
value and a reference from healthy accounts of the same segment. They are associations
learned from history, not causes.

Which feature states a driver
-----------------------------
A driver is read as a fact ("Active users (30 d): 3 users; healthy SMB accounts: 5
users"), so :func:`explain_rows` only says what is true as displayed:

1. Families are ranked by their summed contribution: the risk drivers are the (up to
   ``top``) families with the largest sums above 1e-6, the protective factor is the family
   with the most negative sum below -1e-6.
2. A family is stated by one member feature that *qualifies*: its own contribution points
   the family's way (> 0 for a risk, < 0 for a protective factor) and, when its value is
   compared with the healthy reference, the value lies strictly on the unhealthy side of
   the reference for a risk, strictly on the healthy side for a protective factor
   (:attr:`features.catalog.Feature.healthy`). "Strictly" holds as displayed: both numbers
   are rounded to the digits the sentence prints (:func:`displayed`) before they are
   compared, so "6 users; healthy accounts: 5 users" is never a risk and "0 tickets;
   healthy accounts: 0 tickets" is on no side at all. Of the qualifying members, the one
   with the largest contribution the family's way states the family.
3. A member is shown without a comparison, and qualifies on the sign of its contribution
   alone, when no side can be read: its healthy direction is "none", it is categorical,
   there is no reference for it, or the account's value is missing ("none recorded").
4. A family without a qualifying member is skipped and the next family of the ranking
   takes its place, so an account gets fewer than ``top`` risk drivers, or no protective
   factor, only when nothing more can be said truthfully. A driver's ``contribution``
   stays its family's sum.

The reference is the median of the healthy (renewed) accounts of the account's segment;
an account whose segment has no references is compared with all healthy accounts, and the
sentence says "healthy accounts" rather than naming the segment.

Why the score changed
---------------------
:func:`models.explain_change.change_since` compares an account's score with its previous
one. When both come from the same model version it names the families whose contributions
moved most. When the model changed, a move is partly the new model's and partly the
account's: today's model on the previous feature values separates the two.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.catalog import FamilyField, Feature, Healthy

#: How a family reads in a sentence, when it raises risk.
#: How drivers name each registered family ("support pain raised risk"), by family.
FAMILY_NAMES = FamilyField("words")
SENTIMENT_NAMES = {0: "red", 1: "yellow", 2: "green"}
ALL_SEGMENTS = "all"
#: A family contribution (log-odds) smaller than this in size is no driver.
MIN_CONTRIBUTION = 1e-6
#: How :func:`format_value` shows a number: the digits it rounds to and its wording.
Kind = Literal["category", "sentiment", "percent", "scale", "whole", "count"]
#: ``Feature.healthy`` as the sign of the reference minus the value on the unhealthy side.
_SIDE = {"higher": 1.0, "lower": -1.0, "none": 0.0}


@dataclass(frozen=True)
class Driver:
    """One business driver of an account's score, with what its sentence compares.

    ``reference`` is set only when ``text`` compares ``value`` with it; then a risk driver's
    value is on the unhealthy side of it and a protective factor's on the healthy side, as
    :func:`displayed` rounds them.
    """

    family: str
    feature: str
    #: Sum of the family's contributions to the log-odds of churn (> 0 raises risk).
    contribution: float
    text: str
    #: The account's value of ``feature``: a number, a category's text, or None if missing.
    value: float | str | None = None
    #: The healthy accounts' median that ``text`` compares ``value`` with, if any.
    reference: float | None = None
    #: The direction in which ``feature`` is healthy ("higher", "lower" or "none").
    healthy: Healthy = "none"


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


# ---------------------------------------------------------------- values as displayed


def _kind(f: Feature) -> Kind:
    if f.categorical:
        return "category"
    if f.name.startswith("sentiment_last"):
        return "sentiment"
    if "share" in f.unit or f.unit == "ratio" or f.name.startswith("stickiness"):
        return "percent"
    if f.unit in ("0-10", "1-5", "1-7"):
        return "scale"
    if f.unit in ("currency", "hours", "days"):
        return "whole"
    return "count"  # counts read as whole numbers; a median of counts may fall between two


def displayed(f: Feature, values: npt.ArrayLike) -> np.ndarray:
    """The numbers as :func:`format_value` shows them, i.e. rounded to the digits it prints.

    Two values read as different in a sentence exactly when these differ, and rounding
    keeps their order; NaN stays NaN, and a categorical feature has no number (all NaN).
    """
    return _displayed(_kind(f), np.asarray(values, dtype=np.float64))


def _displayed(kind: Kind, v: np.ndarray) -> np.ndarray:
    if kind == "category":
        return np.full(v.shape, np.nan)
    if kind == "percent":
        return np.rint(v * 100) / 100
    if kind == "scale":
        return np.rint(v * 10) / 10
    if kind == "whole":
        return np.rint(v)
    tenths = np.rint(v * 10) / 10
    if kind == "sentiment":
        whole = np.rint(v)
        return np.where((whole >= 0) & (whole <= 2), whole, tenths)
    return np.where(np.abs(v) >= 10, np.rint(v), tenths)


def is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def format_value(f: Feature, value: object) -> str:
    """A feature value in the words and units a CSM reads."""
    if is_missing(value):
        return "none recorded"
    if f.categorical:
        return str(value)
    kind = _kind(f)
    return _format(f, kind, float(_displayed(kind, np.asarray(value, dtype=np.float64))))


def _format(f: Feature, kind: Kind, d: float) -> str:
    """The text of ``d``, a number already rounded as :func:`displayed` rounds it."""
    if kind == "sentiment":
        return SENTIMENT_NAMES[int(d)] if d in SENTIMENT_NAMES else f"{d:.1f}"
    if kind == "percent":
        sign = "+" if f.family == "trend" and d > 0 else ""
        return f"{sign}{d:.0%}"
    if kind == "scale":
        return f"{d:.1f} (scale {f.unit})"
    if f.unit == "currency":
        return f"{d:,.0f}"
    if f.unit == "hours":
        return f"{d:,.0f} h"
    unit = f.unit[:-1] if f.unit.endswith("s") and d == 1 else f.unit  # 1 day, 1 ticket
    return f"{d:,.0f} {unit}" if d.is_integer() else f"{d:,.1f} {unit}"


def _comparable(f: Feature) -> bool:
    """Whether a value of ``f`` can be on a side of a reference at all."""
    return not f.categorical and f.healthy != "none"


def _seats(f: Feature, users: object, seats: object) -> str:
    """ " (3 of 40 seats)" after a licence utilisation, when both counts are known."""
    if not f.name.startswith("utilisation_") or is_missing(users) or is_missing(seats):
        return ""
    if not float(seats) > 0:  # type: ignore[arg-type]
        return ""
    return f" ({float(users):,.0f} of {float(seats):,.0f} seats)"  # type: ignore[arg-type]


def describe(
    f: Feature,
    row: Mapping[Any, Any],
    reference: Mapping[str, float],
    segment: str | None,
) -> str:
    """E.g. "Licence utilisation (30 d): 8% (3 of 40 seats); healthy SMB accounts: 55%".

    The reference is shown only where a side can be read: a numeric feature with a healthy
    direction, a value and a reference. Which side the value is on is the caller's choice
    (:func:`explain_rows` words only the members on the side they claim).
    """
    value = row.get(f.name)
    users = row.get(f.name.replace("utilisation_", "active_users_"))
    shown = _comparable(f) and not is_missing(value) and f.name in reference
    who = f"healthy {segment} accounts" if segment else "healthy accounts"
    return _sentence(
        f, format_value(f, value), _seats(f, users, row.get("seats")), who,
        format_value(f, reference[f.name]) if shown else None,
    )  # fmt: skip


def _sentence(f: Feature, value: str, seats: str, who: str, reference: str | None) -> str:
    """A driver's sentence from its formatted parts; the reference only when one is given."""
    text = f"{f.label}: {value}{seats}"
    return text if reference is None else f"{text}; {who}: {reference}"


# ---------------------------------------------------------------- drivers of a batch


def explain_rows(
    frame: pd.DataFrame,
    contrib: pd.DataFrame,
    features: Sequence[Feature],
    refs: Mapping[str, Mapping[str, float]],
    top: int = 3,
) -> list[tuple[list[Driver], Driver | None]]:
    """Up to ``top`` risk drivers (largest positive family contribution first) and the main
    protective factor of each row, each stated by a member feature whose sentence is true
    (the rule is in the module docstring).

    The choice of families and features, and the comparison of values with references as
    displayed, are vectorised over rows; only the sentences are built per row.
    """
    by_name = {f.name: f for f in features}
    fam = family_contributions(contrib, features)
    names = [c for c in contrib.columns if c in by_name]
    feats = [by_name[n] for n in names]
    kinds = [_kind(f) for f in feats]
    c_all = contrib[names].to_numpy(dtype=np.float64)
    f_all = fam.to_numpy(dtype=np.float64)
    n_rows, n_fam = f_all.shape
    if n_fam == 0:
        return [([], None) for _ in range(n_rows)]

    # The account's values, the reference of its segment, both as displayed.
    values = np.full((n_rows, len(names)), np.nan)
    for k, f in enumerate(feats):
        if not f.categorical and f.name in frame:
            values[:, k] = pd.to_numeric(frame[f.name], errors="coerce").to_numpy(np.float64)
    group, table, whos = _reference_table(frame, refs, names)
    ref_all = table[group]
    shown_table, shown_values = _displayed_columns(kinds, table), _displayed_columns(kinds, values)
    side = np.array([_SIDE[f.healthy] if not f.categorical else 0.0 for f in feats])
    compared = (side != 0) & ~np.isnan(values) & ~np.isnan(ref_all)
    with np.errstate(invalid="ignore"):
        # > 0: the value is on the unhealthy side of the reference; < 0: the healthy side.
        gap = (shown_table[group] - shown_values) * side
    risk_c = np.where((c_all > 0) & (~compared | (gap > 0)), c_all, -np.inf)
    protect_c = np.where((c_all < 0) & (~compared | (gap < 0)), c_all, np.inf)

    family_of = np.array([f.family for f in feats])
    up, up_ok = _strongest_member(risk_c, family_of, fam.columns, np.argmax)
    down, down_ok = _strongest_member(protect_c, family_of, fam.columns, np.argmin)
    risk_key = np.where((f_all > MIN_CONTRIBUTION) & up_ok, f_all, -np.inf)
    order = np.argsort(-risk_key, axis=1, kind="stable")[:, :top]
    listed = np.isfinite(np.take_along_axis(risk_key, order, axis=1))
    protect_key = np.where((f_all < -MIN_CONTRIBUTION) & down_ok, f_all, np.inf)
    lowest = np.argmin(protect_key, axis=1)
    protected = np.isfinite(protect_key[np.arange(n_rows), lowest])

    texts, seats, users = _sentence_columns(frame, names, feats)
    families = [str(c) for c in fam.columns]

    def driver(i: int, j: int, k: int) -> Driver:
        f = feats[k]
        value: float | str | None
        if f.categorical:
            raw = texts[k][i] if k in texts else None
            value = None if is_missing(raw) else str(raw)
        else:
            value = None if math.isnan(values[i, k]) else float(values[i, k])
        if not isinstance(value, float):  # a category, or missing
            text = _sentence(f, format_value(f, value), "", "", None)
            return Driver(families[j], f.name, float(f_all[i, j]), text, value, None, f.healthy)
        seat = _seats(f, users[k][i], seats[i]) if k in users and seats is not None else ""
        reference = float(ref_all[i, k]) if compared[i, k] else None
        shown = None if reference is None else _format(f, kinds[k], shown_table[group[i], k])
        text = _sentence(f, _format(f, kinds[k], shown_values[i, k]), seat, whos[group[i]], shown)
        return Driver(families[j], f.name, float(f_all[i, j]), text, value, reference, f.healthy)

    out: list[tuple[list[Driver], Driver | None]] = []
    for i in range(n_rows):
        risks = [driver(i, j, up[i, j]) for j, ok in zip(order[i], listed[i], strict=True) if ok]
        low = lowest[i]
        out.append((risks, driver(i, low, down[i, low]) if protected[i] else None))
    return out


def _strongest_member(
    contrib: np.ndarray, family_of: np.ndarray, families: pd.Index, pick: Any
) -> tuple[np.ndarray, np.ndarray]:
    """For each row and family, the member feature ``pick`` (``np.argmax`` for risk,
    ``np.argmin`` for protection) chooses among ``contrib``, and whether it qualifies
    (its masked contribution is finite)."""
    n_rows, n_fam = len(contrib), len(families)
    chosen = np.zeros((n_rows, n_fam), dtype=np.int64)
    ok = np.zeros((n_rows, n_fam), dtype=bool)
    for j, family in enumerate(families):
        members = np.flatnonzero(family_of == family)
        part = contrib[:, members]
        best = pick(part, axis=1)
        chosen[:, j] = members[best]
        ok[:, j] = np.isfinite(np.take_along_axis(part, best[:, None], axis=1)[:, 0])
    return chosen, ok


def _sentence_columns(
    frame: pd.DataFrame, names: Sequence[str], feats: Sequence[Feature]
) -> tuple[dict[int, np.ndarray], np.ndarray | None, dict[int, np.ndarray]]:
    """Only what a sentence reads, as arrays (far cheaper than a dict per row): the
    categories' texts, the seats, and the active users of each utilisation feature."""
    texts = {
        k: frame[n].to_numpy(dtype=object)
        for k, n in enumerate(names)
        if feats[k].categorical and n in frame
    }
    seats = frame["seats"].to_numpy(dtype=object) if "seats" in frame else None
    users = {
        k: frame[n.replace("utilisation_", "active_users_")].to_numpy(dtype=object)
        for k, n in enumerate(names)
        if n.startswith("utilisation_") and n.replace("utilisation_", "active_users_") in frame
    }
    return texts, seats, users


def _displayed_columns(kinds: Sequence[Kind], m: np.ndarray) -> np.ndarray:
    out = np.empty_like(m)
    for k, kind in enumerate(kinds):
        out[:, k] = _displayed(kind, m[:, k])
    return out


def _reference_table(
    frame: pd.DataFrame, refs: Mapping[str, Mapping[str, float]], names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Each row's reference group, the groups' references (NaN: none) and who they are.

    A segment with references of its own is its group ("healthy SMB accounts"); rows of
    another or no segment share the group of all healthy accounts ("healthy accounts").
    """
    n_rows = len(frame)
    if "segment" in frame:
        codes, uniques = pd.factorize(frame["segment"], use_na_sentinel=True)
        segments: list[str | None] = [str(u) for u in uniques]
    else:
        codes, segments = np.full(n_rows, -1, dtype=np.int64), []
    overall = refs.get(ALL_SEGMENTS, {})
    rows, whos = [], []
    for segment in [*segments, None]:  # the last group: rows without a segment
        own = refs.get(segment) if segment is not None and segment != ALL_SEGMENTS else None
        chosen = own or overall
        rows.append([float(chosen.get(n, np.nan)) for n in names])
        whos.append(f"healthy {segment} accounts" if own else "healthy accounts")
    group = np.where(codes < 0, len(segments), codes).astype(np.int64)
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    return group, table, whos
