"""The one configuration of a run: ``churn.yaml`` (or ``--config``) plus command-line options."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from features.config import DataConfig, FeatureConfig, Frozen, LabelConfig
from features.errors import ContractError
from models.bands import BandConfig
from models.config import ModelConfig
from models.plays import PlayConfig

DEFAULT_CONFIG = Path("churn.yaml")


class EngineConfig(Frozen):
    """Where the feature queries run."""

    name: Literal["duckdb", "spark"] = "duckdb"
    threads: int | None = Field(None, ge=1, description="default: the free cores")
    memory_limit: str | None = Field(
        None,
        pattern=r"^[0-9]+(\.[0-9]+)? ?(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB's memory cap, e.g. 8GB (spills to a temporary folder beyond "
        "it); default: 3GiB",
    )
    spark_master: str = "local[2]"

    @model_validator(mode="after")
    def _memory_limit_is_duckdb_only(self) -> EngineConfig:
        if self.memory_limit and self.name != "duckdb":
            raise ValueError(
                "memory_limit caps DuckDB only; on Spark set spark.driver.memory (and the "
                "executors' memory) in the Spark configuration instead"
            )
        return self


class TrackingConfig(Frozen):
    """MLflow: an explicit URI, else ``MLFLOW_TRACKING_URI``, else a SQLite file in ``mlruns/``."""

    uri: str | None = None
    experiment: str = "churn-health"
    registered_model: str = "churn-health"


class ScoringConfig(Frozen):
    """What ``churn score`` keeps between runs.

    ``history``: the score history, one Parquet file that every run reads (for the change
    since each account's previous score) and then rewrites, wherever its ``--out`` goes.
    Default ``score-history.parquet`` in the working directory, beside ``mlruns/``; a
    relative path resolves against the working directory. It is replaced atomically, and
    only after the scores directory was written, so a failed run leaves it as it was.

    ``waterfalls``: how many accounts, highest priority first, get a SHAP waterfall in the
    report (each is a PNG drawn with matplotlib, about 0.2 s, and embedded in the page).
    """

    history: Path = Path("score-history.parquet")
    waterfalls: int = Field(50, ge=0, description="accounts with a SHAP waterfall")


class ChurnConfig(Frozen):
    """Every setting of the pipeline, with defaults that run the demo."""

    seed: int = 7
    engine: EngineConfig = EngineConfig()
    data: DataConfig = DataConfig()
    labels: LabelConfig = LabelConfig()
    features: FeatureConfig = FeatureConfig()
    tracking: TrackingConfig = TrackingConfig()
    model: ModelConfig = ModelConfig()
    bands: BandConfig = BandConfig()
    plays: PlayConfig = PlayConfig()
    scoring: ScoringConfig = ScoringConfig()


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, recursively; ``None`` in ``over`` means "not given"."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict):
            merged = _merge(out.get(key) or {}, value)
            if merged:
                out[key] = merged
        elif value is not None:
            out[key] = value
    return out


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> ChurnConfig:
    """Read the YAML file (``churn.yaml`` if present and none is named), apply overrides.

    ``overrides`` is nested like the file; ``None`` values mean "not given on the command line".
    A bad file raises :class:`ContractError` naming the setting, so the CLI exits 2.
    """
    source = path if path is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    raw: dict[str, Any] = {}
    if source is not None:
        if not source.is_file():
            raise ContractError(f"config file {source} does not exist")
        raw = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict):
            raise ContractError(f"{source}: expected a mapping of settings at the top level")
    try:
        return with_known_plays(ChurnConfig.model_validate(_merge(raw, overrides or {})))
    except ValidationError as err:
        lines = [
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
            for e in err.errors()
        ]
        where = f"{source}" if source else "command-line options"
        raise ContractError(f"bad settings in {where}:\n  " + "\n  ".join(lines)) from None


def with_known_plays(cfg: ChurnConfig) -> ChurnConfig:
    """``cfg`` whose ``data.known_plays`` (the plays an activity may name) are the keys and
    texts of its plays catalogue, unless the file names them."""
    if cfg.data.known_plays:
        return cfg
    texts = cfg.plays.texts()
    known = tuple(dict.fromkeys([*texts, *texts.values()]))
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"known_plays": known})})
