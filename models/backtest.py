"""Nested backtest: the whole training procedure replayed at each fold, scored on later rows.

At each fold of the plan (:func:`models.folds.plan_folds`: out-of-time cut-offs where the
history allows, else folds of held-out accounts) the training procedure of
:mod:`models.procedure` runs on the fold's training rows alone: it tunes (a smaller
budget, warm-started from the previous fold), picks the rounds, the monotone constraints,
the calibrator and the band thresholds, and the fitted model then scores the fold's
validation rows. The baselines are fitted on the same training rows and scored on the same
validation rows. Nothing used to score a fold comes from its validation period
(:attr:`BacktestResult.rows_used` records what each fold read).

The result is one row per scored snapshot (``scores``), a tidy metrics table per fold, lead
time, segment and scorer (``metrics``; the pooled rows carry bootstrap intervals that
resample accounts), and one row per fold with the choices made (``folds``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.catalog import Feature
from features.progress import Progress, part
from models import metrics as m
from models.bands import BandConfig
from models.baselines import BASELINES, health_band
from models.columns import check_training_frame
from models.config import ModelConfig
from models.folds import (
    Fold,
    FoldPlan,
    count_outcomes,
    outcome_ids,
    plan_folds,
    require_outcomes,
)
from models.procedure import Trained, train_procedure
from models.scorers import declared, scorers_in
from models.uncertainty import Interval, bootstrap_many

ALL = "all"
#: Columns of the scored rows copied from the training set.
KEYS = ("account_id", "contract_id", "as_of", "lead_days", "renewal_date", "segment", "arr",
        "label", "label_known_at")  # fmt: skip
#: Pooled metrics that carry a bootstrap interval (``<metric>_lo`` and ``<metric>_hi``).
INTERVAL_METRICS = ("roc_auc", "brier", "lift_top_decile", "red_precision", "red_recall",
                    "yellow_precision", "yellow_recall", "green_churn_rate",
                    "watermelon_rate")  # fmt: skip
#: Band metrics, read at the lead time nearest ``band_lead_days``.
BAND_METRICS = ("red_share", "red_precision", "red_recall", "yellow_share", "yellow_precision",
                "yellow_recall", "green_share", "green_churn_rate", "watermelon_rate",
                "red_arr_share")  # fmt: skip


@dataclass(frozen=True)
class BacktestResult:
    """What a backtest found.

    scores
        One row per validation snapshot: ``fold``, ``row`` (its position among the labelled
        rows of the frame), the key columns, one risk column per scorer of
        :data:`models.scorers.SCORERS` (``oracle`` only when given) and the fold's band
        thresholds (``yellow_at``, ``red_at``).
    metrics
        One row per (``fold``, ``lead_days``, ``segment``, ``scorer``); ``fold`` and
        ``segment`` are "all" and ``lead_days`` is missing (<NA>) for the pooled rows, which
        also carry ``<metric>_lo``/``<metric>_hi`` for :data:`INTERVAL_METRICS`.
    folds
        One row per fold used: its rows and outcomes, and what the procedure chose there.
    plan
        The fold plan: its kind (out of time, or held-out accounts) and the skipped cut-offs.
    rows_used
        Per fold, the index labels (rows of the labelled frame, numbered from 0) of every row
        the fold's procedure read.
    """

    scores: pd.DataFrame
    metrics: pd.DataFrame
    folds: pd.DataFrame
    plan: FoldPlan
    rows_used: dict[str, pd.Index]

    def pooled(self, per_fold: bool = False) -> pd.DataFrame:
        """The metrics rows over every lead time and segment: pooled over the folds too
        (one row per scorer), or ``per_fold`` (one row per fold and scorer)."""
        return pooled_rows(self.metrics, per_fold)

    @property
    def kind(self) -> str:
        """``"out_of_time"`` or ``"cross_fitted"`` (held-out accounts)."""
        return self.plan.kind

    def summary(self, scorer: str = "model") -> dict[str, float]:
        """Pooled metrics of one scorer over all folds, lead times and segments."""
        t = self.pooled()
        row = t[t.scorer == scorer]
        if row.empty:
            raise KeyError(f"no scorer {scorer!r}; have {sorted(t.scorer.unique())}")
        values = row.iloc[0].drop(["fold", "lead_days", "segment", "scorer"])
        return {str(k): float(v) for k, v in values.items()}

    def interval(self, scorer: str, metric: str) -> Interval:
        """A pooled metric with its bootstrap interval."""
        s = self.summary(scorer)
        level = float(self.metrics.attrs.get("interval_level", 0.95))
        return Interval(s[metric], s.get(f"{metric}_lo", np.nan), s.get(f"{metric}_hi", np.nan),
                        level)  # fmt: skip


def pooled_rows(metrics: pd.DataFrame, per_fold: bool = False) -> pd.DataFrame:
    """Rows of a metrics table (:attr:`BacktestResult.metrics`) over every lead time and
    segment: the one pooled over the folds, or each fold's (``per_fold``)."""
    t = metrics
    folds = t.fold != ALL if per_fold else t.fold == ALL
    return t[folds & t.lead_days.isna() & (t.segment == ALL)]


