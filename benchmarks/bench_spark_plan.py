"""Issue 18: Spark's planning time for the scoring features, one expression against parts.

    python benchmarks/bench_spark_plan.py --store /tmp/demo --data /tmp/demo/out/world \\
        --as-of 2026-01-01 --timeout 600

On local Spark (``local[2]``), after the data is read and validated:

* **whole**: the feature expression as one plan (what the Spark path ran before it held its
  parts): the time to analyse it (creating the view), to optimise and plan it
  (``queryExecution().executedPlan()``), and to run it (written to Spark's ``noop``
  sink). Stopped after ``--timeout`` seconds.
* **parts**: what :func:`features.spark.held_on_spark` does: each intermediate table
  analysed, then computed and cached, then the final expression over the held parts
  analysed, planned and run. Per part, the analysis and the run are timed apart.

The SQL text's length is given for each plan (Spark warns when it truncates a plan's
string, around 25,000 characters).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from datetime import date
from pathlib import Path

import ibis
import ibis.expr.types as ir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, required=True, help="where churn demo ran")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--as-of", type=date.fromisoformat, required=True)
    p.add_argument("--timeout", type=float, default=600)
    a = p.parse_args()
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{(a.store / 'mlruns/mlflow.db').resolve()}"

    from pipelines import model_stages, stages
    from pipelines.config import ChurnConfig

    base = ChurnConfig()
    cfg = base.model_copy(update={"engine": base.engine.model_copy(update={"name": "spark"})})
    sm, cfg = model_stages._scoring_model(cfg, None)
    clean = stages.open_clean(a.data, cfg)
    con, session = clean.con, clean.con._session

    from features.scoring_set import scoring_query

    def plan(t: ir.Table, label: str) -> None:
        sql = con.compile(t)
        start = time.perf_counter()
        name = ibis.util.gen_name("plan")
        con.create_view(name, t)
        analysed = time.perf_counter()
        frame = session.table(name)
        frame._jdf.queryExecution().executedPlan()
        planned = time.perf_counter()
        frame.write.format("noop").mode("overwrite").save()  # every row, written nowhere
        ran = time.perf_counter()
        print(f"| {label} | {len(sql):,} | {analysed - start:.1f} | {planned - analysed:.1f} "
              f"| {ran - planned:.1f} |", flush=True)  # fmt: skip

    print("| plan | SQL characters | analysis s | optimisation and planning s | run s |")
    print("|---|---:|---:|---:|---:|")
    whole = scoring_query(clean.tables, a.as_of, cfg.labels, cfg.features, sm.top_events)
    done = threading.Event()

    def watchdog() -> None:
        if not done.wait(a.timeout):
            print(f"| whole | {len(con.compile(whole.expr)):,} | not done after "
                  f"{a.timeout:.0f} s | | |", flush=True)  # fmt: skip
            os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    plan(whole.expr, "whole")
    done.set()

    def hold(t: ir.Table) -> ir.Table:
        sql = con.compile(t)
        start = time.perf_counter()
        con._register_in_memory_tables(t)
        frame = session.sql(sql).cache()
        analysed = time.perf_counter()
        frame.count()
        ran = time.perf_counter()
        name = ibis.util.gen_name("part")
        frame.createOrReplaceTempView(name)
        print(f"| part | {len(sql):,} | {analysed - start:.1f} | | {ran - analysed:.1f} |",
              flush=True)  # fmt: skip
        return con.table(name)

    parts = scoring_query(clean.tables, a.as_of, cfg.labels, cfg.features, sm.top_events, hold)
    plan(parts.expr, "final, over the parts")


if __name__ == "__main__":
    main()
