"""Rolling-origin backtest: the model and the baselines scored on the same future rows.

At each of the last K cut-offs (:func:`models.folds.time_folds`) every scorer is fitted on
what was known before the cut-off and scores the snapshots taken from the cut-off to the
next one, at each lead time. The result is one row per scored snapshot (``scores``) and a
tidy metrics table per fold, lead time, segment and scorer (``metrics``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.catalog import Feature
from models import metrics as m
from models.baselines import EngagementScore, HealthScore, LogisticBaseline, health_band
from models.columns import check_training_frame
from models.config import ModelConfig
from models.folds import time_folds
from models.train import ChurnModel

Progress = Callable[[str, float], None] | None
#: Scorers whose output is a probability (Brier, log loss and ECE apply).
PROBABILISTIC = ("model", "model_monotone", "model_free", "logistic", "oracle")
#: Scorers whose risk is ``1 - score / 100`` of a 0-100 health score, banded 40/70.
HEALTH_SCALE = ("health_score", "engagement_score")
BASELINES = ("health_score", "engagement_score", "logistic")
ALL = "all"
#: Columns of the scored rows copied from the training set.
KEYS = ("account_id", "contract_id", "as_of", "lead_days", "renewal_date", "segment", "arr",
        "label")  # fmt: skip


@dataclass(frozen=True)
class BacktestResult:
    """What a backtest found.

    scores
        One row per validation snapshot: ``fold``, the key columns, and one risk column per
        scorer (``model``, ``health_score``, ``engagement_score``, ``logistic``, ``oracle``
        when given; ``model_monotone``/``model_free`` when monotone was "auto").
    metrics
        One row per (``fold``, ``lead_days``, ``segment``, ``scorer``); ``fold`` and
        ``segment`` are "all" and ``lead_days`` is missing (<NA>) for the pooled rows.
    folds
        One row per fold: cut-off, training and validation rows, churn rate, rounds and the
        calibrator chosen.
    monotone
        Whether the model keeps monotone constraints (the "auto" decision, or the setting).
    """

    scores: pd.DataFrame
    metrics: pd.DataFrame
    folds: pd.DataFrame
    monotone: bool

    def summary(self, scorer: str = "model") -> dict[str, float]:
        """Pooled metrics of one scorer over all folds, lead times and segments."""
        t = self.metrics
        row = t[(t.fold == ALL) & t.lead_days.isna() & (t.segment == ALL) & (t.scorer == scorer)]
        if row.empty:
            raise KeyError(f"no scorer {scorer!r}; have {sorted(t.scorer.unique())}")
        values = row.iloc[0].drop(["fold", "lead_days", "segment", "scorer"])
        return {str(k): float(v) for k, v in values.items()}


def backtest(
    frame: pd.DataFrame,
    features: Sequence[Feature],
    cfg: ModelConfig,
    *,
    params: Mapping[str, Any] | None = None,
    n_estimators: int | None = None,
    oracle: npt.ArrayLike | None = None,
    num_threads: int = 1,
    progress: Progress = None,
) -> BacktestResult:
    """Backtest the model with ``params`` against the baselines over ``cfg.backtest_folds``.

    Parameters
    ----------
    frame, features
        The training set's frame and declared features; unlabelled rows are ignored.
    params, n_estimators
        Tree parameters and rounds (e.g. from :func:`models.tune.tune`); ``None``: defaults
        and early stopping.
    oracle
        True churn probabilities aligned with the rows of ``frame`` (simulations only);
        scored as the ``oracle`` column.
    """
    check_training_frame(frame, features)
    frame = frame.assign(oracle=np.asarray(oracle, float)) if oracle is not None else frame
    frame = frame.loc[frame["label"].notna()].reset_index(drop=True)
    folds = time_folds(frame, cfg.backtest_folds, cfg.backtest_step_days, cfg.purge_days)
    variants = {"on": {"model": True}, "off": {"model": False}}.get(
        cfg.monotone, {"model_monotone": True, "model_free": False}
    )
    parts, info = [], []
    for i, fold in enumerate(folds):
        if progress is not None:
            progress(f"backtest {fold.name}", i / len(folds))
        train, valid = frame.loc[fold.train], frame.loc[fold.valid]
        out = valid[[c for c in KEYS if c in valid.columns]].assign(fold=fold.name)
        for name, monotone in variants.items():
            model = ChurnModel(
                params=params, n_estimators=n_estimators, monotone=monotone,
                calibration=cfg.calibration, calibration_share=cfg.calibration_share,
                purge_days=cfg.purge_days, learning_rate=cfg.learning_rate,
                max_rounds=cfg.max_rounds, early_stopping_rounds=cfg.early_stopping_rounds,
                seed=cfg.seed, num_threads=num_threads,
            ).fit(train, features)  # fmt: skip
            out[name] = model.predict_risk(valid)
            info.append(
                {
                    "fold": fold.name, "variant": name, "cutoff": fold.cutoff,
                    "train_rows": int(fold.train.sum()), "valid_rows": int(fold.valid.sum()),
                    "valid_churn_rate": float(valid["label"].mean()),
                    "n_estimators": model.n_estimators_, "calibration": model.calibration_,
                }
            )  # fmt: skip
        out["health_score"] = HealthScore().fit(train, features).predict_risk(valid)
        out["engagement_score"] = EngagementScore().fit(train, features).predict_risk(valid)
        out["logistic"] = LogisticBaseline().fit(train, features).predict_risk(valid)
        if oracle is not None:
            out["oracle"] = valid["oracle"].to_numpy()
        parts.append(out)
    scores = pd.concat(parts, ignore_index=True)
    if cfg.monotone == "auto":
        pooled = metrics_table(scores, ["model_monotone", "model_free"], cfg, by=False)
        auc = dict(zip(pooled.scorer, pooled.roc_auc, strict=True))
        keep = bool(auc["model_monotone"] >= auc["model_free"] - cfg.monotone_max_auc_drop)
        scores["model"] = scores["model_monotone" if keep else "model_free"]
    else:
        keep = cfg.monotone == "on"
    if progress is not None:
        progress("backtest metrics", 0.95)
    scorers = [c for c in (*variants, "model", *BASELINES, "oracle") if c in scores.columns]
    scorers = list(dict.fromkeys(scorers))
    return BacktestResult(
        scores=scores,
        metrics=metrics_table(scores, scorers, cfg),
        folds=pd.DataFrame(info),
        monotone=keep,
    )


def bands_of(scorer: str, risk: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """Red/yellow/green of a scorer's risk: probability bands, or the health-score bands."""
    if scorer in HEALTH_SCALE:
        return health_band(100.0 * (1.0 - risk))
    return m.band(risk, cfg.bands)