def backtest(
    frame: pd.DataFrame,
    features: Sequence[Feature],
    cfg: ModelConfig,
    bands: BandConfig | None = None,
    *,
    oracle: npt.ArrayLike | None = None,
    plan: FoldPlan | None = None,
    num_threads: int = 1,
    progress: Progress = None,
) -> BacktestResult:
    """Replay the training procedure at every fold and score the fold's later rows.

    Parameters
    ----------
    frame, features
        The training set's frame and declared features; unlabelled rows are ignored.
    cfg, bands
        The procedure's settings (``cfg.backtest_trials`` trials per fold) and how band
        thresholds are chosen.
    oracle
        True churn probabilities aligned with the rows of ``frame`` (simulations only);
        scored as the ``oracle`` column.
    plan
        Folds over the labelled rows of ``frame`` (numbered from 0), e.g. a challenger's, to
        score another configuration on identical rows; default: :func:`models.folds.plan_folds`.

    Raises :class:`models.folds.TooFewLabels` when the history holds too few outcomes.
    """
    check_training_frame(frame, features)
    bands = bands or BandConfig()
    frame = frame.assign(oracle=np.asarray(oracle, float)) if oracle is not None else frame
    frame = frame.loc[frame["label"].notna()].reset_index(drop=True)
    require_outcomes(frame, cfg.min_churned, cfg.min_retained)
    if plan is None:
        plan = plan_folds(
            frame, cfg.backtest_folds, cfg.backtest_step_days, cfg.purge_days,
            min_churned=cfg.min_churned, min_retained=cfg.min_retained, cv_folds=cfg.cv_folds,
            seed=cfg.seed,
        )  # fmt: skip
    ids = outcome_ids(frame)
    parts, info, used = [], [], {}
    warm: Mapping[str, Any] | None = None
    for i, fold in enumerate(plan.folds):
        n = len(plan.folds)
        step = part(progress, 0.95 * i / n, 0.95 * (i + 1) / n, f"backtest {i + 1}/{n}")
        train, valid = frame.loc[fold.train], frame.loc[fold.valid]
        trained = train_procedure(
            train, features, cfg, bands, trials=cfg.backtest_trials, warm_start=warm,
            num_threads=num_threads, progress=step,
        )  # fmt: skip
        warm = trained.tuned.params
        used[fold.name] = trained.rows_used
        parts.append(_fold_scores(fold, train, valid, features, trained, oracle is not None))
        info.append(_fold_record(frame, ids, fold, trained))
    scores = pd.concat(parts, ignore_index=True)
    if progress is not None:
        progress("backtest metrics", 0.97)
    scorers = [s.name for s in scorers_in(scores.columns)]
    return BacktestResult(
        scores=scores,
        metrics=metrics_table(scores, scorers, cfg),
        folds=pd.DataFrame(info),
        plan=plan,
        rows_used=used,
    )


