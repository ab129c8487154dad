"""Batch scoring on Spark: the local scoring path, with the per-row part run per partition.

The feature rows are computed by Spark from the same Ibis expression as on DuckDB
(:func:`features.scoring_set.scoring_query`) and stay on the cluster. Spark then computes the
calibrated probability, bands, SHAP drivers and plays per partition (``mapInPandas``), with
the very function the local path runs on the whole frame
(:func:`pipelines.scoring.explain_batch`, i.e. the model's own scorer, what the served model
runs), after each batch is shaped by :func:`features.feature_query.frame_from_raw`, as the local
frame is. (``mlflow.pyfunc.spark_udf`` on the registered model gives the same answers, with
only the model's requirements on the executors; this path needs the drivers' extra columns
for the score history, hence its own function.)

Only what the report needs comes back to the driver: the scored rows (one per eligible
account or term), the drift features of those rows, and the full feature rows of the
accounts whose waterfalls are drawn. The global step (:func:`pipelines.scoring.finish`) and
the writing of the scores directory are the local path's own; scores.parquet is written by
Spark (:func:`parquet_writer`).

pyspark is an optional extra: this module is imported only when the engine is ``spark``.
On a cluster the executors need this project importable (a wheel installed on the cluster,
or ``spark-submit --py-files``), since ``mapInPandas`` runs :mod:`pipelines.scoring` there.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
from ibis.backends import BaseBackend

from features.catalog import Feature
from features.feature_query import RAW_COLUMNS, FeatureQuery, frame_from_raw, sort_rows
from features.progress import Progress
from features.scoring_set import ScoringSet, scoring_query
from features.spark import held_on_spark, spark_uri
from models.plays import PlayConfig
from pipelines.config import ChurnConfig
from pipelines.scoring import (
    FAMILY,
    FEATURE,
    WATERFALLS,
    ScoreOutput,
    accounts_info,
    check_features_match,
    explain_batch,
    finish,
    model_families,
)
from pipelines.scoring_model import ScoringModel

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import SparkSession
    from pyspark.sql.types import StructType

#: The feature expression's unique row id; carried through to find a row's features again.
ROW_ID = "snapshot_id"
#: Column names used on Spark only; the leading underscore keeps them off feature names.
ROW = "_row"
#: Feature-frame columns carried next to the scores, for the global step (drift, segment).
FRAME = "_frame_"


def score_on_spark(
    con: BaseBackend,
    tables: Mapping[str, ir.Table],
    as_of: date,
    sm: ScoringModel,
    cfg: ChurnConfig,
    previous: pd.DataFrame | None = None,
    progress: Progress = None,
    waterfalls: int = WATERFALLS,
) -> ScoreOutput:
    """Score every account eligible at ``as_of`` on Spark; the same result as the local path.

    ``con`` is the Ibis PySpark backend that ``tables`` were read with, ``cfg`` the run's
    settings (labels, features, plays) and ``previous`` the score history
    (:func:`pipelines.scores_dir.read_history`).
    The feature rows are cached on the cluster for the length of the call (one pass for the
    scores, one small one for the waterfalls).
    """
    # The expression alone (nothing runs) tells whether the model's features are there;
    # check_features_match reads only the frame's column names.
    query = scoring_query(tables, as_of, cfg.labels, cfg.features, sm.top_events)
    names = pd.DataFrame(columns=[f.name for f in query.features])
    check_features_match(sm, ScoringSet(names, query.features, query.top_events))
    with held_on_spark(con) as hold:
        query = scoring_query(tables, as_of, cfg.labels, cfg.features, sm.top_events, hold)
        if progress:
            progress("features computed on Spark", 0.3)
        return _score_features(con, query, tables, sm, cfg, previous, progress, waterfalls)


def _score_features(
    con: BaseBackend,
    query: FeatureQuery,
    tables: Mapping[str, ir.Table],
    sm: ScoringModel,
    cfg: ChurnConfig,
    previous: pd.DataFrame | None,
    progress: Progress,
    waterfalls: int,
) -> ScoreOutput:
    """:func:`score_on_spark` once the feature query's parts are held (cached) on Spark."""
    features, view = _spark_frame(con, query)
    try:
        names = {f.name for f in query.features}
        drift = [c for c in sm.context.get("drift_baseline", {}) if c in names]
        scored = explain_on_spark(features, sm, query.features, cfg.plays, drift)
        if progress:
            progress("scoring and explaining on Spark", 0.6)
        rows = sort_rows(_to_pandas(scored.toArrow()))
        frame_cols = [c for c in rows.columns if c.startswith(FRAME)]
        batch = rows.drop(columns=[ROW, *frame_cols])
        frame = rows[["account_id", ROW, *frame_cols]].rename(
            columns=lambda c: c.removeprefix(FRAME)
        )
        frame = _with_waterfall_rows(frame, batch, features, query.features, waterfalls)
        return finish(batch, frame, accounts_info(tables), sm, previous, waterfalls)
    finally:
        features.unpersist()
        features.sparkSession.catalog.dropTempView(view)


