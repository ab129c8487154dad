"""Young books and the flattery of a non-nested backtest, measured on worlds cut in time.

For each world (annual terms with 1, 1.5, 2 and 3 years of history, two years whose first
renewals come one year in, monthly terms, a drifting churn rate) the simulator runs half a
year past the cut date. The data as exported on the cut date (every row dated after it
dropped, later outcomes and answers blanked) is what ``churn train`` sees; the half year
after it is held out. Each code version (this
checkout, and with ``--old-code DIR`` a checkout of the previous code, run alternately in
one invocation) then:

1. runs ``churn train --data <cut world>`` as a user would (its own working directory and
   MLflow store, default settings, 2 threads): exit code and wall time;
2. has its backtest figures read from its MLflow run (ROC AUC of the model and the
   hand-weighted score, with intervals where the code logs them; folds used and skipped);
3. has its registered model score the held-out snapshots (taken in the half year after the
   cut, labels known by its end): the ROC AUC that actually happened, with a bootstrap
   interval resampling accounts.

The flattery of a backtest is its ROC AUC minus the held-out one, on the snapshots 0-90
days before renewal with the held-out rows weighted to the backtest's mix of lead times
(:func:`compare_with_holdout`).

    git worktree add /tmp/old-code 92595e3      # the code before the nested backtest
    python benchmarks/bench_nested.py --old-code /tmp/old-code --json /tmp/nested.json

Run it on an otherwise idle machine: ``churn train`` is given both cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent.parent
#: The held-out period after the cut.
HOLDOUT_DAYS = 182
WORLDS: dict[str, dict[str, Any]] = {
    "annual, 1 year": {"start": date(2024, 1, 1), "cut": date(2025, 1, 1)},
    "annual, 1.5 years": {"start": date(2023, 7, 1), "cut": date(2025, 1, 1)},
    "annual, 2 years": {"start": date(2023, 1, 1), "cut": date(2025, 1, 1)},
    "annual, 2 years, first renewals one year in": {
        "start": date(2023, 1, 1), "cut": date(2025, 1, 1), "preexisting_share": 0.0,
    },
    "annual, 3 years": {"start": date(2022, 1, 1), "cut": date(2025, 1, 1)},
    "monthly, 2 years": {"start": date(2023, 1, 1), "cut": date(2025, 1, 1), "term_months": 1},
    "annual, 3 years, churn drifting": {
        "start": date(2022, 1, 1), "cut": date(2025, 1, 1), "intercept_per_year": 0.45,
    },
}  # fmt: skip
SETTINGS = """\
engine:
  threads: 2
model:
  num_threads: 2