def _fold_scores(
    fold: Fold,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    features: Sequence[Feature],
    trained: Trained,
    with_oracle: bool,
) -> pd.DataFrame:
    """The fold's validation rows scored by every scorer: the fold's model, each baseline
    fitted on the fold's training rows, and the oracle when given."""
    yellow, red = trained.thresholds
    out = valid[[c for c in KEYS if c in valid.columns]].assign(
        fold=fold.name, row=valid.index, model=trained.model.predict_risk(valid),
        yellow_at=yellow, red_at=red,
    )  # fmt: skip
    for b in BASELINES.values():
        out[b.name] = b.make().fit(train, features).predict_risk(valid)
    if with_oracle:
        out["oracle"] = valid["oracle"].to_numpy()
    return out


def _fold_record(
    frame: pd.DataFrame, ids: np.ndarray, fold: Fold, trained: Trained
) -> dict[str, Any]:
    """One row of :attr:`BacktestResult.folds`: the fold's rows and outcomes, and what the
    procedure chose there."""
    train, valid = frame.loc[fold.train], frame.loc[fold.valid]
    fit_out, val_out = (count_outcomes(frame, mask, ids) for mask in (fold.train, fold.valid))
    return {
        "fold": fold.name, "kind": fold.kind, "cutoff": fold.cutoff, "until": fold.until,
        "train_rows": int(fold.train.sum()), "train_churned": fit_out.churned,
        "train_retained": fit_out.retained,
        "first_training_outcome": train["label_known_at"].min(),
        "last_training_outcome": train["label_known_at"].max(),
        "valid_rows": int(fold.valid.sum()), "valid_churned": val_out.churned,
        "valid_retained": val_out.retained,
        "valid_churn_rate": float(valid["label"].mean()),
        **{k: v for k, v in trained.choices.items() if k != "params"},
        "params": json.dumps(trained.choices["params"], sort_keys=True),
    }  # fmt: skip


def bands_of(scorer: str, rows: pd.DataFrame) -> np.ndarray:
    """Red/yellow/green of a scorer on scored rows: the health-score bands for the 0-100
    scores, else the thresholds the row's fold chose (``yellow_at``, ``red_at``)."""
    risk = rows[scorer].to_numpy(float)
    if declared(scorer).health_scale:
        return health_band(100.0 * (1.0 - risk))
    yellow = rows["yellow_at"].to_numpy(float)
    red = rows["red_at"].to_numpy(float)
    return m.band(risk, (yellow, red))  # type: ignore[arg-type]  # arrays broadcast


def _band_stats(
    y: np.ndarray, bands: np.ndarray, arr: np.ndarray
) -> dict[str, Callable[[np.ndarray | None], Any]]:
    """Band metrics as functions of bootstrap weights (``None``: the observed rows)."""
    return {
        "red_share": lambda w: m.band_share(bands, m.RED, w),
        "red_precision": lambda w: m.band_precision(y, bands, m.RED, w),
        "red_recall": lambda w: m.band_recall(y, bands, m.RED, w),
        "yellow_share": lambda w: m.band_share(bands, m.YELLOW, w),
        "yellow_precision": lambda w: m.band_precision(y, bands, m.YELLOW, w),
        "yellow_recall": lambda w: m.band_recall(y, bands, m.YELLOW, w),
        "green_share": lambda w: m.band_share(bands, m.GREEN, w),
        "green_churn_rate": lambda w: m.band_precision(y, bands, m.GREEN, w),
        "watermelon_rate": lambda w: m.watermelon_rate(y, bands, w),
        "red_arr_share": lambda w: m.red_arr_share(y, bands, arr, w),
    }


