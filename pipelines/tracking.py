"""MLflow at the edge: where runs go, the pyfunc model, and the champion alias.

Nothing here runs at import time; :func:`setup_tracking` is called by the stage that
starts a run, :func:`open_tracking` (which creates nothing) by the stages that only read a
model. The tracking URI is, in order: ``tracking.uri`` of the config, the
``MLFLOW_TRACKING_URI`` environment variable, else ``sqlite:///<cwd>/mlruns/mlflow.db``
with artifacts in ``<cwd>/mlruns/artifacts`` (``mlflow ui --backend-store-uri`` that URI
shows it all). Optuna studies go to ``optuna.db`` beside a SQLite tracking store.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, DataType, Schema

from features.catalog import dictionary
from features.errors import ContractError
from models.champion import GateDecision
from models.plays import PlayConfig
from models.scorer import FORMAT, OPTIONAL_INPUTS, HealthScorer, request_rows
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


def _local_store(uri: str) -> Path | None:
    """Where a local store lives: a SQLite file, or a file store's folder (else ``None``)."""
    folder = _sqlite_dir(uri)
    if folder is not None:
        return Path(uri.removeprefix("sqlite:///"))
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    return Path(uri) if parsed.scheme == "" else None


def open_tracking(cfg: TrackingConfig, cwd: Path | None = None) -> str:
    """Point MLflow at an existing store to read models from it; create nothing.

    Scoring and explaining only read. A local store that does not exist means nothing was
    trained with these settings: a user error (:class:`ContractError`), and no reason to
    create an empty store, an experiment or an ``mlruns/`` folder where the command runs.
    Returns the tracking URI.
    """
    uri = resolve_tracking_uri(cfg, cwd)
    store = _local_store(uri)
    if store is not None and not store.exists():
        raise ContractError(
            f"tracking.uri: there is no MLflow store at {store} ({uri}), so no model (and no "
            "champion) to score with: nothing was trained with these settings. Train a model "
            "first (churn train --data DIR, run from this folder), or point tracking.uri in "
            "churn.yaml (or MLFLOW_TRACKING_URI) at the store that holds your models."
        )
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def check_model_uri(uri: str, tracking_uri: str) -> None:
    """Refuse a model URI (``--model``) that names nothing in the store, listing what is there.

    ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``models:/MODEL_ID`` (a logged model),
    ``runs:/RUN_ID/...`` and local paths are checked; other URIs (``models:/NAME/latest``),
    and a store that cannot be asked, are left to the loader to report.
    """
    client = MlflowClient()
    try:
        if uri.startswith("models:/"):
            name, at, alias = uri.removeprefix("models:/").partition("@")
            name, _, version = name.partition("/")
            if at:
                client.get_model_version_by_alias(name, alias)
            elif version.isdigit():
                client.get_model_version(name, version)
            elif not version:  # models:/<model id> of a logged model (MLflow 3)
                client.get_logged_model(name)
            return
        if uri.startswith("runs:/"):
            client.get_run(uri.removeprefix("runs:/").split("/")[0])
            return
    except MlflowException as err:
        if err.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return
        found = f"{err.message.rstrip('.')} in the MLflow store {tracking_uri}"
    else:
        parsed = urlparse(uri)
        if parsed.scheme not in ("", "file") or Path(parsed.path).exists():
            return
        found = f"no such file or folder ({Path(parsed.path).absolute()})"
    raise ContractError(
        f"--model {uri}: {found}. {registered_models(client)} Pass --model "
        "models:/NAME/VERSION, models:/NAME@champion or runs:/RUN_ID/model (churn train "
        f"prints each model's URI), or browse the store: mlflow ui --backend-store-uri "
        f"{tracking_uri}"
    )


def registered_models(client: MlflowClient, most: int = 10) -> str:
    """The registered models of the store, their versions and champions, in one sentence."""
    try:
        models = client.search_registered_models(max_results=most)
        parts = []
        for rm in models:
            found = client.search_model_versions(f"name = '{rm.name}'")
            versions = sorted(int(v.version) for v in found)
            shown = ", ".join(str(v) for v in versions[-most:])
            more = "" if len(versions) <= most else f" (and {len(versions) - most} earlier)"
            champion = rm.aliases.get(CHAMPION)
            best = f", champion {champion}" if champion else ", no champion"
            word = "version" if len(versions) == 1 else "versions"
            parts.append(f"{rm.name} ({word} {shown}{more}{best})")
    except MlflowException:  # a name the filter cannot quote: the listing is only a help
        return ""
    if not parts:
        return "The store has no registered model."
    return f"Registered there: {'; '.join(parts)}."


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


