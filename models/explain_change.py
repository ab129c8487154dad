"""What moved an account's score since its previous one, in words (:func:`change_since`).

When both scores come from the same model version it names the families whose
contributions moved most. When the model changed, re-scoring today's model on the previous
feature values separates the model's part of the move from the account's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from models.explain import FAMILY_NAMES, is_missing

#: A family moving less than this (log-odds) between two scores is not named as a reason.
MIN_MOVE = 0.05


def _num(value: object) -> float:
    """A contribution as a number; a family missing on one side contributes nothing."""
    return 0.0 if is_missing(value) else float(value)  # type: ignore[arg-type]


def _version(value: object) -> str | None:
    return None if is_missing(value) or str(value) == "" else str(value)


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
