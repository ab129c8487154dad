"""The scorer a registered model carries: everything ``churn score`` and a served model need
to turn feature rows into a probability, a health score, a band, drivers in words and a play.

It holds plain data only, stored as plain files beside the model (no pickle):

- ``booster.txt``: the trees, as LightGBM's own model string;
- ``model.json``: the feature declarations, the categorical levels seen at fit, the number
  of rounds, the calibrator's parameters (an isotonic calibrator's thresholds as two
  arrays, or Platt's intercept and slope), the model's common events and its plays;
- ``scoring.json``: the scoring context of training (healthy-peer references, band
  thresholds, and what the report says about the backtest; :mod:`pipelines.context`).

Batch scoring (``churn score``, on DuckDB or per Spark partition) and the served model
(:mod:`models.serving`) both call :meth:`HealthScorer.score`, so the two cannot drift apart.
Only ``numpy``, ``pandas``, ``scipy``, ``pydantic`` and ``lightgbm`` are imported, with
:mod:`features.catalog`, :mod:`features.config` and the ``models`` modules it names: the
model's ``code_paths`` and requirements are enough to load it anywhere.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.catalog import Feature
from models.bands import assign_bands, health_score
from models.columns import check_columns, matrix
from models.explain import contributions, explain_rows, family_contributions
from models.plays import PlayConfig, choose_play

if TYPE_CHECKING:
    from models.calibration import Method
    from models.train import ChurnModel

#: The files of a scorer, by the name MLflow's ``artifacts`` give them.
FILES = {"booster": "booster.txt", "model": "model.json", "scoring": "scoring.json"}
#: Version of ``model.json``'s layout; a later layout must still read this one.
FORMAT = 1
#: How the protective factor is marked in the ``drivers`` text (the report splits on it).
PROTECTIVE = "Protective: "
#: What the served model answers per row, after ``account_id`` when the caller sent one.
ANSWER = (
    "churn_probability", "health_score", "band", "drivers", "protective_factor", "play",
    "top_driver",
)  # fmt: skip
#: Inputs a caller may send besides the features: echoed (``account_id``), or read for the
#: per-segment bands and references (``segment``, when it is not a feature itself).
OPTIONAL_INPUTS = ("account_id", "segment")


def request_rows(features: Sequence[Feature], frame: pd.DataFrame) -> pd.DataFrame:
    """Feature rows (e.g. a scoring set's frame, or ``churn features`` output) as a caller
    sends them to the served model: ``account_id`` when present, the model's features
    (categories as text, numbers as floats, missing values as None / NaN), and ``segment``
    when it is no feature."""

    def text(col: pd.Series) -> pd.Series:
        return col.astype(object).map(lambda v: None if pd.isna(v) else str(v))

    cols: dict[str, pd.Series] = {}
    if "account_id" in frame:
        cols["account_id"] = text(frame["account_id"])
    for f in features:
        col = frame[f.name]
        cols[f.name] = (
            text(col) if f.categorical else pd.to_numeric(col, errors="coerce").astype("float64")
        )
    if "segment" in frame and "segment" not in cols:
        cols["segment"] = text(frame["segment"])
    return pd.DataFrame(cols).reset_index(drop=True)


@dataclass(frozen=True)
class Calibrator:
    """The calibrator of a fitted :class:`models.train.ChurnModel` as plain numbers.

    ``isotonic``: scikit-learn's ``IsotonicRegression(out_of_bounds="clip")``, i.e. the raw
    score clipped to ``[x_min, x_max]`` and interpolated linearly between the thresholds
    ``x`` -> ``y`` (with SciPy's ``interp1d``, as scikit-learn does, so the result is the
    same to the last bit). ``platt``: ``1 / (1 + exp(-(intercept + slope * logit(raw))))``
    with the raw score clipped to ``[1e-6, 1 - 1e-6]``
    (:class:`models.calibration.PlattCalibrator`). One form per method of
    :data:`models.calibration.METHODS`.
    """

    method: Method
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    x_min: float = math.nan
    x_max: float = math.nan
    intercept: float = math.nan
    slope: float = math.nan

    @classmethod
    def of(cls, fitted: Any) -> Calibrator:
        """The parameters of a fitted isotonic or Platt calibrator."""
        if hasattr(fitted, "X_thresholds_"):
            return cls(
                "isotonic",
                x=tuple(float(v) for v in fitted.X_thresholds_),
                y=tuple(float(v) for v in fitted.y_thresholds_),
                x_min=float(fitted.X_min_),
                x_max=float(fitted.X_max_),
            )
        if hasattr(fitted, "slope_"):
            return cls("platt", intercept=float(fitted.intercept_), slope=float(fitted.slope_))
        raise TypeError(f"unknown calibrator {type(fitted).__name__}: expected isotonic or Platt")

    def to_json(self) -> dict[str, Any]:
        if self.method == "isotonic":
            return {"method": "isotonic", "x": list(self.x), "y": list(self.y),
                    "x_min": self.x_min, "x_max": self.x_max}  # fmt: skip
        return {"method": "platt", "intercept": self.intercept, "slope": self.slope}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Calibrator:
        if data["method"] == "isotonic":
            return cls("isotonic", x=tuple(map(float, data["x"])), y=tuple(map(float, data["y"])),
                       x_min=float(data["x_min"]), x_max=float(data["x_max"]))  # fmt: skip
        if data["method"] == "platt":
            return cls("platt", intercept=float(data["intercept"]), slope=float(data["slope"]))
        raise ValueError(f"unknown calibration method {data['method']!r} in {FILES['model']}")

    def predict(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated churn probabilities of the trees' raw probabilities, clipped to [0, 1]."""
        raw = np.asarray(raw, dtype=np.float64).reshape(-1)
        if self.method == "isotonic":
            if len(self.y) == 1:  # one level: scikit-learn predicts it everywhere
                out = np.repeat(np.asarray(self.y, dtype=np.float64), raw.shape)
            else:
                from scipy.interpolate import interp1d

                f = interp1d(np.asarray(self.x), np.asarray(self.y), kind="linear",
                             bounds_error=False)  # fmt: skip
                out = f(np.clip(raw, self.x_min, self.x_max)).astype(np.float64)
        else:
            p = np.clip(raw, 1e-6, 1 - 1e-6)
            out = 1.0 / (1.0 + np.exp(-(self.intercept + self.slope * np.log(p / (1 - p)))))
        return np.clip(out, 0.0, 1.0)


@dataclass(frozen=True)
class Scored:
    """What :meth:`HealthScorer.score` gives for a batch of rows, in the batch's order.

    ``answers`` holds the :data:`ANSWER` columns; ``driver_lists`` each row's drivers (risk
    drivers, then the protective factor marked with :data:`PROTECTIVE`); ``families`` the
    family contributions (one column per family of the model, log-odds); ``X`` the model
    matrix (the inputs as the trees read them).
    """

    answers: pd.DataFrame
    driver_lists: list[list[str]]
    families: pd.DataFrame
    X: pd.DataFrame


class HealthScorer:
    """Calibrated churn probability, health score, band, drivers and play for feature rows.

    It reads like a fitted :class:`models.train.ChurnModel` (``features_``, ``categories_``,
    ``booster_``, ``n_estimators_``, ``feature_names_in_``, :meth:`predict_risk`), so code
    written for the fitted model reads it too. Build it with :meth:`from_model` at training
    time, write it with :meth:`save`, read it back with :meth:`load`.
    """

    def __init__(
        self,
        booster: lgb.Booster,
        features: Sequence[Feature],
        categories: Mapping[str, list[str]],
        n_estimators: int,
        calibrator: Calibrator,
        context: Mapping[str, Any],
        plays: PlayConfig,
        top_events: Sequence[str] = (),
    ) -> None:
        self.booster_ = booster
        self.features_ = tuple(features)
        self.feature_names_in_ = np.array([f.name for f in self.features_], dtype=object)
        self.categories_ = {k: list(v) for k, v in categories.items()}
        self.n_estimators_ = int(n_estimators)
        self.calibrator = calibrator
        self.context = dict(context)
        self.plays = plays
        self.top_events = tuple(top_events)
        self.families = sorted({f.family for f in self.features_})

    # ------------------------------------------------------------ building and files

    @classmethod
    def from_model(
        cls,
        model: ChurnModel,
        context: Mapping[str, Any],
        plays: PlayConfig | None = None,
        top_events: Sequence[str] = (),
    ) -> HealthScorer:
        """The scorer of a fitted model, with the scoring context of its training."""
        return cls(
            lgb.Booster(model_str=model.model_string), model.features_, model.categories_,
            model.n_estimators_, Calibrator.of(model.calibrator_), context,
            plays or PlayConfig(), top_events,
        )  # fmt: skip

    def save(self, folder: Path) -> dict[str, Path]:
        """Write the scorer's files into ``folder``; returns them by artifact name."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = {name: folder / file for name, file in FILES.items()}
        paths["booster"].write_text(self.booster_.model_to_string(), encoding="utf-8")
        model = {
            "format": FORMAT,
            "features": [asdict(f) for f in self.features_],
            "categories": self.categories_,
            "n_estimators": self.n_estimators_,
            "calibrator": self.calibrator.to_json(),
            "top_events": list(self.top_events),
            "plays": self.plays.model_dump(mode="json"),
        }
        paths["model"].write_text(json.dumps(model, indent=1), encoding="utf-8")
        paths["scoring"].write_text(json.dumps(self.context, indent=1), encoding="utf-8")
        return paths

    @classmethod
    def load(cls, paths: Mapping[str, str | Path]) -> HealthScorer:
        """Read a scorer from its files (:data:`FILES`, by artifact name)."""
        model = json.loads(Path(paths["model"]).read_text(encoding="utf-8"))
        if int(model.get("format", 0)) > FORMAT:
            raise ValueError(
                f"{FILES['model']} has format {model['format']}, newer than this code reads "
                f"({FORMAT}): load the model with the churn-health version that logged it"
            )
        names = {f.name for f in fields(Feature)}
        features = [Feature(**{k: v for k, v in d.items() if k in names})
                    for d in model["features"]]  # fmt: skip
        booster = lgb.Booster(model_str=Path(paths["booster"]).read_text(encoding="utf-8"))
        context = json.loads(Path(paths["scoring"]).read_text(encoding="utf-8"))
        return cls(
            booster, features, model["categories"], model["n_estimators"],
            Calibrator.from_json(model["calibrator"]), context,
            PlayConfig.model_validate(model["plays"]), model.get("top_events", ()),
        )  # fmt: skip

    # ------------------------------------------------------------ a fitted model's reading

    def _check(self, frame: pd.DataFrame) -> pd.DataFrame:
        check_columns(frame, list(self.feature_names_in_), at_fit=False)
        return matrix(frame, self.features_, self.categories_)

    def _raw(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster_.predict(X, num_iteration=self.n_estimators_), float)

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """The trees' uncalibrated churn probability for each row of ``frame``."""
        return self._raw(self._check(frame))

    def predict_risk(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probability for each row of ``frame`` (1-D)."""
        return self.calibrator.predict(self.predict_raw(frame))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """scikit-learn's shape: column 0 the probability of renewal, column 1 of churn."""
        p = self.predict_risk(frame)
        return np.column_stack([1 - p, p])

    # ------------------------------------------------------------ scoring

    def score(
        self,
        frame: pd.DataFrame,
        plays: PlayConfig | None = None,
        probability: np.ndarray | None = None,
    ) -> Scored:
        """Score, band, explain and route each row of ``frame``, row by row (no step reads
        other rows, so a row's answer does not depend on the batch it comes in).

        ``frame`` holds the model's features; ``segment`` (a column, when present) picks the
        per-segment thresholds and the healthy peers a driver is compared with. ``plays``
        replaces the model's own plays; ``probability`` the calibrated probabilities (when
        computed elsewhere). A missing feature column is a ``ValueError`` naming it.
        """
        frame = frame.reset_index(drop=True)
        X = self._check(frame)
        p = (
            self.calibrator.predict(self._raw(X))
            if probability is None
            else np.asarray(probability, dtype=np.float64)
        )
        contrib = contributions(self.booster_, X, self.n_estimators_)
        fam = family_contributions(contrib, self.features_).reindex(
            columns=self.families, fill_value=0.0
        )
        refs = self.context.get("references", {})
        explained = explain_rows(frame, contrib, self.features_, refs)
        th = self.context["thresholds"]
        per_segment = {k: (v[0], v[1]) for k, v in self.context.get("per_segment", {}).items()}
        segment = frame.get("segment")
        bands = assign_bands(p, segment, (th["yellow"], th["red"]), per_segment)
        routes = plays or self.plays
        driver_lists, top, protective = [], [], []
        for risks, guard in explained:
            items = [d.text for d in risks]
            if guard is not None:
                items.append(PROTECTIVE + guard.text)
            driver_lists.append(items)
            top.append(risks[0].family if risks else None)
            protective.append(guard.text if guard is not None else "")
        answers = pd.DataFrame(
            {
                "churn_probability": p,
                "health_score": health_score(p),
                "band": bands.astype("str"),
                "drivers": ["; ".join(items) for items in driver_lists],
                "protective_factor": protective,
                "play": [choose_play(f, b, routes) for f, b in zip(top, bands, strict=True)],
                "top_driver": [f or "" for f in top],
            }
        )
        return Scored(answers, driver_lists, fam.reset_index(drop=True), X)

    def answer(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The served answer: ``account_id`` when sent, then the :data:`ANSWER` columns."""
        frame = pd.DataFrame(frame).reset_index(drop=True)
        answers = self.score(frame).answers
        if "account_id" in frame:
            ids = frame["account_id"].astype("object").where(frame["account_id"].notna(), None)
            answers.insert(0, "account_id", ids.map(lambda v: None if v is None else str(v)))
        return answers