class ChurnPyfunc(PythonModel):
    """The pickled pyfunc of models logged before the self-contained model: kept only so
    that those registered versions still load (:func:`pipelines.scoring_model.load_scoring_model`
    builds their scorer from the run's files). New models are :class:`ChurnHealthModel`."""

    def __init__(self, model: ChurnModel) -> None:
        self.model = model

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        return pd.DataFrame({"churn_probability": self.model.predict_risk(frame)})


#: What the logged model needs installed: what :mod:`models.scorer` and MLflow's scoring
#: server import, pinned to the versions in use (inferring them would load the model in a
#: subprocess: slow).
REQUIREMENTS = ("mlflow", "lightgbm", "numpy", "pandas", "scipy", "pydantic")


def _signature(model: HealthScorer, sample: pd.DataFrame) -> ModelSignature:
    """Every feature a required input column (its values may be missing), ``account_id``
    and ``segment`` (when no feature) optional ones; the outputs of :meth:`answer`."""
    optional = [c for c in OPTIONAL_INPUTS if c in sample and c not in model.feature_names_in_]
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold NaN; the health score never does.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        inferred = infer_signature(sample.drop(columns=optional), model.answer(sample))
    required = [ColSpec(c.type, c.name, required=True) for c in inferred.inputs.inputs]
    extra = [ColSpec(DataType.string, c, required=False) for c in optional]
    return ModelSignature(inputs=Schema([*required, *extra]), outputs=inferred.outputs)


def log_churn_model(
    model: ChurnModel,
    frame: pd.DataFrame,
    context: Mapping[str, Any],
    top_events: Sequence[str] = (),
    plays: PlayConfig | None = None,
    name: str = "model",
) -> mlflow.models.model.ModelInfo:
    """Log ``model`` in the active run as a self-contained pyfunc that answers like
    ``churn score``: probability, health score, band, drivers in words, play.

    ``context`` is the scoring context of training (``scoring.json``: references, band
    thresholds, the backtest's record), ``plays`` the plays of the run's settings. The model
    is logged as code (:mod:`models.model_code`), not pickled: a pickled class is imported
    by name when loaded, which breaks wherever that name is missing or has moved (the
    reason the first pyfunc failed outside this project). Its artifacts are the scorer's
    plain files (LightGBM's model string and JSON, :mod:`models.scorer`); its code the
    ``features`` and ``models`` packages (``code_paths``), which import nothing of the
    pipelines; its requirements :data:`REQUIREMENTS`, pinned. So it loads with
    ``mlflow.pyfunc.load_model`` and serves with ``mlflow models serve`` in an environment
    made from its own ``requirements.txt``. The run also gets ``features.json`` (the
    feature dictionary and ``top_events``).
    """
    scorer = HealthScorer.from_model(model, context, plays or PlayConfig(), top_events)
    # The signature reads many rows: five could all lack a plan, leaving its type unknown.
    sample = request_rows(scorer.features_, frame.head(2000))
    meta = {
        "features": dictionary(model.features_),
        "top_events": list(top_events),
        "calibration": model.calibration_,
        "n_estimators": model.n_estimators_,
        "lgb_params": {k: v for k, v in model.lgb_params_.items() if k != "monotone_constraints"},
        "monotone": bool(model.monotone),
    }
    mlflow.log_dict(meta, "features.json")
    here = Path(__file__).resolve().parent.parent
    pins = [f"{p}=={md.version(p)}" for p in REQUIREMENTS]
    with tempfile.TemporaryDirectory(prefix="churn-model-") as tmp:
        files = scorer.save(Path(tmp))
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(here / "models" / "model_code.py"),
            artifacts={key: str(path) for key, path in files.items()},
            signature=_signature(scorer, sample),
            input_example=sample.head(5),
            code_paths=[str(here / "features"), str(here / "models")],
            pip_requirements=pins,
            # The pins again, where loading reads them without scanning every installed
            # package (pipelines.scoring_model.version_mismatches).
            metadata={
                "features": [f.name for f in model.features_],
                "scorer_format": FORMAT,
                "requirements": pins,
            },
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