def explain_on_spark(
    features: SparkFrame,
    sm: ScoringModel,
    decl: Sequence[Feature],
    plays: PlayConfig,
    drift: Sequence[str] = (),
) -> SparkFrame:
    """The scored rows as a Spark frame: :func:`explain_batch`'s columns per row, plus
    ``_row`` (the snapshot id) and ``_frame_<column>`` for ``segment`` and the ``drift``
    features (the feature frame's values, for the global step)."""
    wanted = [ROW_ID, *RAW_COLUMNS, *(f.name for f in decl)]
    raw = [c for c in dict.fromkeys(wanted) if c in features.columns]
    # The ScoringModel (plain Python and a LightGBM booster) travels inside the function;
    # PySpark broadcasts a pickled function above 1 MB by itself. No sparkContext.broadcast:
    # Spark Connect sessions (Databricks shared and serverless compute) have no context.
    explain = partial(_explain_batches, sm=sm, decl=tuple(decl), plays=plays, drift=drift)
    return features.select(*raw).mapInPandas(explain, batch_schema(sm, drift))


def _explain_batches(
    batches: Iterator[pd.DataFrame],
    sm: ScoringModel,
    decl: tuple[Feature, ...],
    plays: PlayConfig,
    drift: Sequence[str],
) -> Iterator[pd.DataFrame]:
    """``mapInPandas``: shape each batch as the local frame is, then :func:`explain_batch`."""
    for raw in batches:
        if raw.empty:
            continue
        frame = frame_from_raw(raw, decl)
        out = explain_batch(frame, sm, plays)
        carried = {FRAME + c: frame[c].to_numpy() for c in ("segment", *drift)}
        yield out.assign(**{ROW: raw[ROW_ID].to_numpy()}, **carried)


def batch_schema(sm: ScoringModel, drift: Sequence[str] = ()) -> StructType:
    """The Spark schema of :func:`explain_batch`'s output, plus the carried columns.

    Kept in step with :func:`explain_batch` by hand; ``mapInPandas`` matches the columns by
    name and fails on a missing or extra one, so a change there is caught at the first run.
    """
    from pyspark.sql import types as T

    text, number, whole, when = T.StringType(), T.DoubleType(), T.LongType(), T.TimestampType()
    columns: list[tuple[str, T.DataType]] = [
        ("account_id", text),
        ("as_of", when),
        ("churn_probability", number),
        ("health_score", whole),
        ("band", text),
        ("renewal_date", when),
        ("arr", number),
        ("drivers", text),
        ("driver_list", T.ArrayType(text)),
        ("play", text),
        ("priority", number),
        ("top_driver", text),
        ("contract_id", text),
        ("lead_days", whole),
        *((FAMILY + family, number) for family in model_families(sm)),
        # The model's inputs, for the score history (pipelines.scoring.feature_values).
        *((FEATURE + f.name, text if f.categorical else number) for f in sm.features),
        (ROW, whole),
        (FRAME + "segment", text),
        *((FRAME + c, number) for c in drift),
    ]
    return T.StructType([T.StructField(name, kind, True) for name, kind in columns])


