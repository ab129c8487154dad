"""The champion gate at the edge: find the champion, score it on the challenger's rows.

Two paired comparisons are possible (:mod:`models.champion` holds the rule):

1. **The champion's procedure on the challenger's folds.** The champion's stored settings
   and feature list (``procedure.json`` in its run) are replayed through the challenger's
   nested backtest, on the same folds and rows. When they are the challenger's own (same
   settings, features and code), the replay would score every row identically: a tie by
   construction, not re-run.
2. **The champion model itself** on the challenger's backtest rows taken after the
   champion's last training outcome, which it never saw.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.catalog import Feature
from features.progress import Progress, part
from models.backtest import BacktestResult
from models.backtest import backtest as nested_backtest
from models.bands import BandConfig
from models.champion import (
    Comparison,
    GateDecision,
    champion_gate,
    compare,
    first_model_gate,
)
from models.config import ModelConfig
from models.folds import TooFewLabels, count_outcomes, outcome_ids
from models.train import ChurnModel
from pipelines.config import ChurnConfig

if TYPE_CHECKING:  # for annotations only: the gate's own imports stay as light as they were
    from pipelines.tracking import Tracking
    from pipelines.training_inputs import TrainingSetLike

PROCEDURE_FILE = "procedure.json"
#: The model settings a backtest fold's procedure depends on (the fold layout is the
#: challenger's, and the final model's budget does not enter a fold).
PROCEDURE_SETTINGS = ("backtest_trials", "tune_folds", "fold_step_days", "purge_days",
                      "min_churned", "min_retained", "cv_folds", "calibration_share",
                      "calibration_half_life_days", "monotone", "monotone_max_auc_drop",
                      "calibration", "learning_rate", "max_rounds", "early_stopping_rounds",
                      "seed")  # fmt: skip

#: A paired comparison of the challenger with the champion's probabilities ``theirs`` on
#: the challenger's backtest rows selected by ``keep``: ``paired(name, theirs, keep)``.
Paired = Callable[[str, np.ndarray, np.ndarray], Comparison]


def code_digest() -> str:
    """A digest of the ``models`` package's source: same digest, same procedure code."""
    root = Path(__file__).resolve().parent.parent / "models"
    h = hashlib.sha256()
    for path in sorted(root.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def procedure_record(
    features: tuple[Feature, ...], frame: pd.DataFrame, cfg: ChurnConfig, mc: ModelConfig
) -> dict[str, Any]:
    """What a trained model's procedure was, stored with its run for later challengers."""
    labels = cfg.labels.model_dump(mode="json")
    labels.pop("within_days", None)  # a scoring setting
    known = frame.loc[frame["label"].notna(), "label_known_at"]
    return {
        "labels": labels,
        "features": [f.name for f in features],
        "model": {k: getattr(mc, k) for k in PROCEDURE_SETTINGS},
        "bands": cfg.bands.model_dump(mode="json"),
        "code": code_digest(),
        "trained_until": pd.Timestamp(known.max()).isoformat(),
    }


@dataclass(frozen=True)
class Champion:
    """The current champion: its registry version, run, procedure record and model URI."""

    version: str
    run_id: str
    record: dict[str, Any] | None
    uri: str

    def load_model(self) -> ChurnModel:
        """The champion's fitted model (downloaded: only when a comparison needs it)."""
        return mlflow.pyfunc.load_model(self.uri).unwrap_python_model().model


def find_champion(registered_model: str) -> Champion | None:
    """The version behind the ``champion`` alias, or ``None`` when there is none."""
    from pipelines.tracking import CHAMPION

    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(registered_model, CHAMPION)
    except MlflowException:
        return None
    try:
        record = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/{PROCEDURE_FILE}")
    except Exception:  # a champion from before procedure records, or logged by hand
        record = None
    uri = f"models:/{registered_model}/{mv.version}"
    return Champion(str(mv.version), str(mv.run_id), record, uri)


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("labels", "features", "model", "bands", "code")
    return all(a.get(k) == b.get(k) for k in keys)


def challenge(
    champion: Champion,
    result: BacktestResult,
    frame: pd.DataFrame,
    features: tuple[Feature, ...],
    record: dict[str, Any],
    mc: ModelConfig,
    num_threads: int,
    progress: Progress = None,
) -> tuple[list[Comparison], list[str]]:
    """The paired comparisons of the challenger (its backtest ``result`` on ``frame``) with
    ``champion``, and why any comparison could not be made."""
    labelled = frame.loc[frame["label"].notna()].reset_index(drop=True)
    scores = result.scores
    rows = labelled.loc[scores["row"].to_numpy()]
    y, mine = scores["label"].to_numpy(float), scores["model"].to_numpy(float)

    def paired(name: str, theirs: np.ndarray, keep: np.ndarray) -> Comparison:
        return compare(
            name, y[keep], mine[keep], theirs, scores["account_id"].to_numpy()[keep],
            n_boot=mc.bootstrap, level=mc.interval_level, seed=mc.seed,
        )  # fmt: skip

    theirs = champion.record
    if theirs is None:
        return [], [f"champion v{champion.version} has no {PROCEDURE_FILE} to compare with"]
    if theirs["labels"] != record["labels"]:
        differ = ", ".join(
            f"{k} {theirs['labels'].get(k)} there, {v} here"
            for k, v in record["labels"].items()
            if theirs["labels"].get(k) != v
        )
        return [], [
            f"champion v{champion.version} was trained for other labels ({differ}), so its "
            "rows are not these; retrain it with these settings or use --force"
        ]
    comparisons, missing = _procedure_comparison(
        theirs, record, result, frame, features, mc, num_threads, progress, paired
    )
    model_comparisons, model_missing = _model_comparison(champion, theirs, rows, mc, paired)
    return comparisons + model_comparisons, missing + model_missing


def _procedure_comparison(
    theirs: dict[str, Any],
    record: dict[str, Any],
    result: BacktestResult,
    frame: pd.DataFrame,
    features: tuple[Feature, ...],
    mc: ModelConfig,
    num_threads: int,
    progress: Progress,
    paired: Paired,
) -> tuple[list[Comparison], list[str]]:
    """The champion's procedure (record ``theirs``) replayed on the challenger's folds,
    or why it cannot be; not re-run when it is the challenger's own."""
    comparisons: list[Comparison] = []
    missing: list[str] = []
    scores = result.scores
    mine = scores["model"].to_numpy(float)
    everything = np.ones(len(scores), dtype=bool)
    by_name = {f.name: f for f in features}
    lacking = [n for n in theirs["features"] if n not in by_name]
    if _same(theirs, record):
        same = "the champion's procedure on the same folds (the challenger's own: identical)"
        comparisons.append(paired(same, mine, everything))
    elif lacking:
        missing.append(
            f"the champion's procedure needs features this training set lacks "
            f"({', '.join(lacking[:5])}{' ...' if len(lacking) > 5 else ''})"
        )
    else:
        settings = mc.model_copy(update=theirs["model"])
        try:
            replay = nested_backtest(
                frame, tuple(by_name[n] for n in theirs["features"]), settings,
                BandConfig.model_validate(theirs["bands"]), plan=result.plan,
                num_threads=num_threads, progress=progress,
            )  # fmt: skip
        except TooFewLabels as err:
            missing.append(f"the champion's procedure cannot run on these rows: {err}")
        else:
            if not replay.scores["row"].equals(scores["row"]):
                raise RuntimeError("the champion's replay scored other rows than the challenger")
            replayed = replay.scores["model"].to_numpy(float)
            name = "the champion's procedure on the same folds"
            comparisons.append(paired(name, replayed, everything))
    return comparisons, missing


def _model_comparison(
    champion: Champion, theirs: dict[str, Any], rows: pd.DataFrame, mc: ModelConfig,
    paired: Paired,
) -> tuple[list[Comparison], list[str]]:  # fmt: skip
    """The champion model itself on the challenger's backtest ``rows`` after its last
    training outcome, or why it cannot be compared there."""
    comparisons: list[Comparison] = []
    missing: list[str] = []
    until = pd.Timestamp(theirs["trained_until"])
    after = (rows["as_of"] >= until).to_numpy()
    lacks_columns = [n for n in theirs["features"] if n not in rows.columns]
    counts = count_outcomes(rows, after, outcome_ids(rows))
    short = counts.short_of(mc.min_churned, mc.min_retained)
    if lacks_columns:
        missing.append("the champion model's features are not all in this training set")
    elif short:
        missing.append(f"the champion model on rows after its training ({until:%Y-%m-%d}): {short}")
    else:
        theirs_p = champion.load_model().predict_risk(rows.loc[after])
        comparisons.append(
            paired(
                f"champion model v{champion.version} on rows after its training "
                f"({until:%Y-%m-%d})",
                theirs_p, after,
            )
        )  # fmt: skip
    return comparisons, missing


def gate_decision(
    result: BacktestResult,
    ts: TrainingSetLike,
    record: dict[str, Any],
    mc: ModelConfig,
    tracking: Tracking,
    force: bool,
    threads: int,
    progress: Progress,
) -> tuple[GateDecision, str | None]:
    """The champion gate's decision for this run's model, and the champion it faced."""
    scores = result.scores
    champion = find_champion(tracking.registered_model)
    if champion is None:
        versus = [
            compare(
                name, scores["label"], scores["model"], scores[scorer], scores["account_id"],
                probabilities=False, n_boot=mc.bootstrap, level=mc.interval_level,
                seed=mc.seed,
            )
            for scorer, name in (("health_score", "hand-weighted health score"),
                                 ("logistic", "logistic baseline"))
        ]  # fmt: skip
        return first_model_gate(versus, force), None
    comparisons, missing = challenge(
        champion, result, ts.frame, ts.features, record, mc, threads,
        part(progress, 0.9, 0.97, f"champion v{champion.version} on the same folds"),
    )  # fmt: skip
    decision = champion_gate(comparisons, champion.version, force, "; ".join(missing))
    return decision, champion.version
