"""What the training stages take: a training set (or validated data to build one from),
and how many threads they may use."""

from __future__ import annotations

from typing import Any, Protocol

import pandas as pd

from features.catalog import Feature
from features.progress import Progress
from features.resources import free_cores
from models.config import ModelConfig
from pipelines.config import ChurnConfig


class TrainingSetLike(Protocol):
    """What the stages read: ``features.training.TrainingSet`` or anything shaped like it."""

    @property
    def frame(self) -> pd.DataFrame: ...

    @property
    def features(self) -> tuple[Feature, ...]: ...

    @property
    def top_events(self) -> tuple[str, ...]: ...


def as_training_set(data: Any, cfg: ChurnConfig, progress: Progress = None) -> TrainingSetLike:
    """``data`` itself if it is a training set, else the one built from ``CleanData``.

    Built with :func:`features.training.build_training_set`'s default cut-off (the day
    after the last event), where :func:`pipelines.stages.training_set` passes the end of
    the validated data.
    """
    if hasattr(data, "frame") and hasattr(data, "features"):
        return data
    if hasattr(data, "tables"):
        from features.training import build_training_set

        return build_training_set(data.tables, cfg.labels, cfg.features, progress=progress)
    raise TypeError(
        f"expected features.validate.CleanData or features.training.TrainingSet, "
        f"got {type(data).__name__}"
    )


def worker_threads(cfg: ModelConfig) -> int:
    """Threads for LightGBM and the plays: ``cfg.num_threads``, else the free cores."""
    return cfg.num_threads or free_cores()
