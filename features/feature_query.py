"""The feature query shared by training and scoring sets, and the frame the model reads.

A :class:`FeatureQuery` is a training or scoring set not yet run: the Ibis expression of
:func:`features.build.feature_table` over numbered snapshots, and its declarations.
:func:`frame_from_raw` turns its rows into the model's frame (ids, label, cohorts, the
declared features), and :func:`sort_rows` puts a whole set in :data:`ROW_ORDER`. This is
the one place that turns Ibis expressions into pandas: the final frame is what the model
reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from features.build import feature_table
from features.catalog import Feature
from features.config import FeatureConfig

ID_COLUMNS = ("account_id", "contract_id", "as_of", "lead_days")
LABEL_COLUMNS = ("label", "label_known_at", "expansion")
CONTEXT_COLUMNS = (
    "renewal_date",
    "segment",
    "arr",
    "cohort_month",
    "tenure_bucket",
    "signup_quarter",
)
TENURE_BUCKETS = ((365, "<1y"), (730, "1-2y"), (1095, "2-3y"), (np.inf, "3y+"))
#: The columns of a feature expression that :func:`frame_from_raw` reads besides the features.
RAW_COLUMNS = ("account_id", "contract_id", "as_of_day", "lead_days", "label", "label_known_day",
               "expansion", "renewal_day", "segment", "arr", "tenure_days")  # fmt: skip
#: The order of the rows of every training and scoring set.
ROW_ORDER = ("as_of", "account_id", "contract_id")


@dataclass(frozen=True)
class FeatureRows:
    """Feature rows of snapshots: the frame (ids, cohorts, label columns and the declared
    features, in that order), the features' declarations, and the events that have a
    column each. :class:`features.training.TrainingSet` and
    :class:`features.scoring_set.ScoringSet` are the two kinds."""

    frame: pd.DataFrame
    features: tuple[Feature, ...]
    top_events: tuple[str, ...]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


@dataclass(frozen=True)
class FeatureQuery:
    """A training or scoring set not yet run: the Ibis expression and its declarations.

    ``expr`` has one row per snapshot (``snapshot_id``, unique) with the :data:`RAW_COLUMNS`
    and the declared features; :func:`frame_from_raw` turns (any batch of) its rows into the
    frame the model reads.
    """

    expr: ir.Table
    features: tuple[Feature, ...]
    top_events: tuple[str, ...]


#: Snapshot ids are ``as_of_day * IDS_PER_DAY`` plus the snapshot's rank within its day.
#: Above 2**31, so that every engine multiplies in 64 bits (DuckDB types a smaller literal
#: as INTEGER, and Ibis omits the cast of a column it already knows as int64).
IDS_PER_DAY = 10_000_000_000


def _with_ids(snaps: ir.Table) -> ir.Table:
    """``snaps`` with a unique ``snapshot_id``, numbered per day: a window partitioned by
    day, which Spark runs per partition (a single global numbering moved every snapshot to
    one partition, and Spark warned on every plan that read it)."""
    per_day = ibis.window(group_by=snaps.as_of_day, order_by=[snaps.account_id, snaps.contract_id])
    rank = ibis.row_number().over(per_day)
    return snaps.mutate(snapshot_id=snaps.as_of_day * IDS_PER_DAY + rank)


def feature_query(
    tables: Mapping[str, ir.Table],
    snaps: ir.Table,
    features: FeatureConfig,
    top_events: Sequence[str],
    rolled: tuple[ir.Table, ir.Table] | None = None,
    hold: Callable[[ir.Table], ir.Table] | None = None,
    splits: Sequence[str] = (),
) -> FeatureQuery:
    """The feature query over ``snaps`` (numbered here), with ``top_events`` as its
    per-event columns; ``rolled``, ``hold`` and ``splits`` go to
    :func:`features.build.feature_table`."""
    expr, decl = feature_table(tables, _with_ids(snaps), features, top_events, rolled, hold, splits)
    return FeatureQuery(expr, decl, tuple(top_events))


def query_frame(expr: ir.Table, decl: Sequence[Feature]) -> pd.DataFrame:
    """Run a feature expression and return its rows as the model's frame, in :data:`ROW_ORDER`."""
    return sort_rows(frame_from_raw(expr.to_pyarrow().to_pandas(), decl))


def sort_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` in the order of every training and scoring set: :data:`ROW_ORDER`, missing
    contract ids first, with a fresh index."""
    return frame.sort_values(list(ROW_ORDER), na_position="first").reset_index(drop=True)


def frame_from_raw(raw: pd.DataFrame, decl: Sequence[Feature]) -> pd.DataFrame:
    """Rows of a feature expression (as pandas) in the shape the model reads; order kept.

    ``raw`` holds the :data:`RAW_COLUMNS` of :func:`features.build.feature_table`'s output
    (``segment`` may be absent) and the declared features. Whole sets go through this and
    then :func:`sort_rows`; on Spark each partition's batch goes through it on its own, so it
    must treat a row the same whatever batch it is in.
    """
    day = lambda c: pd.to_datetime(raw[c].astype("float64"), unit="D", utc=True).astype(  # noqa: E731
        "datetime64[us, UTC]"
    )
    tenure = raw["tenure_days"].astype("float64")
    created = pd.to_datetime(raw["as_of_day"] - tenure, unit="D", utc=True)
    segment = raw["segment"] if "segment" in raw else pd.Series(None, index=raw.index, dtype="str")
    out = pd.DataFrame(
        {
            "account_id": raw["account_id"].astype("str"),
            "contract_id": raw["contract_id"].astype("str").where(raw["contract_id"].notna(), None),
            "as_of": day("as_of_day"),
            "lead_days": raw["lead_days"].astype("int64"),
            "label": raw["label"].astype("Int8"),
            "label_known_at": day("label_known_day"),
            "expansion": raw["expansion"].astype("Int8"),
            "renewal_date": day("renewal_day"),
            "segment": segment.astype("str").where(segment.notna(), None),
            "arr": raw["arr"].astype("float64"),
        }
    )
    out["cohort_month"] = out["as_of"].dt.strftime("%Y-%m")
    out["tenure_bucket"] = pd.cut(
        tenure, [-np.inf, *(b for b, _ in TENURE_BUCKETS)], labels=[n for _, n in TENURE_BUCKETS]
    ).astype("str")
    out["signup_quarter"] = (
        created.dt.year.astype("Int64").astype("str")
        + "Q"
        + created.dt.quarter.astype("Int64").astype("str")
    )
    for f in decl:
        col = raw[f.name]
        out[f.name] = (
            pd.Categorical(col.astype("str").where(col.notna(), None))
            if f.categorical
            else col.astype("float64")
        )
    return out
