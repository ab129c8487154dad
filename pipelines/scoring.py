"""Batch scoring before renewals: features at ``as_of``, calibrated probability, bands,
drivers, plays and the change since the last run, computed without writing anything.

The score history (``scoring.history`` in ``churn.yaml``, see
:class:`pipelines.config.ScoringConfig`) is one Parquet file that every run reads and
rewrites, wherever its scores directory goes: one row per account and as-of date with the
probability, the family contributions (``fam_<family>``), the model's input values
(``feat_<feature>``: numbers as floats, categories as text) and the model that scored it
(``model_version``, the registry's version, ``model_id``, MLflow's id of the logged model,
``model_uri``, and ``model_features``, the JSON list of the features it read). It is
replaced atomically, and only after the scores directory was written
(:mod:`pipelines.scores_dir` writes both; :mod:`pipelines.scoring_model` loads the model).

Probabilities, bands, drivers and plays come from the model's own scorer
(:meth:`models.scorer.HealthScorer.score`), the code a served model runs: ``churn score``
and ``mlflow models serve`` give the same values for the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from features.catalog import Feature
from features.errors import ContractError
from features.feature_query import FeatureRows
from features.progress import Progress
from features.scoring_set import ScoringSet, build_scoring_set
from models.columns import matrix
from models.drift import drift_table
from models.explain import FAMILY_NAMES, contributions, family_contributions
from models.explain_change import change_since
from models.plays import PlayConfig, priority
from models.waterfall import waterfall_png
from pipelines.scoring_model import ScoringModel

#: The score history's columns besides the family contributions and the feature values.
HISTORY_COLUMNS = (
    "account_id", "as_of", "churn_probability", "model_version", "model_id", "model_uri",
    "model_features", "band", "arr", "renewal_date",
)  # fmt: skip
#: Prefixes of a family's contribution and of a feature's value, in batches and the history
#: (prefixed, so that an account attribute named like a family cannot collide with it).
FAMILY, FEATURE = "fam_", "feat_"
#: Waterfalls are drawn only for what a reviewer looks at first (explaining what is shown).
WATERFALLS = 50


@dataclass(frozen=True)
class ScoreOutput:
    """Everything one scoring run produces, before it is written."""

    scores: pd.DataFrame
    #: The score history after this run: the earlier rows of other as-of dates, plus this run's.
    history: pd.DataFrame
    drift: pd.DataFrame
    waterfalls: dict[str, bytes] = field(default_factory=dict)
    #: Expected outcome of the scored renewals and earlier runs against theirs
    #: (:func:`pipelines.outlook.outlook`); written as ``outlook.json``.
    outlook: dict[str, Any] = field(default_factory=dict)


def check_features_match(sm: ScoringModel, ts: FeatureRows) -> None:
    """Refuse a model whose features are not the ones built for scoring: the settings or
    the tables differ from training's, a user error (exit 2)."""
    expected = [f.name for f in sm.features]
    built = set(ts.frame.columns)
    missing = [n for n in expected if n not in built]
    if missing:
        raise ContractError(
            f"features: the model {sm.uri} expects features that were not built: "
            f"{', '.join(missing[:8])}"
            f"{' ...' if len(missing) > 8 else ''}. Score with the same feature settings "
            "(windows, key events, tables present) as at training, or retrain."
        )


def model_families(sm: ScoringModel) -> list[str]:
    """The driver families of the model's features, in a fixed order (batch columns)."""
    return list(sm.scorer.families)


def explain_batch(
    frame: pd.DataFrame,
    sm: ScoringModel,
    plays: PlayConfig,
    probability: np.ndarray | None = None,
) -> pd.DataFrame:
    """Score, band, explain and route a batch of feature rows; row by row, no global step.

    The model's own scorer does it (:meth:`models.scorer.HealthScorer.score`, what the
    served model answers with); this adds the rows' ids and dates, the priority, and for
    the score history the family contributions as ``fam_<family>`` columns and the model's
    input values as ``feat_<feature>`` columns (numbers as floats, categories as text).
    This is the part that runs per partition on Spark (``mapInPandas``), so it must give
    the same result for a row whatever batch it is in. ``probability`` lets a caller pass
    the model's output computed elsewhere.
    """
    frame = frame.reset_index(drop=True)
    scored = sm.scorer.score(frame, plays, probability)
    a = scored.answers
    p = a["churn_probability"].to_numpy(dtype=np.float64)
    arr = frame["arr"].astype("float64")
    out = pd.DataFrame(
        {
            "account_id": frame["account_id"].astype("str"),
            "as_of": frame["as_of"],
            "churn_probability": p,
            "health_score": a["health_score"],
            "band": a["band"],
            "renewal_date": frame["renewal_date"],
            "arr": arr,
            "drivers": a["drivers"],
            "driver_list": scored.driver_lists,
            "play": a["play"],
            "priority": [priority(v, q) for v, q in zip(arr, p, strict=True)],
            "top_driver": a["top_driver"],
            "contract_id": frame["contract_id"],
            "lead_days": frame["lead_days"],
        }
    )
    values = feature_values(frame, sm.features, scored.X)
    return pd.concat([out, scored.families.add_prefix(FAMILY), values], axis=1)


