"""The model matrix: declared feature columns only, in declaration order, with fixed dtypes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from features.catalog import Feature

#: Columns every training frame carries besides the features.
REQUIRED = ("as_of", "label", "label_known_at")


def check_columns(frame: pd.DataFrame, names: Sequence[str], at_fit: bool) -> None:
    """Raise ``ValueError`` naming the feature columns ``frame`` lacks."""
    missing = [n for n in names if n not in frame.columns]
    if not missing:
        return
    if at_fit:
        raise ValueError(
            f"the training frame lacks declared feature columns: {', '.join(missing)}. "
            "Pass the features the frame was built with (TrainingSet.features)."
        )
    raise ValueError(
        f"Feature names seen at fit time, yet now missing: {', '.join(missing)}. "
        "Score a frame built by the same feature settings as the training set."
    )


def check_training_frame(frame: pd.DataFrame, features: Sequence[Feature]) -> None:
    """Raise ``ValueError`` if ``frame`` lacks the label columns or a declared feature."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the training frame lacks {', '.join(missing)}: expected the columns of "
            "features.training.TrainingSet.frame (as_of, label, label_known_at, ...)"
        )
    check_columns(frame, [f.name for f in features], at_fit=True)
    if not frame["label"].dropna().isin([0, 1]).all():
        raise ValueError("column 'label' must be 0 (renewed/active) or 1 (churned)")


def categories_of(frame: pd.DataFrame, features: Sequence[Feature]) -> dict[str, list[str]]:
    """The levels of each categorical feature in ``frame``, sorted, as strings."""
    out = {}
    for f in features:
        if f.categorical:
            values = frame[f.name].dropna().astype(str).unique()
            out[f.name] = sorted(values.tolist())
    return out


def matrix(
    frame: pd.DataFrame, features: Sequence[Feature], categories: Mapping[str, list[str]]
) -> pd.DataFrame:
    """The declared features of ``frame`` as a new frame: float64 and fixed categoricals.

    Categorical levels unseen at fit time become missing, so a new plan name is scored
    like an account whose plan is unknown instead of failing.
    """
    cols: dict[str, object] = {}
    for f in features:
        col = frame[f.name]
        if f.categorical:
            text = col.astype("object").where(col.notna(), None)
            text = text.map(lambda v: None if v is None else str(v))
            cols[f.name] = pd.Categorical(text, categories=categories[f.name])
        else:
            cols[f.name] = pd.to_numeric(col, errors="coerce").astype(np.float64).to_numpy()
    return pd.DataFrame(cols, index=frame.index)
