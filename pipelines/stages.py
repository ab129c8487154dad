"""Stages wired to their inputs and outputs; the CLI, MLflow Projects and notebooks call these.

Each function reads, calls the pure stage functions of :mod:`features` and :mod:`models`,
and writes, so I/O stays here at the edge.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from ibis.backends import BaseBackend

from features.errors import ContractError
from features.progress import Progress
from features.read import connect, file_uri_path, read_data, uri_scheme
from features.scoring_set import ScoringSet, build_scoring_set
from features.training import TrainingSet, build_training_set, write_dictionary
from features.validate import CleanData, Report, load, validate
from pipelines.config import ChurnConfig
from pipelines.files import write_atomically
from pipelines.scoring_checks import check_eligible, check_within_data


def engine(cfg: ChurnConfig) -> BaseBackend:
    """A connection to the configured engine (the Spark master only matters for Spark)."""
    e = cfg.engine
    spark = {"master": e.spark_master} if e.name == "spark" else {}
    return connect(e.name, threads=e.threads, memory_limit=e.memory_limit, **spark)


def data_location(location: str | Path, cfg: ChurnConfig, setting: str = "--data") -> Path:
    """The folder that ``--data`` names, given as a path or a URI (typed as given).

    ``file://`` URIs are local paths (Spark reads every local file as a ``file:`` URI).
    Object-store URIs (``s3a://``, ``abfss://``, ``gs://``) exit 2 with what to do: DuckDB
    reads local files only; on Spark the message says first whether Spark's Hadoop has a
    connector for the scheme, and with one, that the driver must read the files too.
    """
    local = _local_path(location, setting)
    if local is not None:
        return local
    scheme, text = uri_scheme(location), str(location)
    if cfg.engine.name != "spark":
        raise ContractError(
            f"{setting} {text}: an object-store URI ({scheme}://), and engine.name is "
            f"{cfg.engine.name}, which reads local files only here (DuckDB would need an "
            "extension downloaded at run time, which churn does not do). Run with --engine "
            f"spark and the Hadoop connector for {scheme}:// (README, 'Object stores'), or "
            "copy or mount the export to a local path and give that path."
        )
    from features.spark import hadoop_connector  # pyspark is an optional extra

    found, fix = hadoop_connector(engine(cfg), text)
    # Spark alone could read the bucket; churn's driver reads the files too.
    driver = (
        "churn also reads the export on the driver (CSV dialects, Parquet time zones, the "
        "training data's fingerprint), which it does not do through Hadoop yet: mount the "
        "bucket at the same path on the driver and every executor (a FUSE mount, a "
        "Databricks volume) and give that path."
    )
    if found is None:
        raise ContractError(f"{setting} {text}: {fix}. Even so, {driver}")
    raise ContractError(f"{setting} {text}: Spark reads {scheme}:// with {found}, but {driver}")


def _local_path(location: str | Path, setting: str) -> Path | None:
    """The local path a plain path or a ``file://`` URI names; ``None`` for any other URI."""
    scheme = uri_scheme(location)
    if scheme is None:
        return Path(location)
    if scheme == "file":
        return file_uri_path(str(location), setting)
    return None


def output_location(location: str | Path, setting: str = "--out") -> Path:
    """The local path that an output option names; object-store URIs exit 2: the driver
    writes the output itself (atomically, by renaming a finished folder)."""
    local = _local_path(location, setting)
    if local is not None:
        return local
    raise ContractError(
        f"{setting} {location}: an object-store URI ({uri_scheme(location)}://). The driver "
        "writes this output itself and replaces it in one rename, which object stores do not "
        "offer. "
        "Write to a local or mounted path and copy the folder to the bucket afterwards."
    )


def validate_data(data_dir: Path, cfg: ChurnConfig) -> Report:
    """Read and check a data directory on the configured engine."""
    return validate(read_data(data_dir, engine(cfg), cfg.data), cfg.data)


def open_clean(data_dir: Path, cfg: ChurnConfig) -> CleanData:
    """Read and validate on the configured engine; raise on a hard problem."""
    return load(data_dir, engine(cfg), cfg.data)


def training_set(
    clean: CleanData, cfg: ChurnConfig, progress: Progress = None, write_to: Path | None = None
) -> TrainingSet:
    """All labelled history of ``clean`` as a training set; written too when asked."""
    end = clean.report.end.day if clean.report.end else None
    ts = build_training_set(clean.tables, cfg.labels, cfg.features, end, progress)
    if write_to is not None:
        write_atomically(lambda p: ts.frame.to_parquet(p, index=False), write_to)
        write_atomically(
            lambda p: write_dictionary(ts.features, p), write_to.with_suffix(".features.json")
        )
    return ts


def build_features(
    data_dir: Path,
    as_of: date,
    out: Path,
    cfg: ChurnConfig,
    progress: Progress = None,
    after_end: bool = False,
) -> ScoringSet:
    """Feature rows of every account eligible at ``as_of``, written to ``out`` (Parquet).

    The feature dictionary goes beside it as ``<out>.features.json``.
    """
    clean = open_clean(data_dir, cfg)
    check_within_data(clean, as_of, after_end)
    check_eligible(clean.tables, as_of, cfg)
    ts = build_scoring_set(clean.tables, as_of, cfg.labels, cfg.features, progress=progress)
    write_atomically(lambda p: ts.frame.to_parquet(p, index=False), out)
    write_atomically(lambda p: write_dictionary(ts.features, p), out.with_suffix(".features.json"))
    return ts
