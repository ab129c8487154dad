"""Scoring on Spark gives the scores of the local (DuckDB) path: one scoring code, two engines.

A model is trained on a small simulated past; the same ``as_of`` is then scored by
``model_stages.score`` on DuckDB and on local Spark (``local[2]``: features by Spark through the
same Ibis expression, probabilities, drivers and plays per partition by ``mapInPandas`` with
the scorer the registered model carries, ``models.scorer``). DuckDB is the reference: its
scores are checked in ``test_scoring.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import SPARK, local_spark, quick_config
from ibis.backends import BaseBackend

from features.training import build_training_set
from features.validate import load
from pipelines import model_stages, training
from pipelines.config import ChurnConfig
from pipelines.scores_dir import write_scores_dir
from pipelines.scoring import ScoreOutput

pytestmark = SPARK

CUTOFF, AS_OF = date(2025, 6, 1), date(2025, 7, 1)
#: A small local Spark: two cores, few shuffle partitions (the data are a few MB). Small
#: Arrow batches split the ~50 scored rows into several mapInPandas batches, so the test
#: also shows that a row's drivers do not depend on the batch it is explained in.
SPARK_OPTIONS: dict[str, Any] = {
    "spark.sql.shuffle.partitions": "2",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "16",
}


@pytest.fixture(scope="module")
def world(world150: Path) -> Path:
    return world150


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> ChurnConfig:
    # A 150-account world decides 28 churned terms: below the default minimum of outcomes
    # (30) that a real book is held to, and enough for what this test checks (parity).
    few = {"min_churned": 10, "min_retained": 10}
    return quick_config(tmp_path_factory.mktemp("mlruns"), trials=2, model=few)


@pytest.fixture(scope="module")
def trained(world: Path, cfg: ChurnConfig) -> training.TrainResult:
    ts = build_training_set(load(world).tables, cfg.labels, cfg.features, cutoff=CUTOFF)
    return training.run_training(ts, cfg)


@pytest.fixture(scope="module")
def spark() -> Iterator[BaseBackend]:
    """Local Spark for this module; ``model_stages.score`` reuses the session it finds running."""
    with local_spark(2, **SPARK_OPTIONS) as con:
        yield con


@pytest.fixture(scope="module")
def both(
    world: Path,
    cfg: ChurnConfig,
    trained: training.TrainResult,
    spark: BaseBackend,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path]:
    """The scores directory of the same run on DuckDB and on Spark; each engine keeps its
    score history beside its directory (``<engine>-history.parquet``)."""
    out = tmp_path_factory.mktemp("scores")

    def run(engine: str) -> ChurnConfig:
        history = {"history": out / f"{engine}-history.parquet"}
        return cfg.model_copy(
            update={"engine": cfg.engine.model_copy(update={"name": engine}),
                    "scoring": cfg.scoring.model_copy(update=history)}
        )  # fmt: skip

    model_stages.score(world, AS_OF, out / "duckdb", run("duckdb"), model_uri=trained.model_uri)
    model_stages.score(world, AS_OF, out / "spark", run("spark"), model_uri=trained.model_uri)
    return out / "duckdb", out / "spark"


def assert_same_scores(spark: pd.DataFrame, duckdb: pd.DataFrame) -> None:
    """Spark's scores equal DuckDB's: the same rows in the same order, probabilities to
    1e-9, the same scores, bands, drivers and plays, every column with the same dtypes."""
    assert len(duckdb) > 10, "too few scored accounts for the comparison to mean much"
    assert list(spark.columns) == list(duckdb.columns)
    assert spark["account_id"].tolist() == duckdb["account_id"].tolist(), "same rows, same order"
    pd.testing.assert_series_equal(
        spark["churn_probability"], duckdb["churn_probability"], check_exact=False, rtol=0,
        atol=1e-9,
    )  # fmt: skip
    for col in ("health_score", "band", "drivers", "play"):
        assert spark[col].tolist() == duckdb[col].tolist(), col
    pd.testing.assert_frame_equal(spark, duckdb, check_exact=False, rtol=0, atol=1e-9)


def test_spark_scores_equal_the_duckdb_scores(both: tuple[Path, Path]) -> None:
    duckdb, spark = (pd.read_parquet(d / "scores.parquet") for d in both)
    assert_same_scores(spark, duckdb)


def test_spark_writes_the_same_scores_directory(both: tuple[Path, Path]) -> None:
    duckdb, spark = both
    names = sorted(p.name for p in duckdb.iterdir())
    assert sorted(p.name for p in spark.iterdir()) == names
    assert (spark / "scores.parquet").is_file(), "scores.parquet is a file, not Spark's folder"
    assert pq.read_metadata(spark / "scores.parquet").created_by.startswith("parquet-mr"), (
        "scores.parquet was not written by Spark"
    )
    assert not [p for p in spark.parent.iterdir() if p.name.startswith(".")], "temp left over"
    # Built from the same scores by the same code: the same bytes.
    for name in ("scores.csv", "drift.csv", "report.html"):
        assert (spark / name).read_bytes() == (duckdb / name).read_bytes(), name
    # The score history, with the model's inputs of every row, as the local path keeps it.
    spark_history, duckdb_history = (
        pd.read_parquet(d.with_name(f"{d.name}-history.parquet")) for d in both
    )
    assert len(duckdb_history) and any(c.startswith("feat_") for c in duckdb_history.columns)
    pd.testing.assert_frame_equal(
        spark_history, duckdb_history, check_exact=False, rtol=0, atol=1e-9
    )


def test_a_crash_after_the_spark_parquet_leaves_nothing(
    both: tuple[Path, Path], spark: BaseBackend, tmp_path: Path
) -> None:
    from pipelines.spark_scoring import parquet_writer

    # An empty column (accounts without names) has no Parquet type on Spark: written as text.
    scores = pd.read_parquet(both[0] / "scores.parquet").assign(name=None)
    output = ScoreOutput(scores, pd.DataFrame({"a": [1]}), pd.DataFrame({"feature": []}))
    write = parquet_writer(spark)
    with pytest.raises(RuntimeError, match="injected crash"):
        write_scores_dir(
            tmp_path / "x", output, "<html></html>", crash_after="scores.parquet",
            write_parquet=write,
        )  # fmt: skip
    assert not list(tmp_path.iterdir()), "no partial scores directory, no temporary folder"

    write_scores_dir(tmp_path / "x", output, "<html></html>", write_parquet=write)
    back = pd.read_parquet(tmp_path / "x" / "scores.parquet")
    assert back["name"].isna().all()
    pd.testing.assert_frame_equal(
        back.drop(columns="name"), scores.drop(columns="name"), check_dtype=False
    )


def test_held_parts_are_computed_once_and_released(spark: BaseBackend) -> None:
    """``held_on_spark`` runs each part it is given at once (reading it afterwards starts no
    job of its source again: the source's rows are counted by an accumulator), and drops
    every view and cached part when the block ends, error or not."""
    import ibis
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType

    from features.spark import held_on_spark

    session = spark._session  # type: ignore[attr-defined]
    reads = session.sparkContext.accumulator(0)

    def seen(x: int) -> int:
        reads.add(1)
        return x

    counted = F.udf(seen, LongType())
    source = session.range(50).select(counted("id").alias("x"), (F.col("id") % 5).alias("g"))
    name = ibis.util.gen_name("source")
    source.createOrReplaceTempView(name)

    def views() -> set[str]:
        return {t.name for t in session.catalog.listTables() if t.isTemporary}

    before = views()
    with pytest.raises(RuntimeError, match="stop"), held_on_spark(spark) as hold:
        t = spark.table(name)
        part = hold(t.group_by("g").aggregate(n=t.x.count(), s=t.x.sum()))
        assert reads.value == 50  # computed inside hold, once
        first = part.order_by("g").to_pandas()
        again = part.aggregate(total=part.s.sum()).to_pyarrow().to_pylist()
        assert reads.value == 50, "reading the held part ran its source again"
        assert list(first["n"]) == [10] * 5 and again == [{"total": sum(range(50))}]
        assert views() - before, "the part is a temporary view while the block runs"
        raise RuntimeError("stop")
    assert views() == before
    assert session.sparkContext._jsc.getPersistentRDDs().isEmpty()
    session.catalog.dropTempView(name)
