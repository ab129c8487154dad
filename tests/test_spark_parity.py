"""Spark computes the same features as DuckDB: one feature code, two engines.

A small simulated world is read, validated and turned into a training set and a scoring set
on local Spark and on DuckDB; the frames must match row for row and column for column
(floats to 1e-9, missing values in the same cells). DuckDB is the reference: its values are
pinned by hand in ``test_features_golden.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import SPARK

from features.config import FeatureConfig, LabelConfig
from features.read import connect
from features.scoring_set import ScoringSet, build_scoring_set
from features.training import TrainingSet, build_training_set, data_end_day
from features.validate import CleanData, load

pytestmark = SPARK

ACCOUNTS, WORLD_SEED = 60, 3
#: A small local Spark: two cores, few shuffle partitions (the data are a few MB).
SPARK_OPTIONS: dict[str, Any] = {"spark.sql.shuffle.partitions": "2"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from simulator import SimConfig, simulate, write_world

    out = tmp_path_factory.mktemp("spark-parity") / "data"
    write_world(simulate(SimConfig(accounts=ACCOUNTS, seed=WORLD_SEED)), out)
    # Attributes read point in time: a tier that changes (two values on one day, which
    # both engines must resolve alike) and a date that may lie after a snapshot.
    accounts = pd.read_parquet(out / "accounts.parquet")
    accounts["onboarded_at"] = accounts["created_at"] + pd.Timedelta(days=200)
    accounts.to_parquet(out / "accounts.parquet", index=False)
    ids = accounts["account_id"].astype(str).tolist()
    start = accounts["created_at"].min()
    pd.DataFrame(
        {
            "account_id": ids * 3,
            "column": ["tier"] * (3 * len(ids)),
            "value": ["bronze"] * len(ids) + ["gold"] * len(ids) + ["silver"] * len(ids),
            "valid_from": [start + pd.Timedelta(days=300 + 7 * (i % 50)) for i in range(len(ids))]
            * 2
            + [start + pd.Timedelta(days=700 + 11 * (i % 40)) for i in range(len(ids))],
        }
    ).to_parquet(out / "account_history.parquet", index=False)
    return out


@pytest.fixture(scope="module")
def spark_data(world: Path) -> Iterator[CleanData]:
    """The world read and validated on local Spark; the session starts once per module."""
    from pyspark.sql import SparkSession

    con = connect("spark", master="local[2]", **SPARK_OPTIONS)
    session = SparkSession.getActiveSession()
    assert session is not None
    session.sparkContext.setLogLevel("ERROR")  # keep the output to failures
    try:
        yield load(world, con)
    finally:
        session.stop()


@pytest.fixture(scope="module")
def duckdb_data(world: Path) -> CleanData:
    return load(world, connect("duckdb", threads=1))


def assert_same_frames(spark: TrainingSet | ScoringSet, duckdb: TrainingSet | ScoringSet) -> None:
    """Same columns and rows; floats equal to 1e-9; missing values in the same cells."""
    assert spark.feature_names == duckdb.feature_names
    assert {"tier", "days_since_onboarded_at"} <= set(duckdb.feature_names)
    assert spark.top_events == duckdb.top_events
    left, right = spark.frame, duckdb.frame
    assert list(left.columns) == list(right.columns)
    assert len(right) > 0, "the reference frame is empty: the comparison would prove nothing"
    keys = ["as_of", "account_id", "contract_id"]
    pd.testing.assert_frame_equal(left[keys], right[keys], check_exact=True)
    pd.testing.assert_frame_equal(
        left, right, check_exact=False, rtol=0, atol=1e-9, obj="Spark vs DuckDB features"
    )


def test_training_set_is_the_same_on_spark(spark_data: CleanData, duckdb_data: CleanData) -> None:
    spark = build_training_set(spark_data.tables, LabelConfig(), FeatureConfig())
    duckdb = build_training_set(duckdb_data.tables, LabelConfig(), FeatureConfig())
    assert duckdb.frame["label"].notna().all()
    assert_same_frames(spark, duckdb)


def test_scoring_set_is_the_same_on_spark(spark_data: CleanData, duckdb_data: CleanData) -> None:
    # Half a year before the data end: plenty of terms are open and renew within 120 days.
    end = date(1970, 1, 1) + timedelta(days=data_end_day(duckdb_data.tables))
    as_of = end - timedelta(days=183)
    # top_events=None: each engine finds the common events itself, which is compared too.
    spark = build_scoring_set(spark_data.tables, as_of, LabelConfig(), FeatureConfig())
    duckdb = build_scoring_set(duckdb_data.tables, as_of, LabelConfig(), FeatureConfig())
    assert duckdb.frame["label"].isna().all()
    assert_same_frames(spark, duckdb)


def test_the_jvm_keeps_room_for_compiled_code(spark_data: CleanData) -> None:
    """After the parity queries (each compiles classes), the JVM's code cache is far from full.

    A full code cache disables the JVM's compiler and then crashes the executor; one pytest
    worker reuses one JVM for every Spark module it runs, so the room left here must cover
    a few more modules like this one.
    """
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    assert session is not None
    jvm = session.sparkContext._jvm
    pools = [
        pool
        for pool in jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans()
        if "Code" in pool.getName()
    ]
    assert pools, "the JVM reports no code-cache pool"
    used = sum(pool.getUsage().getUsed() for pool in pools)
    reserved = sum(pool.getUsage().getMax() for pool in pools)
    # Both Spark modules in one worker used about 50 MB; the JVM's default without C2 is 48.
    assert reserved - used > 100 << 20, f"code cache: {used >> 20} MB used of {reserved >> 20} MB"
