"""MLflow at the edge: where runs go, the pyfunc model, and the champion alias.

Nothing here runs at import time; :func:`setup_tracking` is called by the stage that
starts a run. The tracking URI is, in order: ``tracking.uri`` of the config, the
``MLFLOW_TRACKING_URI`` environment variable, else ``sqlite:///<cwd>/mlruns/mlflow.db``
with artifacts in ``<cwd>/mlruns/artifacts`` (``mlflow ui --backend-store-uri`` that URI
shows it all). Optuna studies go to ``optuna.db`` beside a SQLite tracking store.
"""

from __future__ import annotations

import importlib.metadata as md
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel

from features.catalog import dictionary
from models.champion import GateDecision
from models.train import ChurnModel
from pipelines.config import TrackingConfig

CHAMPION = "champion"
#: Version tags holding the model's pooled backtest figures (for people, not the gate).
METRIC_TAG = "backtest_{}"
GATE_METRICS = ("roc_auc", "brier")


@dataclass(frozen=True)
class Tracking:
    """Where this run's records go."""

    uri: str
    experiment: str
    experiment_id: str
    registered_model: str
    optuna_storage: str


def resolve_tracking_uri(cfg: TrackingConfig, cwd: Path | None = None) -> str:
    """The config's URI, else ``MLFLOW_TRACKING_URI``, else a SQLite file under ``mlruns/``."""
    if cfg.uri:
        return cfg.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = (cwd or Path.cwd()).resolve() / "mlruns"
    return f"sqlite:///{root / 'mlflow.db'}"


def _sqlite_dir(uri: str) -> Path | None:
    """The folder of a ``sqlite:///path/file.db`` store (``None`` for anything else)."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :]).parent if uri.startswith(prefix) else None


def setup_tracking(cfg: TrackingConfig, cwd: Path | None = None) -> Tracking:
    """Point MLflow at the store and make sure the experiment exists.

    For a SQLite store the folder is created and the experiment's artifacts go to
    ``artifacts/`` beside the database, so a run never writes into the working directory by
    accident; other stores keep their server's default artifact location.
    """
    uri = resolve_tracking_uri(cfg, cwd)
    folder = _sqlite_dir(uri)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    existing = mlflow.get_experiment_by_name(cfg.experiment)
    if existing is not None:
        experiment_id = existing.experiment_id
    else:
        location = (folder / "artifacts").as_uri() if folder is not None else None
        experiment_id = mlflow.create_experiment(cfg.experiment, artifact_location=location)
    storage_dir = folder if folder is not None else (cwd or Path.cwd()).resolve() / "mlruns"
    storage_dir.mkdir(parents=True, exist_ok=True)
    return Tracking(
        uri=uri,
        experiment=cfg.experiment,
        experiment_id=experiment_id,
        registered_model=cfg.registered_model,
        optuna_storage=f"sqlite:///{storage_dir / 'optuna.db'}",
    )


def _input_frame(model: ChurnModel, frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns, categoricals as plain strings (what a caller sends)."""
    cols = {}
    for f in model.features_:
        col = frame[f.name]
        if f.categorical:
            cols[f.name] = col.astype(object).where(col.notna(), None)
        else:
            cols[f.name] = pd.to_numeric(col, errors="coerce").astype("float64")
    return pd.DataFrame(cols).reset_index(drop=True)


class ChurnPyfunc(PythonModel):
    """The fitted :class:`ChurnModel` as an MLflow pyfunc: ``predict`` gives calibrated churn
    probabilities, one per input row, in a frame with column ``churn_probability``."""

    def __init__(self, model: ChurnModel) -> None:
        self.model = model

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        return pd.DataFrame({"churn_probability": self.model.predict_risk(frame)})


def log_churn_model(
    model: ChurnModel,
    frame: pd.DataFrame,
    top_events: Sequence[str] = (),
    name: str = "model",
) -> mlflow.models.model.ModelInfo:
    """Log ``model`` in the active run as a pyfunc with signature, input example and the
    feature declarations (``features.json``: the feature dictionary and ``top_events``).

    The packages ``features`` and ``models`` travel with the model (``code_paths``), so it
    loads where this project is not installed; requirements are pinned to the versions in
    use instead of being inferred (inference loads the model in a subprocess: slow).
    """
    # The signature reads many rows: five could all lack a plan, leaving its type unknown.
    sample = _input_frame(model, frame.head(2000))
    signature = infer_signature(sample, ChurnPyfunc(model).predict(None, sample))
    example = sample.head(5)
    meta = {
        "features": dictionary(model.features_),
        "top_events": list(top_events),
        "calibration": model.calibration_,
        "n_estimators": model.n_estimators_,
        "lgb_params": {k: v for k, v in model.lgb_params_.items() if k != "monotone_constraints"},
        "monotone": bool(model.monotone),
    }
    here = Path(__file__).resolve().parent.parent
    mlflow.log_dict(meta, "features.json")
    pins = [f"{p}=={md.version(p)}" for p in ("lightgbm", "scikit-learn", "pandas", "numpy",
                                              "scipy", "pydantic", "mlflow")]  # fmt: skip
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=ChurnPyfunc(model),
        signature=signature,
        input_example=example,
        code_paths=[str(here / "features"), str(here / "models")],
        pip_requirements=pins,
        metadata={"features": [f.name for f in model.features_]},
    )


@dataclass(frozen=True)
class Registration:
    """A registered version and what the champion gate decided for it."""

    version: str
    is_champion: bool
    decision: GateDecision
    previous_champion: str | None


def register_with_gate(
    model_uri: str,
    run_id: str,
    metrics: Mapping[str, float],
    registered_model: str,
    decision: GateDecision,
    *,
    previous_champion: str | None = None,
    extra_tags: Mapping[str, str] | None = None,
) -> Registration:
    """Register ``model_uri`` as a new version; move the ``champion`` alias if ``decision``
    promotes it.

    ``metrics`` (the challenger's pooled backtest figures) are stored as version tags for
    people browsing the registry; the gate never compares them across runs
    (:mod:`models.champion` compares models on identical rows). The run and the version
    get the tags ``champion_decision``, ``is_champion`` and, when forced,
    ``champion_forced=true``; the run also gets ``registered_version``.
    """
    client = MlflowClient()
    tags = {METRIC_TAG.format(k): f"{float(metrics[k]):.6f}" for k in GATE_METRICS if k in metrics}
    mv = mlflow.register_model(model_uri, registered_model, tags={**tags, **(extra_tags or {})})
    reason = decision.reason[:4900]  # MLflow caps tag values at 5,000 characters
    client.set_model_version_tag(registered_model, mv.version, "champion_decision", reason)
    client.set_tag(run_id, "champion_decision", reason)
    client.set_tag(run_id, "registered_version", str(mv.version))
    if decision.forced:
        client.set_tag(run_id, "champion_forced", "true")
        client.set_model_version_tag(registered_model, mv.version, "champion_forced", "true")
    if decision.promote:
        client.set_registered_model_alias(registered_model, CHAMPION, mv.version)
    client.set_tag(run_id, "is_champion", str(decision.promote).lower())
    return Registration(
        version=str(mv.version),
        is_champion=decision.promote,
        decision=decision,
        previous_champion=previous_champion,
    )
