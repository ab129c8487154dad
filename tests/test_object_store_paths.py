"""Data and output locations given as URIs: ``file://`` works, object stores say what to do.

``--data`` is kept as the text the user typed (a ``Path`` would turn ``s3a://bucket/x`` into
``s3a:/bucket/x``). On Spark a ``file://`` URI reads the same files as the plain path, which
Spark is handed as ``file:`` URIs; a scheme whose Hadoop connector is not on Spark's
classpath exits 2 naming the URI, what Spark said and the package to add. Spark itself
answers (``FileSystem.getFileSystemClass`` in its JVM): nothing is mocked.

``churn`` runs in this process (``test_exit_codes.churn``) on a local Spark session that
this module starts and stops, and that the commands reuse.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import SPARK, local_spark
from ibis.backends import BaseBackend
from test_exit_codes import AS_OF, churn, workdir

from features.read import connect, file_uri_path, read_data

pytestmark = SPARK

#: The package each scheme's message must name (Spark 4.0.5 ships Hadoop 3.4.1 without
#: any object-store connector).
CONNECTOR = {
    "s3a": "org.apache.hadoop:hadoop-aws:3.4.1",
    "abfss": "org.apache.hadoop:hadoop-azure:3.4.1",
    "gs": "com.google.cloud.bigdataoss:gcs-connector",
}


@pytest.fixture(scope="module")
def spark() -> Iterator[BaseBackend]:
    """Local Spark for this module; ``churn`` reuses the session it finds running."""
    with local_spark(2, **{"spark.sql.shuffle.partitions": "2"}) as con:
        yield con


def test_spark_reads_a_file_uri_as_a_file_uri(sim_dir: Path, spark: BaseBackend) -> None:
    """Every table is read by Spark from ``file:`` URIs under the folder, whichever way the
    folder was given: not from a cluster's default file system."""
    session = spark._session  # type: ignore[attr-defined]

    def views() -> set[str]:
        return {t.name for t in session.catalog.listTables() if t.isTemporary}

    before = views()
    folder = file_uri_path(f"file://{sim_dir}", "--data")
    assert folder == sim_dir
    data = read_data(folder, spark)
    files = [f for v in views() - before for f in session.table(v).inputFiles()]
    assert len(data.tables) == len(data.sources) >= 5
    assert files and all(f.startswith(f"file://{sim_dir}/") for f in files), files
    assert {Path(f.removeprefix("file://")).name for f in files} >= {
        p.name for p in data.sources.values()
    }


def test_a_folder_of_parquet_parts_is_one_table_on_spark(
    sim_dir: Path, spark: BaseBackend, tmp_path: Path
) -> None:
    """Events exported as a folder of parts, one of them a level down (a Hive-style
    folder), are read whole by Spark as by DuckDB; a stray file that is not Parquet is not."""
    folder = tmp_path / "world"
    shutil.copytree(sim_dir, folder)
    events = pd.read_parquet(folder / "events.parquet")
    (folder / "events.parquet").unlink()
    parts = folder / "events"
    (parts / "month=2").mkdir(parents=True)
    half = len(events) // 2
    events.iloc[:half].to_parquet(parts / "part-000.parquet", index=False)
    events.iloc[half:].to_parquet(parts / "month=2" / "part-001.parquet", index=False)
    (parts / "_SUCCESS").write_text("")
    counted = {
        name: read_data(folder, con).tables["events"].count().to_pyarrow().as_py()
        for name, con in (("spark", spark), ("duckdb", connect("duckdb", threads=1)))
    }
    assert counted == {"spark": len(events), "duckdb": len(events)}


