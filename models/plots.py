"""Backtest plots as PNG files: calibration, lift, metrics over cut-offs, model vs baselines.

Figures are drawn with matplotlib's object API (``Figure``, no pyplot), which renders with
the Agg canvas and touches no global backend state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from models import metrics as m
from models.backtest import BacktestResult
from models.baselines import Scorer
from models.scorers import scorers_in


def _scorers(result: BacktestResult) -> list[Scorer]:
    """The scorers to draw: the registered ones present in the backtest, in registry order."""
    return scorers_in(result.scores.columns)


def calibration_plot(result: BacktestResult, path: Path) -> Path:
    """Observed churn rate against predicted probability, ten equal-frequency bins."""
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect")
    y = result.scores["label"].to_numpy(float)
    top = 0.0
    for s in _scorers(result):
        if s.probabilistic:
            pred, obs = m.calibration_curve(y, result.scores[s.name].to_numpy(float))
            ax.plot(pred, obs, marker="o", label=s.label)
            top = max(top, pred.max(), obs.max())
    lim = min(1.0, top * 1.1 + 0.02)
    ax.set(xlim=(0, lim), ylim=(0, lim), xlabel="predicted churn probability",
           ylabel="observed churn rate", title="Calibration (all backtest folds)")  # fmt: skip
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def lift_plot(result: BacktestResult, path: Path) -> Path:
    """Cumulative gains: the share of churners in the riskiest x% of snapshots."""
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="random")
    y = result.scores["label"].to_numpy(float)
    for s in _scorers(result):
        shares, found = m.lift_curve(y, result.scores[s.name].to_numpy(float), points=20)
        ax.plot(np.r_[0, shares], np.r_[0, found], label=s.label)
    ax.set(xlabel="share of snapshots, riskiest first", ylabel="share of churners found",
           title="Cumulative gains (all backtest folds)")  # fmt: skip
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def metrics_over_cutoffs_plot(result: BacktestResult, path: Path) -> Path:
    """ROC AUC and Brier score of each scorer at each cut-off."""
    t = result.pooled(per_fold=True)
    fig = Figure(figsize=(10, 4.2))
    axes = fig.subplots(1, 2)
    for s in _scorers(result):
        rows = t[t.scorer == s.name].sort_values("fold")
        axes[0].plot(rows.fold, rows.roc_auc, marker="o", label=s.label)
        if s.probabilistic:
            axes[1].plot(rows.fold, rows.brier, marker="o", label=s.label)
    axes[0].set(title="ROC AUC by cut-off", xlabel="cut-off", ylabel="ROC AUC")
    axes[1].set(title="Brier score by cut-off (lower is better)", xlabel="cut-off")
    axes[0].legend(fontsize=7)
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=30)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def comparison_plot(result: BacktestResult, path: Path) -> Path:
    """Pooled ROC AUC, PR AUC and top-decile recall, the model beside the baselines."""
    t = result.pooled().set_index("scorer")
    scorers = _scorers(result)
    names = ("roc_auc", "pr_auc", "recall_top_decile")
    fig = Figure(figsize=(9, 4.2))
    ax = fig.subplots()
    width = 0.8 / len(scorers)
    for i, s in enumerate(scorers):
        values = t.loc[s.name, list(names)].to_numpy(float)
        ax.bar(np.arange(len(names)) + i * width, values, width, label=s.label)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, ["ROC AUC", "PR AUC",
                                                            "recall, top decile"])  # fmt: skip
    ax.set(ylim=(0, 1), title="Learned model vs baselines (all backtest folds)")
    ax.legend(fontsize=7, loc="upper right")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def save_plots(result: BacktestResult, out_dir: Path) -> list[Path]:
    """Write the four backtest plots into ``out_dir`` (created if needed); return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        calibration_plot(result, out_dir / "calibration.png"),
        lift_plot(result, out_dir / "lift.png"),
        metrics_over_cutoffs_plot(result, out_dir / "metrics_over_cutoffs.png"),
        comparison_plot(result, out_dir / "model_vs_baselines.png"),
    ]
