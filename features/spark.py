"""A Spark connection for the feature queries: the same Ibis code, run by PySpark.

pyspark is an optional extra (``pip install -e ".[spark]"``) and needs Java 17; this module
is imported only when the engine is ``spark``, so DuckDB users never load it.

Locally, :func:`spark_connect` starts (or reuses) an in-process Spark sized for a laptop or a
shared 2-core box: no web UI, few shuffle partitions, 3 GB for the driver, bound to
127.0.0.1 so that no network is needed. On a cluster the master URL comes from the run's
configuration (``engine.spark_master``, e.g. ``yarn`` or ``spark://host:7077``) or from
``spark-submit --master``; a session that is already running (spark-submit, a notebook) is
reused, and only its SQL settings are changed.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
from ibis.backends import BaseBackend

from features.errors import ContractError
from features.read import uri_scheme

#: Settings of every session this module starts. The session time zone must be UTC: the
#: features turn timestamps into epoch seconds and day numbers, and Spark reads zone-less
#: text in the session zone.
DEFAULTS: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    # Feature frames come back to pandas; Arrow makes that transfer fast.
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}

#: Added for a ``local[...]`` master: a small machine, no UI, no network. A cluster keeps its
#: own sizing (partitions, memory), and its driver must stay reachable by the executors.
LOCAL: dict[str, str] = {
    "spark.sql.shuffle.partitions": "4",
    # Locally the driver's JVM runs the executors too: DuckDB's default cap (3 GiB). With
    # 1 GB the 10,000-account book's training set spilled: 412 s against 338 s, side by side.
    "spark.driver.memory": "3g",
    # Many short queries on small data: the JVM's slow optimising compiler (C2) would compete
    # for the two cores and rarely pay off; measured 30-40% faster on a shared 2-core box.
    # Without C2 the JVM reserves only 48 MB for compiled code, and Spark compiles a class per
    # query stage: a process that runs a few hundred feature queries filled it, disabled the
    # compiler and crashed ("Out of space in CodeCache"). 256 MB is reserved address space,
    # committed only as it is used.
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


def spark_connect(master: str = "local[2]", **options: Any) -> BaseBackend:
    """Build or reuse a SparkSession and return an Ibis backend on it.

    Parameters
    ----------
    master
        Spark master URL. ``local[2]`` runs Spark inside this process on two cores. On a
        cluster pass ``engine.spark_master`` from the configuration, or launch the run with
        ``spark-submit --master ...``, whose master then wins over this argument.
    **options
        Spark settings that override the defaults, e.g. ``**{"spark.driver.memory": "4g"}``.
        On a session that is already running only ``spark.sql.*`` settings can still change;
        the others (memory, UI) take effect only when this call starts the session.

    Notes
    -----
    The session time zone is always set to UTC, whatever ``options`` say; Ibis' PySpark
    backend enforces the same.
    """
    try:
        from pyspark.sql import SparkSession  # optional extra; imported only when Spark is used
    except ImportError as err:
        raise ContractError(
            "engine.name: spark needs the spark extra, and pyspark cannot be imported here "
            f"({err}). Install it with pip install '.[spark]' (and Java 17), or use the "
            "default engine (engine.name: duckdb in churn.yaml, or --engine duckdb)."
        ) from err

    given = {k: str(v) for k, v in options.items()}
    session = SparkSession.getActiveSession()
    if session is None:
        # Under spark-submit the JVM is already up with its own --master and sizing: keep them.
        submitted = "PYSPARK_GATEWAY_PORT" in os.environ
        local = not submitted and master.startswith("local")
        settings = {**DEFAULTS, **(LOCAL if local else {}), **given}
        if local:
            # Local workers must run this interpreter (it has the project installed), even
            # when `churn` is started without activating its virtual environment.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = SparkSession.builder.appName("churn-health")
        if not submitted:
            builder = builder.master(master)
        for key, value in settings.items():
            builder = builder.config(key, value)
        try:
            session = builder.getOrCreate()
        except Exception as err:  # pyspark's PySparkRuntimeError, whose import may move
            if "JAVA_GATEWAY_EXITED" not in str(err):
                raise
            found = os.environ.get("JAVA_HOME")
            where = f"JAVA_HOME={found}" if found else f"java on PATH: {shutil.which('java')}"
            raise ContractError(
                f"engine.name: spark needs Java 17, and Java did not start ({where}). "
                "Install Java 17 and set JAVA_HOME to it, or use the default engine "
                "(engine.name: duckdb in churn.yaml, or --engine duckdb)."
            ) from err
    else:
        # A running session keeps its sizing; only SQL settings can change now.
        for key, value in given.items():
            if key.startswith("spark.sql."):
                session.conf.set(key, value)
    session.conf.set("spark.sql.session.timeZone", "UTC")
    return ibis.pyspark.connect(session)


@contextmanager
def held_on_spark(con: BaseBackend) -> Iterator[Callable[[ir.Table], ir.Table]]:
    """A ``hold`` for the feature build on Spark: each intermediate table it is given is
    computed once, cached on the cluster under a temporary view, and read back by name.

    Each part is computed once, however many later parts read it, and each plan stays
    small (on the demo world at most 2.3 s to plan, against 5.3 s for the whole scoring
    expression; not faster end to end there, see benchmarks/README.md, issue 18). Unlike
    Ibis' ``.cache()``, this also registers
    the in-memory tables an expression reads (the lead days, the look-back buckets) with
    the session. The views and their cached data go when the block ends.
    """
    from pyspark import StorageLevel

    session = con._session  # the Ibis backend's session
    frames: list[tuple[str, Any]] = []

    def hold(t: ir.Table) -> ir.Table:
        name = ibis.util.gen_name("churn_held")
        # What con.create_view does, less a second analysis of the plan (0.4-1 s each).
        con._register_in_memory_tables(t)
        frame = session.sql(con.compile(t)).persist(StorageLevel.MEMORY_AND_DISK)
        frames.append((name, frame))
        frame.count()  # computes and caches every column, here and once
        frame.createOrReplaceTempView(name)
        return con.table(name)

    try:
        yield hold
    finally:
        for name, frame in reversed(frames):
            frame.unpersist()  # not blocking
            session.catalog.dropTempView(name)


def spark_uri(path: Path) -> str:
    """The URI under which Spark reads or writes the local path ``path`` (globs kept).

    The driver finds and checks the files in its own file system, so Spark must read that
    file system too (``file:``), not a cluster's default one (HDFS). Databricks mounts its
    storage in the driver's file system: ``/dbfs/x`` is ``dbfs:/x`` and a Unity Catalog
    volume ``/Volumes/...`` is ``dbfs:/Volumes/...``. Not ``Path.as_uri()``: Hadoop reads
    its paths unescaped, and ``*`` must stay a glob.
    """
    text = Path(path).absolute().as_posix()
    if text.startswith("/dbfs/"):
        return "dbfs:/" + text.removeprefix("/dbfs/")
    if text.startswith("/Volumes/"):
        return "dbfs:" + text
    return "file://" + text


def read_spark(con: BaseBackend, kind: str, uri: str, **options: Any) -> ir.Table:
    """Read ``uri`` (``kind``: parquet or csv) as a table of ``con``, the URI unchanged.

    ``options`` go to Spark's reader (``header``, ``schema``, ...). Ibis' own
    ``read_parquet``/``read_csv`` drop a ``file://`` prefix and make anything without
    ``://`` absolute against the working directory (``file:/x`` becomes ``$PWD/file:/x``),
    so the session reads the URI here, into a temporary view, as Ibis does.
    """
    reader = con._session.read  # the Ibis backend's session
    frame = reader.parquet(uri, **options) if kind == "parquet" else reader.csv(uri, **options)
    name = ibis.util.gen_name(f"read_{kind}")
    frame.createOrReplaceTempView(name)
    return con.table(name)


#: The Hadoop connector that reads each object-store scheme: its Maven package (``{hadoop}``
#: is this Spark's Hadoop version, which the package must match) and the settings it needs.
CONNECTORS: dict[str, tuple[str, str]] = {
    "s3a": (
        "org.apache.hadoop:hadoop-aws:{hadoop}",
        "spark.hadoop.fs.s3a.access.key and spark.hadoop.fs.s3a.secret.key, or "
        "spark.hadoop.fs.s3a.aws.credentials.provider (an instance profile, web identity)",
    ),
    "abfss": (
        "org.apache.hadoop:hadoop-azure:{hadoop}",
        "spark.hadoop.fs.azure.account.key.<account>.dfs.core.windows.net, or the "
        "spark.hadoop.fs.azure.account.oauth2.client.* settings of a service principal",
    ),
    "gs": (
        "com.google.cloud.bigdataoss:gcs-connector:hadoop3-2.2.x (its shaded jar)",
        "spark.hadoop.fs.gs.impl=com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem and "
        "spark.hadoop.google.cloud.auth.service.account.json.keyfile (or the machine's "
        "service account)",
    ),
}
CONNECTORS["abfs"] = CONNECTORS["abfss"]
CONNECTORS["wasbs"] = CONNECTORS["abfss"]


def hadoop_connector(con: BaseBackend, uri: str) -> tuple[str | None, str]:
    """The Hadoop FileSystem class Spark reads ``uri`` with (``None`` when there is none),
    and, when there is none, what Spark said and the package and settings to add.

    Asks Spark's own Hadoop configuration (``FileSystem.getFileSystemClass``), so the
    ``spark.jars.packages`` and ``spark.hadoop.*`` settings of the session count.
    """
    from py4j.protocol import Py4JJavaError  # comes with pyspark

    scheme = uri_scheme(uri)
    if scheme is None:
        raise ValueError(f"not a URI: {uri!r}")
    context = con._session.sparkContext
    jvm = context._jvm
    try:
        found = jvm.org.apache.hadoop.fs.FileSystem.getFileSystemClass(
            scheme, context._jsc.hadoopConfiguration()
        )
        return str(found.getName()), ""
    except Py4JJavaError as err:
        said = str(err.java_exception.toString()).splitlines()[0]
    hadoop = jvm.org.apache.hadoop.util.VersionInfo.getVersion()
    package, settings = CONNECTORS.get(
        scheme,
        ("the Hadoop connector of that file system", "the settings its documentation lists"),
    )
    return None, (
        f"Spark has no Hadoop file system for {scheme}:// ({said}). Add "
        f"{package.format(hadoop=hadoop)} to spark.jars.packages (spark-submit --packages, "
        f"or spark-defaults.conf; Spark's Hadoop is {hadoop}) and set {settings}"
    )
