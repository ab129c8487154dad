"""Scoring and explaining 100,000 accounts: our path against shap.TreeExplainer.

    python benchmarks/bench_scoring.py --rows 100000 --threads 2

Our path: the calibrated ChurnModel (early-stopped LightGBM with monotone constraints) and
LightGBM's native TreeSHAP (``pred_contrib``) turned into plain-language drivers, i.e. what
``churn score`` runs per batch (``pipelines.scoring.explain_batch``). The reference: a default
LightGBM (500 trees, 31 leaves) explained by ``shap.TreeExplainer``. Both are trained on the
same planted training rows and compared on the same later, held-out rows (ROC AUC), then
timed on ``--rows`` accounts. Prints a Markdown table for ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.columns import matrix
from models.explain import references
from models.metrics import roc_auc
from models.plays import PlayConfig
from models.train import ChurnModel
from pipelines.scoring import explain_batch
from pipelines.scoring_model import ScoringModel
from simulator.synthetic import make_planted

T = TypeVar("T")


def _timed(fn: Callable[[], T], repeat: int = 1) -> tuple[float, T]:
    """The best of ``repeat`` timings of ``fn`` and its last result."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    planted = make_planted(accounts=4000, seed=args.seed)
    frame, features = planted.frame, planted.features
    cut = frame["as_of"].quantile(0.75)
    train = frame[frame["label_known_at"] < cut]
    test = frame[frame["as_of"] >= cut]

    ours = ChurnModel(monotone=True, seed=args.seed, num_threads=args.threads).fit(train, features)
    cats = ours.categories_
    X_train, X_test = matrix(train, features, cats), matrix(test, features, cats)
    default = lgb.LGBMClassifier(
        n_estimators=500, num_leaves=31, random_state=args.seed, n_jobs=args.threads,
        verbose=-1, deterministic=True, force_row_wise=True,
    ).fit(X_train, train["label"].astype(int))  # fmt: skip
    auc_ours = roc_auc(test["label"], ours.predict_risk(test))
    auc_default = roc_auc(test["label"], np.asarray(default.predict_proba(X_test))[:, 1])

    # The accounts to score: test rows resampled to --rows.
    rng = np.random.default_rng(args.seed)
    rows = test.iloc[rng.integers(0, len(test), args.rows)].reset_index(drop=True)
    rows["account_id"] = [f"A-{i:06d}" for i in range(len(rows))]
    X = matrix(rows, features, cats)
    healthy = train["label"] == 0
    sm = ScoringModel(
        model=ours,
        top_events=(),
        context={"references": references(train, features, healthy),
                 "thresholds": {"yellow": 0.1, "red": 0.25}},
        version="bench",
        uri="bench",
    )  # fmt: skip
    t_score, _ = _timed(lambda: ours.predict_risk(rows))
    t_explain, batch = _timed(lambda: explain_batch(rows, sm, PlayConfig()))
    t_native, _ = _timed(
        lambda: ours.booster_.predict(X, pred_contrib=True, num_iteration=ours.n_estimators_)
    )

    import shap

    explainer = shap.TreeExplainer(default.booster_)
    coded = X.apply(lambda c: c.cat.codes.replace(-1, np.nan) if c.dtype == "category" else c)
    sample = min(len(coded), 10_000)  # TreeExplainer is timed on a sample and scaled
    t_shap_sample, _ = _timed(lambda: explainer.shap_values(coded.iloc[:sample].to_numpy(float)))
    t_shap = t_shap_sample * len(coded) / sample

    n = len(rows)
    shape = f"{ours.n_estimators_} / {ours.lgb_params_.get('num_leaves')}"
    table = pd.DataFrame(
        [
            ("our model: trees / leaves", shape),
            ("default LightGBM: trees / leaves", "500 / 31"),
            ("held-out ROC AUC, ours", f"{auc_ours:.4f}"),
            ("held-out ROC AUC, default LightGBM", f"{auc_default:.4f}"),
            ("score only (accounts/s)", f"{n / t_score:,.0f}"),
            ("score + explain + drivers + plays (accounts/s)", f"{n / t_explain:,.0f}"),
            ("our TreeSHAP alone, pred_contrib (s)", f"{t_native:.2f}"),
            ("shap.TreeExplainer on default LightGBM (s, scaled from 10k)", f"{t_shap:.2f}"),
            ("explanation speed-up (TreeExplainer / ours, SHAP alone)",
             f"{t_shap / t_native:.1f}x"),
            ("explanation speed-up (TreeExplainer / our whole explain step)",
             f"{t_shap / t_explain:.1f}x"),
        ],
        columns=["measure", f"{n:,} accounts, {args.threads} threads"],
    )  # fmt: skip
    print("| " + " | ".join(table.columns) + " |\n|---|---|")
    for measure, value in table.itertuples(index=False):
        print(f"| {measure} | {value} |")
    assert len(batch) == n


if __name__ == "__main__":
    main()