def metric_stats(
    rows: pd.DataFrame, scorer: str, band_lead: int | None
) -> dict[str, Callable[[np.ndarray | None], Any]]:
    """Every metric of one scorer on one group of scored rows, as a function of bootstrap
    weights over those rows (``None``: the observed rows)."""
    y = rows["label"].to_numpy(float)
    risk = rows[scorer].to_numpy(float)
    prob = declared(scorer).probabilistic
    nan: Callable[[np.ndarray | None], Any] = lambda w: np.nan  # noqa: E731
    stats: dict[str, Callable[[np.ndarray | None], Any]] = {
        "rows": lambda w: float(y.size),
        "churned": lambda w: float(y.sum()),
        "roc_auc": lambda w: m.roc_auc(y, risk, w),
        "pr_auc": lambda w: m.pr_auc(y, risk),
        "brier": (lambda w: m.brier(y, risk, w)) if prob else nan,
        "log_loss": (lambda w: m.log_loss(y, risk)) if prob else nan,
        "ece": (lambda w: m.ece(y, risk, 10, w)) if prob else nan,
        "lift_top_decile": lambda w: m.top_share(y, risk, 0.1, w)[0],
        "recall_top_decile": lambda w: m.top_share(y, risk, 0.1, w)[1],
        **dict.fromkeys(BAND_METRICS, nan),
    }
    if band_lead is not None:
        at = rows["lead_days"].to_numpy() == band_lead
        if at.any():
            arr = rows["arr"].to_numpy(float)[at] if "arr" in rows else np.zeros(int(at.sum()))
            banded = _band_stats(y[at], bands_of(scorer, rows[at]), arr)
            stats |= {name: _on_rows(stat, at) for name, stat in banded.items()}
    return stats


def _on_rows(
    stat: Callable[[np.ndarray | None], Any], at: np.ndarray
) -> Callable[[np.ndarray | None], Any]:
    """``stat`` of a subset of rows, taking weights over all rows."""
    return lambda w: stat(None if w is None else w[:, at])


def group_metrics(rows: pd.DataFrame, scorer: str, band_lead: int | None) -> dict[str, float]:
    """Every metric of one scorer on one group of scored rows (see :func:`metric_stats`)."""
    return {k: float(f(None)) for k, f in metric_stats(rows, scorer, band_lead).items()}


def metrics_table(
    scores: pd.DataFrame, scorers: Sequence[str], cfg: ModelConfig, by: bool = True
) -> pd.DataFrame:
    """Metrics per fold, lead time, segment and scorer, plus the pooled ("all") groups.

    The band metrics read only the snapshots at the lead time nearest
    ``cfg.band_lead_days`` (90 days before renewal by default). The pooled group's
    :data:`INTERVAL_METRICS` get ``cfg.interval_level`` bootstrap intervals resampling
    accounts (``cfg.bootstrap`` replicates).
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
        pooled = fold == ALL and pd.isna(lead) and seg == ALL
        for scorer in scorers:
            record = {"fold": fold, "lead_days": lead, "segment": seg, "scorer": scorer}
            if pooled:
                stats = metric_stats(rows, scorer, lead_for_bands)
                wanted = {k: stats[k] for k in INTERVAL_METRICS}
                ivs = bootstrap_many(
                    wanted, rows["account_id"], n_boot=cfg.bootstrap, level=cfg.interval_level,
                    seed=cfg.seed,
                )  # fmt: skip
                record |= {k: float(f(None)) for k, f in stats.items()}
                for k, iv in ivs.items():
                    record |= {f"{k}_lo": iv.low, f"{k}_hi": iv.high}
            else:
                record |= group_metrics(rows, scorer, lead_for_bands)
            records.append(record)
    table = pd.DataFrame(records)
    table["lead_days"] = table["lead_days"].astype("Int64")
    table.attrs["interval_level"] = cfg.interval_level
    return table


def _split(frame: pd.DataFrame, column: str) -> Iterator[tuple[Any, pd.DataFrame]]:
    """The rows of each value of ``column``, values in sorted order."""
    values = frame[column].to_numpy()
    for key in sorted(pd.unique(values)):
        yield key, frame[values == key]
