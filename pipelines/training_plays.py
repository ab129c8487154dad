"""The plays measured at training: the final model's measure of each play, logged to MLflow.

The measure itself is :mod:`pipelines.plays`; this module runs it on the training data and
records it in the ``train`` run, so that the model carries its plays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow

from features.progress import Progress
from models.plays import PlayConfig
from models.train import ChurnModel
from pipelines.config import ChurnConfig
from pipelines.training_inputs import TrainingSetLike, worker_threads


def measure_plays(
    data: Any,
    ts: TrainingSetLike,
    model: ChurnModel,
    context: dict[str, Any],
    cfg: ChurnConfig,
    folder: Path,
    progress: Progress,
) -> PlayConfig:
    """The plays with the final model's measure of each (:mod:`pipelines.plays`), logged as
    ``plays/plays.csv`` and ``play_<key>_effect`` metrics; ``cfg.plays`` unchanged when the
    data has no activities or the label is not a renewal."""
    tables = getattr(data, "tables", None)
    if tables is None or "activities" not in tables or cfg.labels.label != "renewal":
        return cfg.plays
    from models.scorer import HealthScorer
    from pipelines.plays import NO_UNITS, measure, measured_table, units_from_tables

    scorer = HealthScorer.from_model(model, context, cfg.plays, ts.top_events)
    end = data.report.end.day if data.report.end else None
    units = units_from_tables(
        tables, ts.frame, ts.top_events, scorer, cfg.labels, cfg.features, cfg.plays, end,
        seed=cfg.seed, num_threads=worker_threads(cfg.model),
    )  # fmt: skip
    if units.frame.empty:  # training goes on; `churn plays` exits 2 with the same words
        mlflow.set_tag(
            "plays", NO_UNITS.format(lead=cfg.plays.lead_days, snapshots=f"{len(ts.frame):,}")
        )
        return cfg.plays
    _, measured = measure(units, cfg.plays, seed=cfg.seed, progress=progress)
    pdir = folder / "plays"
    pdir.mkdir(parents=True, exist_ok=True)
    measured_table(measured).to_csv(pdir / "plays.csv", index=False)
    mlflow.log_artifacts(str(pdir), "plays")
    mlflow.log_param("plays.lead_days", cfg.plays.lead_days)
    for m in measured:
        mlflow.log_metrics(
            {f"play_{m.key}_{name}": float(v)
             for name, v in (("effect", m.effect), ("effect_lo", m.low), ("effect_hi", m.high),
                             ("naive", m.naive), ("treated", m.treated))
             if v is not None}
        )  # fmt: skip
    return cfg.plays.model_copy(update={"measured": measured})
