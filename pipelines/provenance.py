"""What a training run needs to be rebuilt: code version, settings, data and packages.

``churn train`` logs :func:`provenance` as ``reproduce.json`` in its run (and the code
commit and data digest as tags, to search runs by them); ``churn train --from-run RUN_ID``
reads it back with :func:`settings_from_run` and retrains with the same settings.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.errors import ContractError
from features.fingerprint import changed_files, data_fingerprint
from pipelines.config import ChurnConfig

RECORD_FILE = "reproduce.json"
#: Settings that belong to the machine, not to the model: a retrain keeps the current ones.
MACHINE_SETTINGS = ("engine", "tracking")
_REPO = Path(__file__).resolve().parent.parent


def code_version(repo: Path = _REPO) -> dict[str, Any]:
    """The git commit of the code that runs (``None`` outside a git checkout), whether the
    checkout has uncommitted changes to tracked files, and the installed package version."""
    try:
        version: str | None = md.version("churn-health")
    except md.PackageNotFoundError:
        version = None

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None
    return {"git_commit": commit, "dirty": dirty, "package_version": version}


def packages() -> dict[str, str]:
    """Every installed distribution and its version, sorted by name."""
    found = {d.metadata["Name"]: d.version for d in md.distributions() if d.metadata["Name"]}
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))


def provenance(data_dir: Path, cfg: ChurnConfig) -> dict[str, Any]:
    """The record of a training run. ``cfg`` must be the settings as the run resolved them
    (command-line options applied, the model's seed made explicit)."""
    return {
        "code": code_version(),
        "config": cfg.model_dump(mode="json"),
        "data": {"path": str(data_dir.resolve()), **data_fingerprint(data_dir)},
        "python": platform.python_version(),
        "packages": packages(),
        "command": sys.argv,
    }


def log_provenance(record: dict[str, Any]) -> None:
    """Log ``record`` in the active run: ``reproduce.json`` and two tags to search by."""
    mlflow.log_dict(record, RECORD_FILE)
    mlflow.set_tags(
        {
            "code_commit": record["code"]["git_commit"] or "unknown",
            "code_dirty": str(record["code"]["dirty"]).lower(),
            "data_digest": record["data"]["digest"],
        }
    )


def run_record(run_id: str, tracking_uri: str) -> dict[str, Any]:
    """``reproduce.json`` of a run of the store; a user error when there is none."""
    client = MlflowClient()
    try:
        client.get_run(run_id)
    except MlflowException as err:
        raise ContractError(
            f"--from-run {run_id}: no such run in the MLflow store {tracking_uri} "
            f"({err.message.rstrip('.')}). Pass the id of a churn train run (churn train "
            "prints it), or point tracking.uri / MLFLOW_TRACKING_URI at its store."
        ) from None
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{RECORD_FILE}")
    except MlflowException:
        raise ContractError(
            f"--from-run {run_id}: the run has no {RECORD_FILE}, so its settings are not "
            "known (it is not a churn train run, or it was trained before runs recorded "
            "them). Retrain it with churn train and the settings you used."
        ) from None
    record: dict[str, Any] = json.loads(text)
    return record


def settings_from_run(record: dict[str, Any], current: ChurnConfig) -> ChurnConfig:
    """The recorded settings, with the current machine's engine and tracking."""
    recorded = {k: v for k, v in record["config"].items() if k not in MACHINE_SETTINGS}
    machine = current.model_dump(mode="json", include=set(MACHINE_SETTINGS))
    return ChurnConfig.model_validate({**recorded, **machine})


def data_differences(record: dict[str, Any], data_dir: Path) -> list[str]:
    """The input files of ``data_dir`` that differ from the run's (empty: the same data)."""
    return changed_files(record["data"], data_fingerprint(data_dir))
