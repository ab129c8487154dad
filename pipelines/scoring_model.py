"""Loading a model for scoring: the registered model, its scorer and where it came from.

:func:`load_scoring_model` reads a model logged by ``churn train`` (a ``models:/`` or
``runs:/`` URI) into a :class:`ScoringModel`: the model's own scorer (trees, calibrator,
references, thresholds, plays, the scoring context), the registry version and MLflow's
model id. A model that cannot be found or was not logged by ``churn train`` is a user error.
"""

from __future__ import annotations

import importlib.metadata as md
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.catalog import Feature
from features.errors import ContractError
from models.plays import PlayConfig
from models.scorer import HealthScorer
from models.serving import ChurnHealthModel
from models.train import ChurnModel
from pipelines.context import CONTEXT_FILE


@dataclass(frozen=True)
class ScoringModel:
    """A registered model with what scoring needs: trees, calibrator, declarations, context,
    plays (its :attr:`scorer`), and the registry version and MLflow model id it was
    loaded as.

    ``model`` is the loaded model's :class:`models.scorer.HealthScorer`; a fitted
    :class:`models.train.ChurnModel` is accepted too (benchmarks, tests), scored with
    ``context``, ``top_events`` and the default plays.
    """

    model: HealthScorer | ChurnModel
    top_events: tuple[str, ...]
    context: dict[str, Any]
    version: str
    uri: str
    #: MLflow's id of the logged model (``m-...``), None for a model logged without one.
    model_id: str | None = None

    @cached_property
    def scorer(self) -> HealthScorer:
        if isinstance(self.model, HealthScorer):
            return self.model
        return HealthScorer.from_model(self.model, self.context, PlayConfig(), self.top_events)

    @property
    def features(self) -> tuple[Feature, ...]:
        return self.model.features_

    @property
    def plays(self) -> PlayConfig:
        return self.scorer.plays


def default_model_uri(registered_model: str) -> str:
    return f"models:/{registered_model}@champion"


def registry_version(uri: str, run_id: str | None, model_id: str | None) -> str:
    """The registry version behind a model URI: "3" for ``models:/NAME/3`` and for an alias
    that points at version 3; for a logged model's or a run's URI (``models:/m-...``,
    ``runs:/...``), the version registered from that logged model, if any, else the model
    id ("m-...") or "run:<id>"."""
    client = MlflowClient()
    if uri.startswith("models:/"):
        ref = uri.removeprefix("models:/")
        name, at, alias = ref.partition("@")
        if at:
            return str(client.get_model_version_by_alias(name, alias).version)
        name, _, number = ref.partition("/")
        if number.isdigit():
            return number
    if run_id:
        try:
            found = list(client.search_model_versions(f"run_id = '{run_id}'"))
        except MlflowException:  # a store that cannot search versions: fall back on the id
            found = []
        # A version names its logged model by id, or (SQLite stores) by its source URI.
        ids = [(v, {v.model_id, str(v.source).removeprefix("models:/")}) for v in found]
        same = [int(v.version) for v, named in ids if model_id is None or model_id in named]
        if same:
            return str(max(same))
    if model_id:
        return model_id
    if uri.startswith("runs:/"):
        return "run:" + uri.removeprefix("runs:/").split("/")[0]
    return uri


def load_scoring_model(uri: str) -> ScoringModel:
    """Load a model logged by ``churn train`` (a ``models:/`` or ``runs:/`` URI).

    Everything scoring reads comes from the model itself (:class:`models.scorer.HealthScorer`:
    trees, calibrator, references, thresholds, plays, the scoring context). A model that
    cannot be found, was not logged by ``churn train``, or by an older version of the
    pipeline, is a user error: :class:`ContractError`, exit 2 at the CLI.
    """
    try:
        # MLflow's own check of the model's requirements scans every installed package's
        # files (0.65 s of a 1.9 s load); the pins the model carries are checked below.
        loaded = mlflow.pyfunc.load_model(uri, suppress_warnings=True)
    except Exception as err:  # MLflow raises several types for "not found"
        hint = (
            " The registry has no champion yet: a first model becomes champion only when it "
            "beats the hand-weighted score and the logistic baseline on its backtest (churn "
            "train prints why it did not). Score a registered version with --model "
            "models:/NAME/VERSION, or make one champion with churn train --force."
            if uri.endswith("@champion")
            else ""
        )
        raise ContractError(
            f"cannot load the model {uri}: {err}.{hint} Train one first (churn train --data "
            "DIR) or pass --model with a models:/NAME@champion, models:/NAME/VERSION or "
            "runs:/RUN_ID/model URI."
        ) from err
    run_id = loaded.metadata.run_id
    try:
        wrapper: Any = loaded.unwrap_python_model()
    except MlflowException:
        wrapper = None
    if isinstance(wrapper, ChurnHealthModel):
        scorer = wrapper.model
    elif wrapper is not None and hasattr(getattr(wrapper, "model", None), "calibrator_"):
        scorer = _older_scorer(wrapper.model, uri, run_id)
    else:
        raise ContractError(
            f"the model {uri} was not logged by churn train (it is no churn-health model): "
            "train one with churn train --data DIR, or pass its --model URI"
        )
    missing = [k for k in ("evaluation", "band_quality") if k not in scorer.context]
    if missing:
        raise ContractError(
            f"the model {uri} was trained by an older version of churn-health: its "
            f"{CONTEXT_FILE} lacks {', '.join(missing)} (the nested backtest's record). "
            "Retrain it with churn train --data DIR."
        )
    for mismatch in version_mismatches((loaded.metadata.metadata or {}).get("requirements", ())):
        warnings.warn(f"the model {uri} was trained with {mismatch}", stacklevel=2)
    model_id = getattr(loaded.metadata, "model_id", None)
    version = registry_version(uri, run_id, model_id)
    return ScoringModel(scorer, scorer.top_events, scorer.context, version, uri, model_id)


def version_mismatches(pins: Sequence[str]) -> list[str]:
    """The model's pinned requirements (``name==version``) that differ from what is
    installed here, each as ``"name==x; installed: y"`` (or ``"not installed"``)."""
    out = []
    for pin in pins:
        name, _, wanted = pin.partition("==")
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            have = "not installed"
        if have != wanted:
            out.append(f"{pin}; installed: {have}")
    return out


def _older_scorer(model: Any, uri: str, run_id: str | None) -> HealthScorer:
    """The scorer of a model logged before the self-contained one (a pickled
    ``ChurnModel``): its context and common events are the run's files."""
    meta = mlflow.artifacts.load_dict(f"runs:/{run_id}/features.json")
    try:
        context = mlflow.artifacts.load_dict(f"runs:/{run_id}/{CONTEXT_FILE}")
    except Exception as err:
        raise ContractError(
            f"the run {run_id} of {uri} has no {CONTEXT_FILE} (bands, references, drift "
            "baseline): it was not logged by churn train; retrain the model"
        ) from err
    return HealthScorer.from_model(model, context, PlayConfig(), meta.get("top_events", ()))
