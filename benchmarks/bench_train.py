"""Time the nested backtest and the final training procedure on a planted training set (or a
simulated world).

    python benchmarks/bench_train.py --rows 100000 --threads 1 2 --trials 20
    python benchmarks/bench_train.py --world 1000 --threads 2    # the demo world

Prints a Markdown table (for ``benchmarks/README.md``) and, with ``--json``, writes the
figures. Each thread count runs in turn on the same rows; LightGBM is deterministic, so
only the times differ. On a shared 2-core box run it when the machine is otherwise idle,
or the times measure the neighbours.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from models.backtest import backtest
from models.bands import BandConfig
from models.config import ModelConfig
from models.procedure import train_procedure
from simulator.synthetic import make_planted

#: Rows per account of the planted set with the default six lead times (measured).
ROWS_PER_ACCOUNT = 9.4


def planted_set(rows: int, seed: int) -> tuple[Any, Any, Any]:
    """A planted training set of about ``rows`` rows, with its oracle."""
    ps = make_planted(accounts=max(200, round(rows / ROWS_PER_ACCOUNT)), seed=seed)
    return ps.frame, ps.features, ps.frame["oracle"]


def world_set(accounts: int, seed: int) -> tuple[Any, Any, Any]:
    """The training set of a simulated world, with the simulator's true probabilities."""
    from features.config import FeatureConfig, LabelConfig
    from features.training import build_training_set
    from features.validate import load
    from simulator import SimConfig, simulate, write_world

    world = simulate(SimConfig(accounts=accounts, seed=seed))
    with tempfile.TemporaryDirectory() as tmp:
        write_world(world, Path(tmp) / "data", "parquet")
        ts = build_training_set(load(Path(tmp) / "data").tables, LabelConfig(), FeatureConfig())
    truth = world.truth.set_index("contract_id")["true_churn_probability"]
    return ts.frame, ts.features, ts.frame["contract_id"].map(truth)


def run(
    frame: Any, features: Any, oracle: Any, threads: int, trials: int, seed: int,
    backtest_trials: int = 8,
) -> dict:  # fmt: skip
    """The nested backtest, then the procedure on all history, on ``threads`` threads; return
    times and key metrics."""
    cfg = ModelConfig(
        trials=trials, backtest_trials=backtest_trials, seed=seed, num_threads=threads
    )
    out: dict[str, Any] = {"threads": threads, "rows": len(frame), "trials": trials,
                           "backtest_trials": cfg.backtest_trials}  # fmt: skip
    t = time.perf_counter()
    result = backtest(frame, features, cfg, oracle=oracle, num_threads=threads)
    out["backtest_s"] = time.perf_counter() - t
    t = time.perf_counter()
    final = train_procedure(
        frame, features, cfg, BandConfig(), trials=trials,
        warm_start=json.loads(result.folds["params"].iloc[-1]), num_threads=threads,
    )  # fmt: skip
    out["final_s"] = time.perf_counter() - t
    model = final.model
    t = time.perf_counter()
    model.predict_risk(frame)
    out["score_rows_per_s"] = len(frame) / (time.perf_counter() - t)
    out["n_estimators"] = model.n_estimators_
    out["monotone"] = final.monotone
    out["folds"] = result.plan.describe()
    m = result.metrics
    by_lead = m[(m.fold == "all") & (m.segment == "all") & m.lead_days.notna()]
    out["roc_auc_by_lead"] = {
        str(lead): dict(zip(rows.scorer, rows.roc_auc.round(4), strict=True))
        for lead, rows in by_lead.groupby("lead_days")
    }
    for scorer in ("model", "oracle", "logistic", "health_score", "engagement_score"):
        if scorer in result.scores.columns:
            s = result.summary(scorer)
            out[f"{scorer}_roc_auc"] = s["roc_auc"]
            if scorer == "model":
                out["model_ece"], out["model_brier"] = s["ece"], s["brier"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000, help="planted training-set rows")
    ap.add_argument("--world", type=int, default=None, help="simulate N accounts instead")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--backtest-trials", type=int, default=8, help="Optuna trials per fold")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", str(max(args.threads)))
    t = time.perf_counter()
    frame, features, oracle = (
        world_set(args.world, args.seed) if args.world else planted_set(args.rows, args.seed)
    )
    build_s = time.perf_counter() - t
    source = f"simulated world, {args.world} accounts" if args.world else "planted set"
    print(f"{source}: {len(frame):,} rows, {len(features)} features (built in {build_s:.1f} s)\n")
    print("| threads | rows | trials | nested backtest s | final procedure s | score rows/s "
          "| model AUC | oracle AUC | logistic AUC | hand-weighted AUC | ECE |")  # fmt: skip
    print("|---" * 11 + "|")
    rows = []
    for n in args.threads:
        r = run(frame, features, oracle, n, args.trials, args.seed, args.backtest_trials)
        rows.append(r)
        # One line per thread count as soon as it is measured: a long run shows progress.
        print(
            f"| {r['threads']} | {r['rows']:,} | {r['trials']} "
            f"| {r['backtest_s']:.1f} | {r['final_s']:.1f} | {r['score_rows_per_s']:,.0f} "
            f"| {r['model_roc_auc']:.3f} | {r.get('oracle_roc_auc', float('nan')):.3f} "
            f"| {r['logistic_roc_auc']:.3f} | {r['health_score_roc_auc']:.3f} "
            f"| {r['model_ece']:.3f} |",
            flush=True,
        )
    print("\nROC AUC by lead time (days before renewal), last thread count:")
    leads = rows[-1]["roc_auc_by_lead"]
    scorers = list(next(iter(leads.values())))
    print("| lead | " + " | ".join(scorers) + " |")
    print("|---|" + "---|" * len(scorers))
    for lead, aucs in leads.items():
        print(f"| {lead} | " + " | ".join(f"{aucs[s]:.3f}" for s in scorers) + " |")
    if args.json:
        args.json.write_text(json.dumps({"source": source, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
