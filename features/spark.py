"""A Spark connection for the feature queries: the same Ibis code, run by PySpark.

pyspark is an optional extra (``pip install -e ".[spark]"``) and needs Java 17; this module
is imported only when the engine is ``spark``, so DuckDB users never load it.

Locally, :func:`spark_connect` starts (or reuses) an in-process Spark sized for a laptop or a
shared 2-core box: no web UI, few shuffle partitions, modest driver memory, bound to
127.0.0.1 so that no network is needed. On a cluster the master URL comes from the run's
configuration (``engine.spark_master``, e.g. ``yarn`` or ``spark://host:7077``) or from
``spark-submit --master``; a session that is already running (spark-submit, a notebook) is
reused, and only its SQL settings are changed.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import ibis
from ibis.backends import BaseBackend

from features.errors import ContractError

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
    "spark.driver.memory": "1g",
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