def feature_values(
    frame: pd.DataFrame, features: Sequence[Feature], X: pd.DataFrame
) -> pd.DataFrame:
    """The model's inputs as ``feat_<name>`` columns: numbers as the model reads them
    (``X``, float64), categories as the text of ``frame`` (a level unseen at training is
    kept, so that a later model may know it)."""
    cols: dict[str, Any] = {}
    for f in features:
        if f.categorical:
            raw = frame[f.name].to_numpy(dtype=object)
            text = [None if pd.isna(v) else str(v) for v in raw]
            cols[FEATURE + f.name] = pd.Series(text, dtype="str")  # None: missing
        else:
            cols[FEATURE + f.name] = X[f.name].to_numpy(dtype=np.float64)
    return pd.DataFrame(cols, index=range(len(frame)))


def finish(
    batch: pd.DataFrame,
    frame: pd.DataFrame,
    accounts: pd.DataFrame,
    sm: ScoringModel,
    previous: pd.DataFrame | None = None,
    waterfalls: int = WATERFALLS,
) -> ScoreOutput:
    """The global steps after the batches: names and owners, order by priority, the change
    since the last run, drift, and waterfalls for the accounts shown first.

    ``frame`` holds the feature rows (for drift and the waterfalls), ``accounts`` gives
    ``name``, ``segment`` and ``csm`` when present, ``previous`` is the score history
    (:func:`pipelines.scores_dir.read_history`). Only its rows of an earlier as-of count as
    previous scores; its rows of this run's as-of are replaced.
    """
    info = accounts.set_index("account_id")
    ids = batch["account_id"]

    def col(name: str) -> pd.Series:
        if name in info:
            return ids.map(info[name]).astype("object")
        return pd.Series([None] * len(batch), dtype="object", index=batch.index)

    fams = [c for c in batch.columns if c.startswith(FAMILY)]
    feats = [c for c in batch.columns if c.startswith(FEATURE)]
    scores = batch.drop(columns=[*fams, *feats]).assign(
        name=col("name"),
        segment=col("segment") if "segment" in info else frame["segment"].to_numpy(),
        csm=col("csm"),
        model_version=sm.version,
        overdue=overdue_flags(batch),
        model_id=sm.model_id,
    )
    # Band, ARR and renewal date let a later run set this run's expected outcome against
    # what happened (pipelines.outlook).
    current = batch[
        ["account_id", "as_of", "churn_probability", "band", "arr", "renewal_date"]
    ].assign(
        model_version=sm.version,
        model_id=sm.model_id,
        model_uri=sm.uri,
        model_features=json.dumps([f.name for f in sm.features]),
    )
    current = pd.concat([current, batch[[*fams, *feats]]], axis=1)
    if previous is not None and len(previous):
        previous = _upgrade_history(previous)
        as_of = scores["as_of"].iloc[0] if len(scores) else None
        earlier = previous[previous["as_of"] < as_of] if as_of is not None else previous
        last = earlier.sort_values("as_of", kind="stable").groupby("account_id").tail(1)
        scores["change"] = change_text(last, current, sm)
        kept = previous[previous["as_of"] != as_of] if as_of is not None else previous
        history = pd.concat([kept, current], ignore_index=True)
    else:
        scores["change"] = ""
        history = current
    scores = scores.sort_values(["priority", "account_id"], ascending=[False, True], kind="stable")
    scores = scores.reset_index(drop=True)

    model = sm.model
    drift = drift_table(
        frame, sm.context.get("drift_baseline", {}), {f.name: f.label for f in sm.features}
    )
    pictures: dict[str, bytes] = {}
    shown = set(scores.head(waterfalls)["account_id"])
    rows = frame[frame["account_id"].astype("str").isin(shown)].drop_duplicates("account_id")
    if len(rows):
        X = matrix(rows, model.features_, model.categories_)
        contrib = contributions(model.booster_, X, model.n_estimators_)
        for i, acc in enumerate(rows["account_id"].astype("str")):
            pictures[acc] = waterfall_png(
                contrib.iloc[i], model.features_, X.iloc[i], f"{acc}: why this score"
            )
    history = history.sort_values(["as_of", "account_id"], kind="stable").reset_index(drop=True)
    return ScoreOutput(scores, history, drift, pictures)