"""
SCORE = """\
import sys, mlflow, numpy as np, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model("models:/churn-health/1").unwrap_python_model().model
frame = pd.read_parquet(sys.argv[2])
np.save(sys.argv[3], model.predict_risk(frame))
"""


def cut_world(tables: dict[str, pd.DataFrame], at: date) -> dict[str, pd.DataFrame]:
    """The tables as exported on ``at``: nothing dated on or after it, later facts blank."""
    t = pd.Timestamp(at, tz="UTC")
    day = pd.Timestamp(at)
    out = {"accounts": tables["accounts"][tables["accounts"]["created_at"] < t]}
    c = tables["contracts"]
    c = c[c["start_date"] < day].copy()
    c.loc[c["end_date"] >= day, "outcome"] = None
    out["contracts"] = c
    for name in ("events", "surveys", "sentiment"):
        out[name] = tables[name][tables[name]["ts"] < t]
    k = tables["tickets"]
    k = k[k["created_at"] < t].copy()
    for col in ("first_response_at", "resolved_at"):
        k[col] = k[col].where(k[col] < t)
    out["tickets"] = k
    i = tables["invoices"]
    i = i[i["issued_at"] < t].copy()
    i["paid_at"] = i["paid_at"].where(i["paid_at"] < t)
    out["invoices"] = i
    return out


def prepare(name: str, spec: dict[str, Any], accounts: int, seed: int, root: Path) -> Path:
    """Simulate the world to half a year past the cut, write the cut data and the held-out
    snapshots (features from the full data: point in time, so as of then)."""
    from features.config import FeatureConfig, LabelConfig
    from features.training import build_training_set
    from features.validate import load
    from simulator import ChurnWeights, SimConfig, World, simulate, write_world

    folder = root / name.replace(" ", "_").replace(",", "").replace(".", "")
    if (folder / "holdout.parquet").is_file():  # kept from an earlier run (--keep)
        return folder
    cut = spec["cut"]
    end = cut + timedelta(days=HOLDOUT_DAYS)
    extra: dict[str, Any] = {k: spec[k] for k in ("term_months", "preexisting_share") if k in spec}
    if "intercept_per_year" in spec:
        extra["churn"] = ChurnWeights(intercept_per_year=spec["intercept_per_year"])
    cfg = SimConfig(accounts=accounts, seed=seed, start=spec["start"], end=end, **extra)
    world = simulate(cfg)
    write_world(world, folder / "full")
    cutted = World(**{**world.__dict__, "tables": cut_world(world.tables, cut)})
    write_world(cutted, folder / "cut")
    ts = build_training_set(load(folder / "full").tables, LabelConfig(), FeatureConfig())
    frame = ts.frame
    held = frame[(frame["as_of"] >= pd.Timestamp(cut, tz="UTC")) & frame["label"].notna()]
    held.reset_index(drop=True).to_parquet(folder / "holdout.parquet")
    return folder


def run_code(code: Path, folder: Path, label: str) -> dict[str, Any]:
    """``churn train`` of one code version on the cut world, and its held-out ROC AUC."""

    work = Path(tempfile.mkdtemp(prefix=f"bench-{label}-"))
    (work / "churn.yaml").write_text(SETTINGS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(code)
    churn = [sys.executable, "-c", "from pipelines.cli import main; main()"]
    t = time.perf_counter()
    done = subprocess.run(
        [*churn, "train", "--data", str(folder / "cut")], cwd=work, env=env,
        capture_output=True, text=True,
    )  # fmt: skip
    out: dict[str, Any] = {"code": label, "exit": done.returncode,
                           "wall_s": round(time.perf_counter() - t, 1)}  # fmt: skip
    if done.returncode != 0:
        out["error"] = done.stderr.strip().splitlines()[-1][:300]
        shutil.rmtree(work)
        return out
    import mlflow

    uri = f"sqlite:///{work}/mlruns/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri)
    (exp,) = [e for e in client.search_experiments() if e.name == "churn-health"]
    (run,) = client.search_runs([exp.experiment_id], max_results=1)
    m, tags = run.data.metrics, run.data.tags
    for key in ("model_roc_auc", "model_roc_auc_lo", "model_roc_auc_hi",
                "health_score_roc_auc", "logistic_roc_auc"):  # fmt: skip
        if f"backtest_{key}" in m:
            out[f"backtest_{key}"] = round(m[f"backtest_{key}"], 4)
    out["evaluation"] = tags.get("evaluation_kind", "out_of_time (old code)")
    out["folds_used"] = tags.get("folds_used", "")
    out["folds_skipped"] = tags.get("folds_skipped", "")
    out["champion"] = tags.get("is_champion")
    preds = work / "preds.npy"
    subprocess.run(
        [sys.executable, "-c", SCORE, uri, str(folder / "holdout.parquet"), str(preds)],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    held = pd.read_parquet(folder / "holdout.parquet").assign(p=np.load(preds))
    bt = pd.read_csv(
        client.download_artifacts(run.info.run_id, "backtest/scores.csv.gz", str(work))
    )
    out |= compare_with_holdout(bt, held)
    shutil.rmtree(work)
    return out


def compare_with_holdout(bt: pd.DataFrame, held: pd.DataFrame) -> dict[str, Any]:
    """The backtest's ROC AUC against the held-out one on the same lead times.

    The held-out half year holds mostly short lead times (a snapshot 180 days before a
    renewal has its label only if the renewal falls in the half year), which are easier to
    rank; the backtest's last folds are cut the same way but its earlier ones are not. So
    both sides keep the snapshots 0-90 days before renewal, and the held-out rows are
    weighted so that each lead time has its share in the backtest.
    """
    from models.metrics import roc_auc
    from models.uncertainty import bootstrap

    out: dict[str, Any] = {}
    y = held["label"].to_numpy(float)
    p = held["p"].to_numpy(float)
    iv = bootstrap(lambda w: roc_auc(y, p, w), held["account_id"], n_boot=500, seed=0)
    out |= {"holdout_rows": len(held), "holdout_churned": int(y.sum()),
            "holdout_roc_auc_all_leads": round(iv.estimate, 4),
            "holdout_mean_p": round(float(p.mean()), 4),
            "holdout_churn_rate": round(float(y.mean()), 4)}  # fmt: skip
    bt = bt[bt["lead_days"] <= 90]
    held = held[held["lead_days"] <= 90]
    share = bt["lead_days"].value_counts(normalize=True)
    have = held["lead_days"].value_counts(normalize=True)
    weight = (held["lead_days"].map(share) / held["lead_days"].map(have)).fillna(0.0)
    y, p, w = held["label"].to_numpy(float), held["p"].to_numpy(float), weight.to_numpy(float)

    def weighted(extra: np.ndarray | None) -> Any:
        return roc_auc(y, p, w if extra is None else extra * w)

    matched = bootstrap(weighted, held["account_id"], n_boot=500, seed=0)
    backtest = roc_auc(bt["label"].to_numpy(float), bt["model"].to_numpy(float))
    out |= {"backtest_roc_auc_lead_0_90": round(float(backtest), 4),
            "holdout_roc_auc_lead_0_90": round(matched.estimate, 4),
            "holdout_roc_auc_lead_0_90_lo": round(matched.low, 4),
            "holdout_roc_auc_lead_0_90_hi": round(matched.high, 4),
            "flattery_lead_0_90": round(float(backtest) - matched.estimate, 4)}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--old-code", type=Path, default=None, help="checkout of the previous code")
    ap.add_argument("--worlds", nargs="*", default=list(WORLDS), help="names from WORLDS")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="keep the worlds here")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-nested-"))
    codes = [("new", HERE)] + ([("old", args.old_code.resolve())] if args.old_code else [])
    results = []
    for i, name in enumerate(args.worlds):
        folder = prepare(name, WORLDS[name], args.accounts, args.seed, root)
        # Alternate which code runs first, so that drift in the machine's speed is shared.
        for label, code in codes if i % 2 == 0 else codes[::-1]:
            r = {"world": name, **run_code(code, folder, label)}
            results.append(r)
            print(json.dumps(r), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
