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
:func:`change_since` compares an account's score with its previous one. When both come
from the same model version it names the families whose contributions moved most. When
the model changed, a move is partly the new model's and partly the account's: today's
model on the previous feature values separates the two (see :func:`change_since`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.catalog import Family, Feature, Healthy
from models.plays import check_families

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
    "activities": "CS touches",
    "lifecycle": "contract and tenure",
    "static": "account profile",
}
check_families(get_args(Family), FAMILY_NAMES, "models.explain.FAMILY_NAMES")
SENTIMENT_NAMES = {0: "red", 1: "yellow", 2: "green"}
ALL_SEGMENTS = "all"
#: A family contribution (log-odds) smaller than this in size is no driver.
MIN_CONTRIBUTION = 1e-6
#: A family moving less than this (log-odds) between two scores is not named as a reason.
MIN_MOVE = 0.05
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


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def format_value(f: Feature, value: object) -> str:
    """A feature value in the words and units a CSM reads."""
    if _missing(value):
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
    if not f.name.startswith("utilisation_") or _missing(users) or _missing(seats):
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
    shown = _comparable(f) and not _missing(value) and f.name in reference
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

    # For each family, its qualifying member pushing hardest up (risk) and down (protective).
    family_of = np.array([f.family for f in feats])
    up = np.zeros((n_rows, n_fam), dtype=np.int64)
    down = np.zeros((n_rows, n_fam), dtype=np.int64)
    up_ok = np.zeros((n_rows, n_fam), dtype=bool)
    down_ok = np.zeros((n_rows, n_fam), dtype=bool)
    for j, family in enumerate(fam.columns):
        members = np.flatnonzero(family_of == family)
        part = risk_c[:, members]
        best = np.argmax(part, axis=1)
        up[:, j] = members[best]
        up_ok[:, j] = np.isfinite(np.take_along_axis(part, best[:, None], axis=1)[:, 0])
        part = protect_c[:, members]
        best = np.argmin(part, axis=1)
        down[:, j] = members[best]
        down_ok[:, j] = np.isfinite(np.take_along_axis(part, best[:, None], axis=1)[:, 0])
    risk_key = np.where((f_all > MIN_CONTRIBUTION) & up_ok, f_all, -np.inf)
    order = np.argsort(-risk_key, axis=1, kind="stable")[:, :top]
    listed = np.isfinite(np.take_along_axis(risk_key, order, axis=1))
    protect_key = np.where((f_all < -MIN_CONTRIBUTION) & down_ok, f_all, np.inf)
    lowest = np.argmin(protect_key, axis=1)
    protected = np.isfinite(protect_key[np.arange(n_rows), lowest])

    # Only what a sentence reads, as arrays: far cheaper than a dict per row.
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
    families = [str(c) for c in fam.columns]

    def driver(i: int, j: int, k: int) -> Driver:
        f = feats[k]
        value: float | str | None
        if f.categorical:
            raw = texts[k][i] if k in texts else None
            value = None if _missing(raw) else str(raw)
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


# ---------------------------------------------------------------- change since the last run


def _num(value: object) -> float:
    """A contribution as a number; a family missing on one side contributes nothing."""
    return 0.0 if _missing(value) else float(value)  # type: ignore[arg-type]


def _version(value: object) -> str | None:
    return None if _missing(value) or str(value) == "" else str(value)


def _moved(
    after: Mapping[Any, Any], before: Mapping[Any, Any], families: Sequence[str], top: int
) -> list[str]:
    """The ``top`` families whose contributions moved most from ``before`` to ``after``."""
    delta = {f: _num(after.get(f)) - _num(before.get(f)) for f in families}
    moved = sorted(delta.items(), key=lambda kv: -abs(kv[1]))[:top]
    return [
        f"{FAMILY_NAMES[f]} {'raised' if d > 0 else 'lowered'} risk"
        for f, d in moved
        if abs(d) > MIN_MOVE
    ]


def _points(before: float, after: float) -> str:
    """The move between two probabilities in percentage points, as their texts read."""
    return f"{round(after * 100) - round(before * 100):+d} pts"


def change_since(
    previous: pd.DataFrame,
    current: pd.DataFrame,
    top: int = 2,
    rescored: pd.DataFrame | None = None,
) -> pd.Series:
    """What moved each account's score since its previous score, in words.

    ``previous`` holds each account's previous score, ``current`` today's: ``account_id``,
    ``as_of``, ``churn_probability``, one column per family (its contribution; a family
    missing from a frame, or NaN, counts as 0) and optionally ``model_version``. Accounts
    not scored before get an empty text.

    - Same model version (or a version unknown): "churn risk 20% -> 35% since 2025-11-01:
      support pain raised risk, ..." names the ``top`` families that moved most.
    - Another version: the move is split with ``rescored``, today's model on the account's
      previous feature values (``account_id``, ``churn_probability``, family columns). The
      model's part is the rescored probability minus the previous one (same values, new
      model); the account's part is today's probability minus the rescored one (same model,
      new values), with the families that moved it. An account with another version and no
      row in ``rescored`` (today's model reads features its previous score did not record)
      is said to have been re-scored by a model whose features differ, without a split.
    """
    families = [c for c in current.columns if c in FAMILY_NAMES]
    families += [c for c in previous.columns if c in FAMILY_NAMES and c not in families]
    prev: dict[Any, Any] = {r["account_id"]: r for r in previous.to_dict("records")}
    again: dict[Any, Any] = (
        {} if rescored is None else {r["account_id"]: r for r in rescored.to_dict("records")}
    )
    texts = []
    for row in current.to_dict("records"):
        p = prev.get(row["account_id"])
        if p is None:
            texts.append("")
            continue
        was, now = float(p["churn_probability"]), float(row["churn_probability"])
        since = pd.Timestamp(p["as_of"]).strftime("%Y-%m-%d")
        head = f"churn risk {was:.0%} -> {now:.0%} since {since}"
        old, new = _version(p.get("model_version")), _version(row.get("model_version"))
        if old is None or new is None or old == new:
            parts = _moved(row, p, families, top)
            texts.append(head + (": " + ", ".join(parts) if parts else ""))
            continue
        head += f", with a new model (version {old} -> {new})"
        r = again.get(row["account_id"])
        if r is None:
            texts.append(
                head + " whose features differ from the previous model's, so the move "
                "cannot be split into the model's part and the account's"
            )
            continue
        mid = float(r["churn_probability"])
        head += (
            f": {_points(was, mid)} from the model ({was:.0%} -> {mid:.0%} on the values "
            f"of {since}), {_points(mid, now)} from the account ({mid:.0%} -> {now:.0%})"
        )
        parts = _moved(row, r, families, top)
        texts.append(head + (": " + ", ".join(parts) if parts else ""))
    return pd.Series(texts, index=current.index, dtype="str")