def overdue_flags(batch: pd.DataFrame) -> pd.Series:
    """True for the rows whose renewal date is on or before their ``as_of``.

    A scored row's ``renewal_date`` is its account's earliest renewal still to decide
    (:func:`features.snapshots.open_term_snapshots`): open terms end after ``as_of``, so a
    date on or before it is a term past its end with no outcome recorded, an overdue
    renewal. Inactivity mode has no renewal date: never overdue. Computed here, in the
    global step, so that the local and the Spark paths share it.
    """
    renewal = pd.to_datetime(batch["renewal_date"], utc=True)
    as_of = pd.to_datetime(batch["as_of"], utc=True)
    return pd.Series((renewal.notna() & (renewal <= as_of)).to_numpy(dtype=bool), index=batch.index)


def _upgrade_history(history: pd.DataFrame) -> pd.DataFrame:
    """A history as this version writes it: a ``history.parquet`` of an older scores
    directory has bare family columns and no model columns."""
    bare = {c: FAMILY + c for c in history.columns if c in FAMILY_NAMES}
    bare = {c: p for c, p in bare.items() if p not in history.columns}
    missing = {c: None for c in HISTORY_COLUMNS if c not in history.columns}
    return history.rename(columns=bare).assign(**missing) if bare or missing else history


def rescore_previous(last: pd.DataFrame, sm: ScoringModel) -> pd.DataFrame:
    """Today's model on the previous feature values of ``last`` (history rows) that came
    from another model version: ``account_id``, ``churn_probability`` and one column per
    family. Rows whose recorded features lack any of today's model's are left out."""
    names = [f.name for f in sm.features]
    other = last[
        last["model_version"].notna() & (last["model_version"].astype("str") != sm.version)
    ]
    if other.empty or any(FEATURE + n not in other.columns for n in names):
        return pd.DataFrame(columns=["account_id", "churn_probability"])
    recorded = {
        text: set(json.loads(text)) >= set(names)
        for text in other["model_features"].dropna().unique()
    }
    rows = other[other["model_features"].map(lambda t: recorded.get(t, False)).astype(bool)]
    if rows.empty:
        return pd.DataFrame(columns=["account_id", "churn_probability"])
    values = rows[[FEATURE + n for n in names]].rename(columns=lambda c: c.removeprefix(FEATURE))
    values = values.reset_index(drop=True)
    model = sm.model
    X = matrix(values, model.features_, model.categories_)
    fam = family_contributions(
        contributions(model.booster_, X, model.n_estimators_), model.features_
    )
    return fam.reindex(columns=model_families(sm), fill_value=0.0).assign(
        account_id=rows["account_id"].to_numpy(), churn_probability=model.predict_risk(values)
    )


def change_text(last: pd.DataFrame, current: pd.DataFrame, sm: ScoringModel) -> pd.Series:
    """:func:`models.explain.change_since` of this run's rows (``current``) against each
    account's previous row in the history (``last``), split into the model's part and the
    account's where the previous score came from another model version."""
    bare = lambda frame: frame.rename(columns=lambda c: c.removeprefix(FAMILY))  # noqa: E731
    return change_since(bare(last), bare(current), rescored=rescore_previous(last, sm))


def score_frame(
    ts: ScoringSet,
    accounts: pd.DataFrame,
    sm: ScoringModel,
    plays: PlayConfig,
    previous: pd.DataFrame | None = None,
    waterfalls: int = WATERFALLS,
) -> ScoreOutput:
    """Score, band, explain and route every row of a scoring set (the local path)."""
    check_features_match(sm, ts)
    frame = ts.frame.reset_index(drop=True)
    return finish(explain_batch(frame, sm, plays), frame, accounts, sm, previous, waterfalls)


def accounts_info(tables: Mapping[str, Any]) -> pd.DataFrame:
    """account_id with name, segment and csm when the accounts table has them."""
    acc = tables["accounts"]
    cols = [c for c in ("account_id", "name", "segment", "csm") if c in acc.columns]
    return acc.select(*cols).to_pyarrow().to_pandas()


def scoring_set(
    tables: Mapping[str, Any], as_of: date, sm: ScoringModel, cfg: Any, progress: Progress = None
) -> ScoringSet:
    """The feature rows at ``as_of`` with the model's own list of common events."""
    return build_scoring_set(tables, as_of, cfg.labels, cfg.features, sm.top_events, progress)