def group_metrics(
    rows: pd.DataFrame, scorer: str, cfg: ModelConfig, band_lead: int | None
) -> dict[str, float]:
    """Every metric of one scorer on one group of scored rows."""
    y = rows["label"].to_numpy(float)
    risk = rows[scorer].to_numpy(float)
    prob = scorer in PROBABILISTIC
    lift, recall = m.top_share(y, risk)
    out = {
        "rows": float(y.size),
        "churned": float(y.sum()),
        "roc_auc": m.roc_auc(y, risk),
        "pr_auc": m.pr_auc(y, risk),
        "brier": m.brier(y, risk) if prob else np.nan,
        "log_loss": m.log_loss(y, risk) if prob else np.nan,
        "ece": m.ece(y, risk) if prob else np.nan,
        "lift_top_decile": lift,
        "recall_top_decile": recall,
        "red_arr_share": np.nan,
        "watermelon_rate": np.nan,
    }
    if band_lead is not None:
        at = rows["lead_days"].to_numpy() == band_lead
        if at.any():
            bands = bands_of(scorer, risk[at], cfg)
            arr = rows["arr"].to_numpy(float)[at] if "arr" in rows else np.zeros(at.sum())
            out["red_arr_share"] = m.red_arr_share(y[at], bands, arr)
            out["watermelon_rate"] = m.watermelon_rate(y[at], bands)
    return out


def metrics_table(
    scores: pd.DataFrame, scorers: Sequence[str], cfg: ModelConfig, by: bool = True
) -> pd.DataFrame:
    """Metrics per fold, lead time, segment and scorer, plus the pooled ("all") groups.

    The red-ARR share and the watermelon rate read only the snapshots at the lead time
    nearest ``cfg.band_lead_days`` (90 days before renewal by default).
    """
    leads = np.sort(scores["lead_days"].unique())
    band_lead = int(leads[np.argmin(np.abs(leads - cfg.band_lead_days))]) if leads.size else None
    segment = (
        scores["segment"].astype(object).where(scores["segment"].notna(), "(none)").astype(str)
        if "segment" in scores
        else pd.Series(ALL, index=scores.index)
    )
    scores = scores.assign(_segment=segment)
    groups: list[tuple[str, Any, str, pd.DataFrame]] = [(ALL, pd.NA, ALL, scores)]
    if by:
        for fold, rows in _split(scores, "fold"):
            groups.append((str(fold), pd.NA, ALL, rows))
        for lead, rows in _split(scores, "lead_days"):
            groups.append((ALL, int(lead), ALL, rows))
            for fold, sub in _split(rows, "fold"):
                groups.append((str(fold), int(lead), ALL, sub))
        for seg, rows in _split(scores, "_segment"):
            groups.append((ALL, pd.NA, str(seg), rows))
            for lead, sub in _split(rows, "lead_days"):
                groups.append((ALL, int(lead), str(seg), sub))
    records = []
    for fold, lead, seg, rows in groups:
        lead_for_bands = band_lead if (pd.isna(lead) or lead == band_lead) else None
        for scorer in scorers:
            records.append(
                {"fold": fold, "lead_days": lead, "segment": seg, "scorer": scorer}
                | group_metrics(rows, scorer, cfg, lead_for_bands)
            )
    table = pd.DataFrame(records)
    table["lead_days"] = table["lead_days"].astype("Int64")
    return table


def _split(frame: pd.DataFrame, column: str) -> Iterator[tuple[Any, pd.DataFrame]]:
    """The rows of each value of ``column``, values in sorted order."""
    values = frame[column].to_numpy()
    for key in sorted(pd.unique(values)):
        yield key, frame[values == key]
