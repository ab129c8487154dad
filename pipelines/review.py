"""Analyses shown by the review notebooks (``notebooks/``), kept here so the notebooks stay small.

Every function takes frames or arrays (a training set's frame, a backtest's metrics or scores
table, SHAP contributions) and returns a new frame or a number; none reads or writes files,
and none mutates its input. Churn rates carry Wilson 95 % intervals, because the cohorts and
deciles of a small book hold a few dozen terms each. The notebooks run in the test suite
(``tests/test_notebooks.py``), which is what tests these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.catalog import Feature
from models.bands import threshold_quality
from models.champion import compare
from models.columns import matrix
from models.explain import contributions, family_contributions
from models.metrics import calibration_curve

LABEL = "label"
#: A decile trend is "clear" when the rank correlation of bin order and churn rate reaches this.
CLEAR_TREND = 0.5


# ---------------------------------------------------------------- churn rates and cohorts


def wilson_interval(
    churned: npt.ArrayLike, rows: npt.ArrayLike, z: float = 1.96
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion ``churned / rows`` (95 % by default).

    Unlike the normal approximation it stays inside [0, 1] and is sensible for small groups
    and rates near 0 (Wilson 1927; the ``method="wilson"`` of statsmodels' ``proportion_confint``).
    """
    k, n = np.asarray(churned, float), np.asarray(rows, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


def churn_rates(frame: pd.DataFrame, by: str | Sequence[str]) -> pd.DataFrame:
    """Churn rate of the labelled rows per group of ``by``: rows, churned, rate, Wilson 95 %.

    Rows without a label (open terms) are left out; groups keep their sorted order and a
    missing group value is a group of its own.
    """
    keys = [by] if isinstance(by, str) else list(by)
    rows = frame.loc[frame[LABEL].notna(), [*keys, LABEL]]
    y = rows[LABEL].astype("float64")
    out = (
        y.groupby([rows[k] for k in keys], observed=True, dropna=False, sort=True)
        .agg(rows="size", churned="sum")
        .reset_index()
    )
    out["churned"] = out["churned"].astype("int64")
    out["churn_rate"] = out["churned"] / out["rows"]
    out["low"], out["high"] = wilson_interval(out["churned"], out["rows"])
    return out


def quarter(dates: pd.Series) -> pd.Series:
    """The quarter of each timestamp as text, e.g. "2024Q3" (missing stays missing)."""
    d = pd.to_datetime(dates, utc=True)
    text = (
        d.dt.year.astype("Int64").astype("str") + "Q" + d.dt.quarter.astype("Int64").astype("str")
    )
    return text.where(d.notna(), None)


# ---------------------------------------------------------------- is a signal monotone?


def decile_churn(frame: pd.DataFrame, feature: str, bins: int = 10) -> pd.DataFrame:
    """Churn rate per quantile bin of one feature, lowest values first.

    Bins are quantiles of the labelled rows' values; tied values stay in one bin, so a
    feature that is mostly zero gets fewer than ``bins`` bins. Rows with no value form a
    last row with ``bin`` missing (e.g. no NPS answer yet): absence is a signal too.
    Columns: ``bin`` (1, 2, ...), ``low`` and ``high`` (the bin's value range), ``rows``,
    ``churned``, ``churn_rate`` and its Wilson interval (``ci_low``, ``ci_high``).
    """
    rows = frame.loc[frame[LABEL].notna(), [feature, LABEL]]
    x = rows[feature].astype("float64")
    codes = pd.qcut(x, bins, labels=False, duplicates="drop")
    binned = rows.assign(bin=(codes + 1).astype("Int64"))
    table = churn_rates(binned, "bin").rename(columns={"low": "ci_low", "high": "ci_high"})
    ranges = x.groupby(binned["bin"], dropna=True).agg(low="min", high="max")
    table = table.merge(ranges, left_on="bin", right_index=True, how="left")
    cols = ["bin", "low", "high", "rows", "churned", "churn_rate", "ci_low", "ci_high"]
    return table[cols].sort_values("bin", na_position="last", kind="stable").reset_index(drop=True)


def trend(table: pd.DataFrame) -> float:
    """Spearman rank correlation of bin order and churn rate (NaN with fewer than 2 bins).

    -1: churn falls steadily as the feature grows (more is healthier); +1: it rises.
    """
    binned = table.dropna(subset=["bin"])
    if len(binned) < 2 or binned["churn_rate"].nunique() < 2:
        return float("nan")
    return float(binned["bin"].astype(float).corr(binned["churn_rate"], method="spearman"))


def signal_table(
    frame: pd.DataFrame, features: Sequence[Feature], bins: int = 10, clear: float = CLEAR_TREND
) -> pd.DataFrame:
    """One row per numeric feature with a declared healthy direction: is its signal monotone,
    and does it point the way the catalog says?

    ``rho`` is :func:`trend` over the feature's bins; ``observed`` is "higher" (more is
    healthier, ``rho <= -clear``), "lower" (``rho >= clear``) or "unclear"; ``agrees``
    compares it with the declared direction (missing when unclear). ``spread`` is the gap
    between the highest and lowest bin churn rate: how much the feature separates.
    """
    records = []
    for f in features:
        if f.categorical or f.healthy == "none" or f.name not in frame:
            continue
        table = decile_churn(frame, f.name, bins)
        rates = table.dropna(subset=["bin"])["churn_rate"]
        rho = trend(table)
        observed = "higher" if rho <= -clear else "lower" if rho >= clear else "unclear"
        records.append(
            {
                "feature": f.name,
                "family": f.family,
                "label": f.label,
                "healthy": f.healthy,
                "bins": int(table["bin"].notna().sum()),
                "rho": rho,
                "spread": float(rates.max() - rates.min()) if len(rates) else float("nan"),
                "observed": observed,
                "agrees": pd.NA if observed == "unclear" else observed == f.healthy,
            }
        )
    out = pd.DataFrame(records)
    out["agrees"] = out["agrees"].astype("boolean")
    return out


# ---------------------------------------------------------------- watermelons


def watermelon_flags(
    frame: pd.DataFrame,
    logins: str = "event_login_30d",
    share: str = "key_share_30d",
    high: float = 0.75,
    low: float = 0.25,
) -> pd.DataFrame:
    """``frame`` with ``high_logins`` and ``low_key_share`` flags: green outside, red inside.

    High logins: at or above the ``high`` quantile of ``logins`` in this frame; low key
    share: at or below the ``low`` quantile of ``share``. The thresholds are relative to the
    rows given (a training set's history, or today's book), and kept in ``frame.attrs``.
    """
    for col in (logins, share):
        if col not in frame:
            raise KeyError(
                f"watermelon_flags: no column {col!r}. Logins are the per-event count of a "
                "common event (event_<name>_30d, present when the event is among the "
                "features.top_events most common ones); pass logins= and share= to use others."
            )
    top, bottom = frame[logins].quantile(high), frame[share].quantile(low)
    out = frame.assign(high_logins=frame[logins] >= top, low_key_share=frame[share] <= bottom)
    out.attrs["watermelon_thresholds"] = {logins: float(top), share: float(bottom)}
    return out


# ---------------------------------------------------------------- backtest tables


def pooled(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per scorer: its metrics pooled over folds, lead times and segments."""
    rows = metrics[(metrics["fold"] == "all") & metrics["lead_days"].isna()
                   & (metrics["segment"] == "all")]  # fmt: skip
    return rows.drop(columns=["fold", "lead_days", "segment"]).set_index("scorer")


def by_lead(metrics: pd.DataFrame, metric: str = "roc_auc") -> pd.DataFrame:
    """``metric`` per lead time (rows, days before renewal) and scorer (columns)."""
    rows = metrics[(metrics["fold"] == "all") & metrics["lead_days"].notna()
                   & (metrics["segment"] == "all")]  # fmt: skip
    table = rows.pivot(index="lead_days", columns="scorer", values=metric)
    table.index = table.index.astype("int64")
    return table


def by_segment(metrics: pd.DataFrame, metric: str = "roc_auc") -> pd.DataFrame:
    """``metric`` per segment (rows) and scorer (columns), pooled over folds and lead times."""
    rows = metrics[(metrics["fold"] == "all") & metrics["lead_days"].isna()
                   & (metrics["segment"] != "all")]  # fmt: skip
    return rows.pivot(index="segment", columns="scorer", values=metric)


def paired_auc_difference(
    scores: pd.DataFrame,
    a: str,
    b: str,
    cluster: str = "account_id",
    n_boot: int = 500,
    seed: int = 0,
) -> dict[str, float]:
    """ROC AUC of scorer ``a`` minus that of ``b`` on the same rows, with a 95 % interval.

    The interval is a percentile bootstrap that resamples whole accounts (``cluster``), since
    the snapshots of one account at several lead times are not independent: the champion
    gate's own paired comparison (:func:`models.champion.compare`).
    """
    rows = scores.dropna(subset=[LABEL, a, b]).reset_index(drop=True)
    comp = compare(
        f"{a} vs {b}", rows[LABEL], rows[a], rows[b], rows[cluster], probabilities=False,
        n_boot=n_boot, seed=seed,
    )  # fmt: skip
    return {"difference": comp.auc.estimate, "low": comp.auc.low, "high": comp.auc.high}


def calibration_table(y: npt.ArrayLike, p: npt.ArrayLike, bins: int = 10) -> pd.DataFrame:
    """Mean predicted probability and observed churn rate per equal-frequency bin."""
    predicted, observed = calibration_curve(y, p, bins)
    return pd.DataFrame({"predicted": predicted, "observed": observed})


def threshold_tradeoffs(
    p: npt.ArrayLike, y: npt.ArrayLike, thresholds: npt.ArrayLike
) -> pd.DataFrame:
    """Precision, recall and share flagged of "churn probability >= t" for each threshold."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    rows = [threshold_quality(p, y, float(t), float(t)).iloc[0] for t in np.asarray(thresholds)]
    return pd.DataFrame(rows).drop(columns="band").reset_index(drop=True)


# ---------------------------------------------------------------- SHAP summary


def model_contributions(model: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """TreeSHAP contributions (log-odds) of a fitted ``ChurnModel`` for the rows of ``frame``."""
    X = matrix(frame, model.features_, model.categories_)
    return contributions(model.booster_, X, model.n_estimators_)


def family_importance(contrib: pd.DataFrame, features: Sequence[Feature]) -> pd.DataFrame:
    """Mean |contribution| per feature family, largest first, and its share of the total.

    ``mean`` keeps the sign: > 0 means the family raises risk on average over these rows.
    """
    fam = family_contributions(contrib, features)
    out = pd.DataFrame({"mean_abs": fam.abs().mean(), "mean": fam.mean()})
    out["share"] = out["mean_abs"] / out["mean_abs"].sum()
    out.index.name = "family"
    return out.sort_values("mean_abs", ascending=False)