def test_a_file_uri_is_the_plain_path(sim_dir: Path, spark: BaseBackend, tmp_path: Path) -> None:
    """``--data file://...`` validates on Spark (which reads it as above), and gives the
    plain path's features; ``--out file://...`` writes the file it names. The features are
    built on DuckDB: the same path reaches either engine, and Spark's features equal
    DuckDB's in ``test_spark_parity.py``."""
    cwd = workdir(tmp_path, engine={"name": "spark"})
    uri = f"file://{sim_dir}"
    checked = churn("validate", "--data", uri, cwd=cwd)
    assert checked.returncode == 0, checked.err
    assert f"Data contract check of {uri}" in " ".join(checked.out.split())
    assert "No hard problems" in checked.out
    out = {}
    for name, given, target in (("plain", str(sim_dir), "plain.parquet"),
                                ("uri", uri, f"file://{cwd}/uri.parquet")):  # fmt: skip
        ran = churn("features", "--data", given, "--as-of", AS_OF, "--out", target,
                    "--engine", "duckdb", cwd=cwd)  # fmt: skip
        assert ran.returncode == 0, ran.err
        out[name] = pd.read_parquet(cwd / f"{name}.parquet")
    assert len(out["plain"]) > 10
    pd.testing.assert_frame_equal(out["uri"], out["plain"])


@pytest.mark.parametrize("scheme", sorted(CONNECTOR))
def test_an_object_store_without_its_connector_exits_2_on_spark(
    scheme: str, sim_dir: Path, spark: BaseBackend, tmp_path: Path
) -> None:
    cwd = workdir(tmp_path, engine={"name": "spark"})
    uri = f"{scheme}://bucket/exports/2025-07"
    for args in (("validate", "--data", uri),
                 ("score", "--data", uri, "--as-of", AS_OF, "--out", "scores")):  # fmt: skip
        ran = churn(*args, cwd=cwd)
        assert ran.returncode == 2, ran.err
        assert f"error: --data {uri}: Spark has no Hadoop file system for {scheme}://" in ran.err
        assert CONNECTOR[scheme] in ran.err and "to spark.jars.packages" in ran.err
        assert "spark.hadoop." in ran.err, "the settings the connector needs"
        assert "does not do through Hadoop yet: mount the bucket" in ran.err
        assert not (cwd / "scores").exists() and not (cwd / "mlruns").exists()


def test_a_scheme_spark_can_read_still_exits_2_saying_why(
    spark: BaseBackend, tmp_path: Path
) -> None:
    """hdfs:// has its connector in Spark's Hadoop: Spark says so, and churn's driver,
    which reads the files itself, asks for a mounted path."""
    cwd = workdir(tmp_path, engine={"name": "spark"})
    ran = churn("validate", "--data", "hdfs://namenode:8020/exports", cwd=cwd)
    assert ran.returncode == 2, ran.err
    assert (
        "error: --data hdfs://namenode:8020/exports: Spark reads hdfs:// with "
        "org.apache.hadoop.hdfs.DistributedFileSystem, but churn also reads the export on "
        "the driver"
    ) in ran.err


def test_an_object_store_on_duckdb_exits_2_saying_spark(sim_dir: Path, tmp_path: Path) -> None:
    cwd = workdir(tmp_path)
    ran = churn("validate", "--data", "s3a://bucket/exports", cwd=cwd)
    assert ran.returncode == 2, ran.err
    assert "error: --data s3a://bucket/exports: an object-store URI (s3a://)" in ran.err
    assert "engine.name is duckdb" in ran.err and "--engine spark" in ran.err
    # A file:// URI is a local path on DuckDB too.
    ran = churn("validate", "--data", f"file://{sim_dir}", cwd=cwd)
    assert ran.returncode == 0, ran.err


def test_scores_to_an_object_store_exit_2_before_anything_runs(
    sim_dir: Path, tmp_path: Path
) -> None:
    cwd = workdir(tmp_path)
    ran = churn("score", "--data", str(sim_dir), "--as-of", AS_OF, "--out",
                "gs://bucket/scores", cwd=cwd)  # fmt: skip
    assert ran.returncode == 2, ran.err
    assert "error: --out gs://bucket/scores: an object-store URI (gs://)" in ran.err
    assert "Write to a local or mounted path" in ran.err
    assert not (cwd / "gs:").exists() and not (cwd / "mlruns").exists()