def _spark_frame(con: BaseBackend, query: FeatureQuery) -> tuple[SparkFrame, str]:
    """The feature expression as a Spark frame, cached: it is read by two jobs.

    Goes through a temporary view, which also registers the expression's in-memory tables
    (the snapshot calendar, the lead days) with the session.
    """
    from pyspark import StorageLevel

    view = f"churn_scoring_features_{uuid.uuid4().hex[:12]}"
    con.create_view(view, query.expr, overwrite=True)
    features = con._session.table(view)  # the view's plan, not analysed again
    return features.persist(StorageLevel.MEMORY_AND_DISK), view


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """A collected Arrow table as pandas; lists (``driver_list``) as Python lists, as
    :func:`explain_batch` gives them."""
    out = table.to_pandas()
    if "driver_list" in out:
        # Arrow lists arrive as numpy arrays; the local path has Python lists.
        out["driver_list"] = [[] if v is None else [str(x) for x in v] for v in out["driver_list"]]
    return out


def _with_waterfall_rows(
    frame: pd.DataFrame,
    batch: pd.DataFrame,
    features: SparkFrame,
    decl: Sequence[Feature],
    waterfalls: int,
) -> pd.DataFrame:
    """``frame`` with every declared feature filled for the accounts :func:`finish` may
    draw a waterfall for; other rows keep only what the global step reads (drift, segment).

    ``finish`` draws the ``waterfalls`` accounts of highest priority; fetching every
    account whose priority reaches the ``waterfalls``-th highest covers them whatever the
    tie-break, at the cost of a few extra rows on ties.
    """
    from pyspark.sql import functions as F

    if waterfalls <= 0 or batch.empty:
        return frame.drop(columns=ROW)
    missing = [f.name for f in decl if f.name not in frame.columns]
    cut = batch["priority"].nlargest(waterfalls).min()
    accounts = sorted(set(batch.loc[batch["priority"] >= cut, "account_id"]))
    raw = _to_pandas(features.filter(F.col("account_id").isin(accounts)).toArrow())
    wide = frame_from_raw(raw, decl).assign(**{ROW: raw[ROW_ID].to_numpy()})
    filled = frame.merge(wide[[ROW, *missing]], on=ROW, how="left", validate="one_to_one")
    return filled.drop(columns=ROW)


def parquet_writer(con: BaseBackend) -> Callable[[pd.DataFrame, Path], None]:
    """A ``write_parquet`` for :func:`pipelines.scores_dir.write_scores_dir`: the Spark session
    of ``con`` writes the contract table as one part file, which is then moved to ``path``
    (a file, as the local path writes it, so that ``pandas.read_parquet`` reads it the same).

    Timestamps are written as UTC instants in microseconds (as pandas does), not as Spark's
    legacy INT96; a column that is empty throughout is written as text, since Parquet has no
    column type for "nothing" on Spark.
    """

    # The Ibis backend keeps its session private; a (lazy, unexecuted) query exposes it.
    spark: SparkSession = con.raw_sql("SELECT 1").sparkSession

    def write(table: pd.DataFrame, path: Path) -> None:
        arrow = pa.Table.from_pandas(table, preserve_index=False)
        typed = pa.schema(
            [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in arrow.schema]
        )
        frame = spark.createDataFrame(arrow.cast(typed).replace_schema_metadata(None))
        parts = path.with_name(f".{path.name}.parts")
        key = "spark.sql.parquet.outputTimestampType"
        before = spark.conf.get(key)
        spark.conf.set(key, "TIMESTAMP_MICROS")
        try:
            # One partition keeps the rows in the table's order (priority first).
            frame.coalesce(1).write.mode("errorifexists").parquet(spark_uri(parts))
        finally:
            if before is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, before)
        files = sorted(parts.glob("part-*.parquet"))
        if len(files) != 1:
            raise RuntimeError(
                f"Spark wrote {len(files)} Parquet parts to {parts}, expected one; is the "
                "scores directory on a file system the driver and the executors share?"
            )
        os.replace(files[0], path)
        shutil.rmtree(parts)

    return write
