"""What the learned model must beat, scored on the same rows: three baselines.

Each is an estimator with ``fit(frame, features)`` and ``predict_risk(frame)`` (higher:
more likely to churn), like :class:`models.train.ChurnModel`.

- :class:`HealthScore`: the classic hand-weighted health score of customer-success tools.
- :class:`EngagementScore`: a Product Engagement Score in Pendo's style.
- :class:`LogisticBaseline`: L2 logistic regression on the same declared features.

Each is declared once in :data:`BASELINES` (a :class:`Baseline`: its name, plot label,
scale and maker), from which the backtest, the plots and the logged metrics read it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from features.catalog import Feature
from models.columns import categories_of, check_columns, check_training_frame, matrix
from models.metrics import GREEN, RED, YELLOW

#: Fixed weights of the hand-weighted score, as commonly configured in CS platforms:
#: usage frequency, breadth (users, seats) and depth (features) carry most of the weight,
#: the voice of the customer (NPS) and support pain a tenth each. Families absent from the
#: data (or empty for a row) are left out and the remaining weights rescaled to sum to 1.
HEALTH_WEIGHTS: dict[str, float] = {
    "frequency": 0.30,
    "breadth": 0.25,
    "depth": 0.25,
    "voice": 0.10,
    "support": 0.10,
}
#: Health-score bands: red below 40, yellow below 70, green from 70 (0-100 scale).
HEALTH_BANDS: tuple[float, float] = (40.0, 70.0)
#: The 30-day features each component reads, when declared.
HEALTH_COMPONENTS: dict[str, tuple[str, ...]] = {
    "frequency": ("events_30d", "active_days_30d", "user_days_30d"),
    "breadth": ("active_users_30d", "utilisation_30d"),
    "depth": ("distinct_events_30d", "key_events_30d", "key_share_30d"),
    "voice": ("nps_last",),
    "support": ("urgent_open", "high_open", "tickets_30d"),
}
#: Pendo's PES: adoption (breadth of features used), stickiness, growth.
PES_COMPONENTS: dict[str, tuple[str, ...]] = {
    "adoption": ("distinct_events_30d", "key_share_30d"),
    "stickiness": ("stickiness_30d",),
    "growth": ("events_change_30d", "active_users_change_30d"),
}


def health_band(score: np.ndarray, bands: tuple[float, float] = HEALTH_BANDS) -> np.ndarray:
    """Red/yellow/green of a 0-100 health score (higher is healthier)."""
    score = np.asarray(score, float)
    return np.where(score < bands[0], RED, np.where(score < bands[1], YELLOW, GREEN))


class _PercentileScore(BaseEstimator):
    """Shared machinery: percentile of each component feature among the training rows.

    A feature healthy when "lower" is flipped (100 minus its percentile). A component's
    score is the mean of its features' percentiles that are present for the row, and the
    total is the weighted mean of the components present, on 0-100 (higher: healthier).
    """

    components: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    weights: ClassVar[Mapping[str, float]] = {}

    def fit(self, frame: pd.DataFrame, features: Sequence[Feature]) -> _PercentileScore:
        """Remember, per component feature, the sorted training values (labels unused)."""
        check_training_frame(frame, features)
        declared = {f.name: f for f in features}
        self.used_ = {
            comp: tuple(n for n in names if n in declared)
            for comp, names in self.components.items()
            if any(n in declared for n in names)
        }
        if not self.used_:
            raise ValueError(
                f"{type(self).__name__} needs at least one of "
                f"{sorted({n for v in self.components.values() for n in v})} among the features"
            )
        self.healthy_ = {n: declared[n].healthy for names in self.used_.values() for n in names}
        self.reference_ = {
            n: np.sort(pd.to_numeric(frame[n], errors="coerce").dropna().to_numpy(float))
            for n in self.healthy_
        }
        self.feature_names_in_ = np.array(list(self.healthy_), dtype=object)
        return self

    def _percentile(self, name: str, values: pd.Series) -> np.ndarray:
        ref = self.reference_[name]
        x = pd.to_numeric(values, errors="coerce").to_numpy(float)
        if ref.size == 0:
            return np.full(x.shape, np.nan)
        # Mid-rank percentile: ties share the middle of their range, so a constant
        # feature scores 50 instead of 0 or 100.
        pct = 50.0 * (np.searchsorted(ref, x, "left") + np.searchsorted(ref, x, "right"))
        pct = pct / ref.size
        pct = 100.0 - pct if self.healthy_[name] == "lower" else pct
        return np.where(np.isnan(x), np.nan, pct)

    def components_of(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Each component's 0-100 score per row (NaN where none of its features is known)."""
        check_columns(frame, list(self.feature_names_in_), at_fit=False)
        out = {}
        for comp, names in self.used_.items():
            stacked = np.column_stack([self._percentile(n, frame[n]) for n in names])
            with np.errstate(invalid="ignore"):
                known = ~np.isnan(stacked)
                total = np.where(known, stacked, 0.0).sum(axis=1)
                count = known.sum(axis=1)
                out[comp] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        return pd.DataFrame(out, index=frame.index)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """The 0-100 score per row (higher: healthier); 50 when nothing is known."""
        parts = self.components_of(frame)
        w = np.array([self.weights.get(c, 1.0) for c in parts.columns])
        values = parts.to_numpy(float)
        known = ~np.isnan(values)
        weight = (known * w).sum(axis=1)
        total = (np.where(known, values, 0.0) * w).sum(axis=1)
        return np.where(weight > 0, total / np.where(weight > 0, weight, 1.0), 50.0)

    def predict_risk(self, frame: pd.DataFrame) -> np.ndarray:
        """Churn risk on [0, 1]: ``1 - score / 100`` (a ranking, not a probability)."""
        return 1.0 - self.score(frame) / 100.0

    def band(self, frame: pd.DataFrame) -> np.ndarray:
        """Red/yellow/green per row, from :data:`HEALTH_BANDS`."""
        return health_band(self.score(frame))


