"""The cross-fitted nuisance models of a play's effect estimate (:mod:`models.play_effects`).

For every unit: the propensity e(x) = P(t = 1 | x) and the outcome models
mu_t(x) = P(y = 1 | t, x), each predicted by a model fitted on the other folds, so a unit's
own outcome never enters its own prediction. The covariates enter as a design matrix with
missing numeric values filled and flagged (:func:`design`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, SplineTransformer, StandardScaler

#: Inverse penalties of the logistic nuisance models. The propensity is barely penalised
#: so that a play given only above some risk shows as propensities near 0 and 1 (which the
#: trimming then removes); a penalised, smooth propensity would spread a sharp assignment
#: rule into a band of "comparable" units with no real counterpart. The outcome models
#: keep a mild penalty: the treated arm is often small.
PROPENSITY_C = 1e3
OUTCOME_C = 1.0
#: Numeric covariates with fewer distinct values than this enter linearly, not as splines.
SPLINE_MIN_DISTINCT = 8

Learner = Literal["logistic", "lightgbm"]


def design(frame: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    """The covariates with missing numeric values filled by the median and flagged."""
    out = {}
    for col in covariates:
        s = frame[col]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            s = s.astype(float)
            if s.isna().any():
                out[f"{col}__missing"] = s.isna().astype(float)
                s = s.fillna(s.median() if s.notna().any() else 0.0)
            out[col] = s
        else:
            out[col] = s.astype("string").fillna("(missing)").astype(object)
    return pd.DataFrame(out, index=frame.index)


def _model(x: pd.DataFrame, learner: Learner, seed: int, strength: float) -> Pipeline:
    """An unfitted classifier for the design ``x``: small, fixed settings, one thread.

    ``strength`` is the logistic regression's C (inverse penalty).
    """
    numeric = [c for c in x.columns if x[c].dtype == float]
    categorical = [c for c in x.columns if c not in numeric]
    if learner == "lightgbm":
        from lightgbm import LGBMClassifier

        pre = ColumnTransformer(
            [("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
            remainder="passthrough",
        )
        return make_pipeline(pre, LGBMClassifier(
            n_estimators=100, learning_rate=0.05, num_leaves=7, min_child_samples=20,
            reg_lambda=1.0, num_threads=1, deterministic=True, force_row_wise=True,
            random_state=seed, verbose=-1,
        ))  # fmt: skip
    curved = [c for c in numeric if x[c].nunique() >= SPLINE_MIN_DISTINCT]
    straight = [c for c in numeric if c not in curved]
    parts: list[tuple[str, object, list[str]]] = [
        ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
        ("lin", StandardScaler(), straight),
        ("spline", SplineTransformer(n_knots=5, degree=3, knots="quantile"), curved),
    ]
    pre = ColumnTransformer([p for p in parts if p[2]])
    return make_pipeline(pre, LogisticRegression(C=strength, max_iter=5000))


def _fit_predict(
    x: pd.DataFrame, target: np.ndarray, train: np.ndarray, test: np.ndarray,
    learner: Learner, seed: int, strength: float,
) -> np.ndarray:  # fmt: skip
    """P(target = 1) on ``test`` from a model fitted on ``train``; a constant if one class."""
    yt = target[train]
    if yt.min() == yt.max():
        return np.full(test.size, float(yt[0]))
    model = _model(x, learner, seed, strength).fit(x.iloc[train], yt)
    return np.asarray(model.predict_proba(x.iloc[test])[:, 1], float)


def cross_fit(
    x: pd.DataFrame, t: np.ndarray, y: np.ndarray, *, folds: int, learner: Learner, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-fold propensity e and outcome models mu0, mu1 for every unit."""
    e, mu0, mu1 = np.empty(t.size), np.empty(t.size), np.empty(t.size)
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in split.split(np.zeros(t.size), t):
        e[test] = _fit_predict(x, t, train, test, learner, seed, PROPENSITY_C)
        for arm, mu in ((0.0, mu0), (1.0, mu1)):
            rows = train[t[train] == arm]
            mu[test] = _fit_predict(x, y, rows, test, learner, seed, OUTCOME_C)
    return e, mu0, mu1
