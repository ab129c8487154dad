"""Did the play work, end to end on the simulator, whose plays have known true effects.

The world (1,000 accounts, seed 1, ``docs/simulator.md``, "CS plays and their true
effects") plants four plays: an executive sponsor call (-8 points of churn probability,
less where the probability is already low), a support escalation (-12 points where a
ticket was open), a check-in e-mail (none) and a renewal discount run in the last three
weeks (+5). CSMs give them mostly to risky and large accounts. ``churn train`` measures
them with the model it trains; ``churn plays`` prints the table; the truth gives each
treated renewal's true effect, so the effect on the treated is known exactly.

The assertions hold on this seed for every play: the 90% interval holds the truth, and the
naive 90% interval does not. Over six worlds (seeds 1-5 and 7, each with its own quickly
trained model) the interval held the truth for 21 of 24 play estimates, as 90% intervals
should, and the naive interval for 8 of 24; another seed can fail one assertion here by
chance alone (closing note of issue 17).
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from test_exit_codes import churn, workdir

from simulator import SimConfig, simulate, write_world
from simulator.write import truth_path

PLAYS = ("exec_sponsor", "support", "checkin_email", "renewal_discount")
AS_OF = "2025-10-01"


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory with the world in ``world/`` and a champion trained on it."""
    root = workdir(tmp_path_factory.mktemp("plays"), seed=1)
    write_world(simulate(SimConfig(accounts=1000, seed=1)), root / "world")
    run = churn("train", "--data", "world", "--force", cwd=root)
    assert run.returncode == 0, run.err
    assert "Plays (effect at the next renewal" in run.out
    return root


@pytest.fixture(scope="module")
def measured(planted: Path) -> pd.DataFrame:
    """``churn plays`` table, with the true effect on the treated of each play: the mean of
    the truth's ``effect_<play>`` over the treated renewals the estimate averages over
    (``--units`` says which)."""
    args = ("--out", "plays.csv", "--units", "units.parquet")
    run = churn("plays", "--data", "world", *args, cwd=planted)
    assert run.returncode == 0, run.err
    table = pd.read_csv(planted / "plays.csv").set_index("play")
    units = pd.read_parquet(planted / "units.parquet")
    truth = pd.read_parquet(truth_path(planted / "world")).set_index("contract_id")
    true = {}
    for key in table.index:
        treated = units.loc[(units[f"play__{key}"] == 1) & (units[f"overlap__{key}"] == 1)]
        assert len(treated) == table.loc[key, "treated"]
        true[key] = 100 * truth.loc[treated["contract_id"], f"effect_{key}"].mean()
    return table.assign(true=pd.Series(true))


def store(root: Path) -> str:
    return f"sqlite:///{root}/mlruns/mlflow.db"


def test_each_play_is_recovered_within_its_interval_and_the_naive_figure_is_not(
    measured: pd.DataFrame,
) -> None:
    assert sorted(measured.index) == sorted(PLAYS)
    for key, row in measured.iterrows():
        assert row["status"] == "ok", row["words"]
        assert row["low"] <= row["true"] <= row["high"], (key, row.to_dict())
        assert not row["naive_low"] <= row["true"] <= row["naive_high"], (key, row.to_dict())
    # The biases the naive comparison shows come from who gets a play: upward everywhere.
    assert (measured["naive_points"] > measured["true"]).all()
    # The support escalation cuts churn by about 10 points; compared naively, it hurts.
    assert measured.loc["support", "naive_points"] > 0 > measured.loc["support", "true"]


def test_training_logs_the_plays_and_the_champion_routes_by_them(
    planted: Path, measured: pd.DataFrame
) -> None:
    client = MlflowClient(tracking_uri=store(planted))
    run = client.search_runs([e.experiment_id for e in client.search_experiments()])[0]
    metrics = run.data.metrics
    logged = pd.read_csv(client.download_artifacts(run.info.run_id, "plays/plays.csv"))
    assert sorted(logged["play"]) == sorted(PLAYS)
    for key, row in logged.set_index("play").iterrows():
        # The same model, data and seed: the logged figures are the printed ones.
        assert metrics[f"play_{key}_effect"] == pytest.approx(row["effect_points"])
        assert row["effect_points"] == pytest.approx(measured.loc[key, "effect_points"])
    # The confidence-based estimator replayed on the backtest's folds, logged beside it.
    replay = pd.read_csv(
        client.download_artifacts(run.info.run_id, "backtest/expected_vs_realized.csv")
    )
    assert set(replay["fold"]) == set(run.data.tags["folds_used"].split(", "))
    assert metrics["cbpe_books"] == len(replay)
    assert metrics["cbpe_auc_abs_error"] == pytest.approx(
        (replay["auc"] - replay["auc_realized"]).abs().mean()
    )
    from pipelines.scoring_model import default_model_uri, load_scoring_model

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(store(planted))
    mlflow.set_registry_uri(store(planted))
    try:
        champion = load_scoring_model(default_model_uri("churn-health"))
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
    helping = [m.key for m in champion.plays.measured if m.helps]
    assert helping == [k for k, r in measured.iterrows() if r["high"] < 0]


def test_scores_carry_the_expected_outcome_and_the_report_says_what_worked(planted: Path) -> None:
    run = churn("score", "--data", "world", "--as-of", AS_OF, "--out", "scores", cwd=planted)
    assert run.returncode == 0, run.err
    scores = pd.read_parquet(planted / "scores" / "scores.parquet")
    outlook = json.loads((planted / "scores" / "outlook.json").read_text(encoding="utf-8"))
    expected = outlook["expected"]
    assert expected["accounts"] == len(scores)
    assert expected["churners"]["value"] == pytest.approx(scores["churn_probability"].sum())
    assert 0.5 < expected["auc"]["value"] < 1.0
    # The backtest's record of the estimator travels with the model into the report.
    assert outlook["on_folds"]["books"] >= 2
    page = (planted / "scores" / "report.html").read_text(encoding="utf-8")
    assert 'id="outlook"' in page and 'id="plays"' in page
    assert "Executive sponsor call: renewal odds" in page