class HealthScore(_PercentileScore):
    """The hand-weighted health score: :data:`HEALTH_WEIGHTS` over :data:`HEALTH_COMPONENTS`."""

    components: ClassVar[Mapping[str, tuple[str, ...]]] = HEALTH_COMPONENTS
    weights: ClassVar[Mapping[str, float]] = HEALTH_WEIGHTS


class EngagementScore(_PercentileScore):
    """Product Engagement Score (Pendo style): the mean of adoption, stickiness and growth.

    Each component is a percentile among the training rows (:data:`PES_COMPONENTS`), and
    the three are weighted equally, as Pendo defines PES.
    """

    components: ClassVar[Mapping[str, tuple[str, ...]]] = PES_COMPONENTS
    weights: ClassVar[Mapping[str, float]] = {"adoption": 1.0, "stickiness": 1.0, "growth": 1.0}


class LogisticBaseline(BaseEstimator):
    """L2 logistic regression: numeric features median-imputed and standardised,
    categorical ones one-hot encoded (unknown levels ignored).

    Parameters
    ----------
    C
        Inverse L2 strength, as in :class:`sklearn.linear_model.LogisticRegression`.
    """

    def __init__(self, C: float = 1.0) -> None:
        self.C = C

    def fit(self, frame: pd.DataFrame, features: Sequence[Feature]) -> LogisticBaseline:
        """Learn from the labelled rows of ``frame``."""
        check_training_frame(frame, features)
        frame = frame.loc[frame["label"].notna()]
        self.features_ = tuple(features)
        self.feature_names_in_ = np.array([f.name for f in features], dtype=object)
        self.categories_ = categories_of(frame, features)
        numeric = [f.name for f in features if not f.categorical]
        categorical = [f.name for f in features if f.categorical]
        impute = SimpleImputer(strategy="median", keep_empty_features=True)
        prep = ColumnTransformer(
            [
                ("num", make_pipeline(impute, StandardScaler()), numeric),
                ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
            ]
        )
        self.pipeline_ = Pipeline(
            [
                ("prep", prep),
                ("lr", LogisticRegression(C=self.C, solver="newton-cholesky", max_iter=200)),
            ]
        )
        X = self._matrix(frame)
        self.pipeline_.fit(X, frame["label"].to_numpy(dtype=np.int64))
        return self

    def _matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        X = matrix(frame, self.features_, self.categories_)
        for name in self.categories_:
            # The encoder wants strings; missing becomes its own level.
            X[name] = X[name].astype(object).where(X[name].notna(), "(missing)").astype(str)
        return X

    def predict_risk(self, frame: pd.DataFrame) -> np.ndarray:
        """Churn probability per row (uncalibrated beyond what the logistic fit gives)."""
        if not hasattr(self, "pipeline_"):
            raise ValueError("this LogisticBaseline is not fitted yet: call fit first")
        check_columns(frame, list(self.feature_names_in_), at_fit=False)
        return self.pipeline_.predict_proba(self._matrix(frame))[:, 1]


@dataclass(frozen=True)
class Scorer:
    """A scorer the backtest compares on the same rows: its risk column is ``name``.

    ``label`` names it in plots; ``probabilistic`` marks a risk that is a probability
    (Brier, log loss and calibration apply); ``health_scale`` one that is ``1 - score /
    100`` of a 0-100 health score (banded by :data:`HEALTH_BANDS`, not by the fold's
    thresholds). The registry of every scorer is :data:`models.scorers.SCORERS`; this class
    lives here because each :class:`Baseline` is one.
    """

    name: str
    label: str
    _: KW_ONLY
    probabilistic: bool = False
    health_scale: bool = False


@dataclass(frozen=True)
class Baseline(Scorer):
    """A scorer the learned model is compared with, in every backtest fold.

    ``make`` gives an unfitted estimator with ``fit(frame, features)`` and
    ``predict_risk(frame)``, fitted on each fold's training rows.
    """

    make: Callable[[], Any]


#: Every baseline, in the order tables and plots show them: the backtest fits and scores
#: each of them in every fold; they enter :data:`models.scorers.SCORERS` from here.
BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("health_score", "hand-weighted health score", HealthScore, health_scale=True),
        Baseline(
            "engagement_score", "product engagement score", EngagementScore, health_scale=True
        ),
        Baseline("logistic", "logistic regression", LogisticBaseline, probabilistic=True),
    )
}
