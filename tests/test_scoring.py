"""Batch scoring end to end: a model trained on a simulated past scores its future renewals.

The model is trained on what was known before 2025-06-01 and scores the terms renewing in
the 120 days after 2025-07-01, whose outcomes and true reasons the simulator knows.
"""

from __future__ import annotations

import html
import json
import re
from datetime import date
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import quick_config

from features.training import build_training_set
from features.validate import load
from models.bands import assign_bands
from models.explain import FAMILY_NAMES
from models.train import ChurnModel
from pipelines import model_stages, training
from pipelines.config import ChurnConfig
from pipelines.report import BACKTEST_FIGURES
from pipelines.scores_dir import CONTRACT_COLUMNS, write_scores_dir
from pipelines.scoring_model import load_scoring_model
from simulator import SimConfig, simulate, write_world

AS_OF = date(2025, 7, 1)
#: The next run, two weeks later: most renewals of the first are still open.
LATER = date(2025, 7, 15)
#: The simulator's true reasons and the driver families that observe each of them. Its
#: "low key usage" is key events per seat, i.e. depth (key events per user) times breadth
#: (users per seat); a departed champion made most key events, so depth drops with him.
REASON_FAMILY = {
    "low_key_usage": {"depth", "breadth"},
    "watermelon": {"depth"},
    "low_utilisation": {"breadth"},
    "champion_left": {"concentration", "depth"},
    "support_pain": {"support"},
    "overdue_invoices": {"billing"},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("scoring") / "world"
    sim = simulate(SimConfig(accounts=500, seed=21))
    accounts = sim.tables["accounts"].copy()
    # Hostile names: they must come out inert in the report and the CSV.
    # One account in ten of each, so that both are among the renewals scored.
    accounts.loc[accounts.index[::10], "name"] = "<script>alert(1)</script>"
    accounts.loc[accounts.index[1::10], "name"] = '=HYPERLINK("x")'
    tables = {**sim.tables, "accounts": accounts}
    write_world(type(sim)(**{**sim.__dict__, "tables": tables}), out)
    return out, sim.truth


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    store = tmp_path_factory.mktemp("mlruns")
    # The score history out of the working directory; tests that read it set their own.
    return quick_config(store, trials=3, scoring={"history": str(store / "history.parquet")})


def with_history(cfg: ChurnConfig, path: Path) -> ChurnConfig:
    """``cfg`` keeping its score history in ``path``."""
    return cfg.model_copy(update={"scoring": cfg.scoring.model_copy(update={"history": path})})


def moved(after: pd.Series, before: pd.Series) -> str:
    """The families named for a move from the history row ``before`` to ``after``: the two
    whose contributions (``fam_<family>``, missing = 0) moved most, if by more than 0.05."""
    fams = [c for c in after.index if c.startswith("fam_")]
    delta = {c: np.nan_to_num(after[c]) - np.nan_to_num(before.get(c, 0.0)) for c in fams}
    top = sorted(delta.items(), key=lambda kv: -abs(kv[1]))[:2]
    parts = [
        f"{FAMILY_NAMES[c.removeprefix('fam_')]} {'raised' if d > 0 else 'lowered'} risk"
        for c, d in top
        if abs(d) > 0.05
    ]
    return ": " + ", ".join(parts) if parts else ""


def points(before: float, after: float) -> str:
    return f"{round(after * 100) - round(before * 100):+d} pts"


@pytest.fixture(scope="module")
def trained(world, cfg):  # type: ignore[no-untyped-def]
    data, _ = world
    clean = load(data)
    ts = build_training_set(clean.tables, cfg.labels, cfg.features, cutoff=date(2025, 6, 1))
    # Forced: these tests score with the champion, and the gate is tested on its own
    # (tests/test_training_pipeline.py); a 500-account world need not beat the baselines.
    return training.run_training(ts, cfg, force=True)


@pytest.fixture(scope="module")
def scored(world, cfg, trained, tmp_path_factory):  # type: ignore[no-untyped-def]
    data, _ = world
    out = tmp_path_factory.mktemp("out") / "scores"
    model_stages.score(data, AS_OF, out, cfg)
    return out


def test_scores_file_has_the_contract_columns_and_types(scored, trained) -> None:  # type: ignore[no-untyped-def]
    s = pd.read_parquet(scored / "scores.parquet")
    assert tuple(s.columns[: len(CONTRACT_COLUMNS)]) == CONTRACT_COLUMNS
    assert len(s) > 20
    assert s["churn_probability"].between(0, 1).all()
    assert (s["health_score"] == np.rint(100 * (1 - s["churn_probability"]))).all()
    assert set(s["band"]) <= {"green", "yellow", "red"}
    assert (s["as_of"] == pd.Timestamp(AS_OF, tz="UTC")).all()
    days = (s["renewal_date"] - s["as_of"]).dt.days
    assert days.between(1, 120).all(), "only terms renewing within 120 days"
    assert (s["model_version"] == trained.version).all()
    assert s["drivers"].str.len().gt(0).all() and s["play"].str.len().gt(0).all()
    assert s["priority"].is_monotonic_decreasing
    for col in ("name", "segment", "csm"):
        assert s[col].notna().all()
    csv = pd.read_csv(scored / "scores.csv")
    assert list(csv.columns) == list(s.columns)


def test_the_report_says_what_the_training_run_measured(scored, trained) -> None:  # type: ignore[no-untyped-def]
    """The report of a real training and scoring run: every card in words, with intervals."""
    page = (scored / "report.html").read_text(encoding="utf-8")
    quality = page[page.index('id="quality"') : page.index('id="drift"')]
    context = load_scoring_model(trained.model_uri).context
    cards = re.findall(r'data-figure="([a-z_]+)"><div class="card-label">([^<]+)<', quality)
    assert [k for k, _ in cards] == [k for k in BACKTEST_FIGURES if k in context["backtest"]]
    assert len(cards) == len(BACKTEST_FIGURES) == 8
    for key, label in cards:
        assert label == BACKTEST_FIGURES[key][0]
    assert not re.search(r'card-label">[a-z0-9]+_[a-z0-9_]+<', page), "a raw key is shown"
    assert f"{trained.metrics['roc_auc']:.3f}" in quality
    assert quality.count("95% interval:") >= 6
    assert html.escape(context["evaluation"]["statement"]) in quality
    assert trained.evaluation["statement"] == context["evaluation"]["statement"]
    for band in ("red", "yellow", "green"):
        assert f'<span class="badge badge-{band}">' in quality


def test_bands_follow_the_thresholds(scored, trained) -> None:  # type: ignore[no-untyped-def]
    sm = load_scoring_model(trained.model_uri)
    th = sm.context["thresholds"]
    s = pd.read_parquet(scored / "scores.parquet")
    expected = assign_bands(s["churn_probability"].to_numpy(), None, (th["yellow"], th["red"]))
    assert (s["band"].to_numpy() == expected).all()
    assert 0 < th["yellow"] < th["red"] < 1


def test_same_inputs_same_bytes(world, cfg, scored, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, _ = world
    again = tmp_path / "again"
    model_stages.score(data, AS_OF, again, cfg)
    for name in ("scores.parquet", "scores.csv"):
        assert (again / name).read_bytes() == (scored / name).read_bytes(), name


def test_hostile_names_come_out_inert(scored) -> None:  # type: ignore[no-untyped-def]
    html = (scored / "report.html").read_text()
    csv = (scored / "scores.csv").read_text()
    parquet = pd.read_parquet(scored / "scores.parquet")
    names = set(parquet["name"])
    assert {"<script>alert(1)</script>", '=HYPERLINK("x")'} <= names, "both were scored"
    assert "<script>alert(1)" not in html
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in html, "escaped in the data"
    assert "'=HYPERLINK(" in csv
    cells = pd.read_csv(scored / "scores.csv", dtype=str).stack()
    assert not cells.str.match(r"[=+@\t\r]").any(), "no cell can start a spreadsheet formula"
    assert (cells == '\'=HYPERLINK("x")').sum() >= 1


def test_a_damaged_score_history_names_the_setting(tmp_path: Path) -> None:
    from features.errors import ContractError
    from pipelines.scores_dir import read_history

    damaged = tmp_path / "score-history.parquet"
    damaged.write_bytes(b"not parquet")
    expected = r"scoring.history: cannot read the score history .*score-history.parquet.*Move"
    with pytest.raises(ContractError, match=expected):
        read_history(damaged)
    assert read_history(tmp_path / "none-yet.parquet") is None


def test_a_crash_mid_write_leaves_the_previous_output(scored, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pipelines.scoring import ScoreOutput

    table = pd.read_parquet(scored / "scores.parquet")
    output = ScoreOutput(table, pd.DataFrame({"a": [1]}), pd.DataFrame({"feature": []}))
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError, match="injected crash"):
        write_scores_dir(fresh, output, "<html></html>", crash_after="scores.csv")
    assert not fresh.exists(), "no partial scores directory"
    assert not list(tmp_path.iterdir()), "no temporary folder left behind"

    existing = tmp_path / "existing"
    write_scores_dir(existing, output, "<html>first</html>")
    with pytest.raises(RuntimeError):
        write_scores_dir(existing, output, "<html>second</html>", crash_after="report.html")
    assert (existing / "report.html").read_text() == "<html>first</html>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]


def test_two_runs_into_two_folders_report_the_change(  # type: ignore[no-untyped-def]
    world, cfg, trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the README tells users to do: ``churn score`` into a new dated folder each run.
    The history is found in its default place, the working directory."""
    from typer.testing import CliRunner

    from pipelines.cli import app

    data, _ = world
    monkeypatch.chdir(tmp_path)
    # No scoring.history: the default.
    config = {"tracking": {"uri": cfg.tracking.uri}, "scoring": {"waterfalls": 5}}
    (tmp_path / "churn.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")

    def churn_score(day: date, out: str) -> pd.DataFrame:
        args = ["score", "--data", str(data), "--as-of", str(day), "--out", out]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return pd.read_parquet(tmp_path / out / "scores.parquet").set_index("account_id")

    first = churn_score(AS_OF, f"scores/{AS_OF}")
    second = churn_score(LATER, f"scores/{LATER}")
    history = pd.read_parquet(tmp_path / "score-history.parquet")
    assert not list((tmp_path / "scores").rglob("*history*")), "the history is not in --out"
    assert set(history["as_of"].dt.date) == {AS_OF, LATER}
    assert (history["model_version"] == trained.version).all()
    assert (history["model_uri"] == f"models:/{cfg.tracking.registered_model}@champion").all()
    sm = load_scoring_model(trained.model_uri)
    assert {f"feat_{f.name}" for f in sm.features} <= set(history.columns), "the model's inputs"
    assert {f"fam_{f.family}" for f in sm.features} <= set(history.columns)
    assert (first["change"] == "").all(), "nothing before the first run"

    both = second.index.intersection(first.index)
    assert len(both) > 10, "accounts scored in both runs"
    rows = history.set_index(["account_id", history["as_of"].dt.date])
    for acc in both:
        was, now = first.loc[acc, "churn_probability"], second.loc[acc, "churn_probability"]
        families = moved(rows.loc[(acc, LATER)], rows.loc[(acc, AS_OF)])
        assert second.loc[acc, "change"] == (
            f"churn risk {was:.0%} -> {now:.0%} since {AS_OF}{families}"
        ), acc
    assert (second.loc[second.index.difference(first.index), "change"] == "").all()
    assert second["change"].str.contains("raised risk|lowered risk").sum() > 5

    # Scoring the same date again replaces its rows; only earlier dates count as previous.
    again = churn_score(LATER, f"scores/{LATER}-again")
    assert again["change"].to_dict() == second["change"].to_dict()
    assert len(pd.read_parquet(tmp_path / "score-history.parquet")) == len(history)


def test_a_failed_run_leaves_the_history_untouched(world, cfg, trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, _ = world
    history = tmp_path / "history.parquet"
    run = with_history(cfg, history)
    model_stages.score(data, AS_OF, tmp_path / "a", run)
    before = history.read_bytes()
    with pytest.raises(RuntimeError, match="injected crash"):
        model_stages.score(data, LATER, tmp_path / "b", run, crash_after="scores.csv")
    assert history.read_bytes() == before, "the failed run changed the history"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "history.parquet"], (
        "no partial scores directory, no temporary file left"
    )


def test_a_model_with_other_features_is_refused(world, cfg, trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, _ = world
    other = cfg.model_copy(
        update={"features": cfg.features.model_copy(update={"windows": (14, 30)})}
    )
    with pytest.raises(ValueError, match="expects features that were not built"):
        model_stages.score(data, AS_OF, tmp_path / "x", other)


def test_top_driver_matches_the_true_reason(world, cfg, trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, truth = world
    # Renewals of the next 180 days: more churners with one dominant cause to compare.
    wide = cfg.model_copy(update={"labels": cfg.labels.model_copy(update={"within_days": 180})})
    s = model_stages.score(data, AS_OF, tmp_path / "wide", wide).scores
    t = truth.set_index("contract_id")
    contrib = t[[c for c in t.columns if c.startswith("contrib_") and c != "contrib_noise"]]
    positive = contrib.clip(lower=0)
    share = positive.max(axis=1) / positive.sum(axis=1).replace(0, np.nan)
    churned = s[s["contract_id"].map(t["outcome"]) == "churned"].copy()
    churned["reason"] = churned["contract_id"].map(t["dominant_reason"])
    churned["dominance"] = churned["contract_id"].map(share)
    clear = churned[churned["reason"].isin(REASON_FAMILY) & (churned["dominance"] >= 0.5)]
    assert len(clear) >= 8, f"too few churners with one dominant cause: {len(clear)}"
    hits = [
        family in REASON_FAMILY[reason]
        for family, reason in zip(clear["top_driver"], clear["reason"], strict=True)
    ]
    share_hit = float(np.mean(hits))
    print(f"top driver matches the true reason for {share_hit:.0%} of {len(clear)} churners")
    assert share_hit > 0.5


def test_a_previous_score_of_another_model_is_rescored_with_todays(  # type: ignore[no-untyped-def]
    world, cfg, trained, tmp_path: Path
) -> None:
    """The history says an earlier model version scored 2025-07-01. Re-scored with today's
    model, the same values give the same probability, so the whole move is the account's;
    without the values of a feature today's model reads, the move cannot be split."""
    data, _ = world
    history = tmp_path / "history.parquet"
    run = with_history(cfg, history)
    first = model_stages.score(data, AS_OF, tmp_path / "a", run).scores.set_index("account_id")
    recorded = pd.read_parquet(history)
    version = trained.version

    recorded.assign(model_version="0").to_parquet(history, index=False)
    later = model_stages.score(data, LATER, tmp_path / "b", run).scores.set_index("account_id")
    rows = pd.read_parquet(history).set_index(["account_id", "as_of"])
    both = later.index.intersection(first.index)
    assert len(both) > 10
    for acc in both:
        was, now = first.loc[acc, "churn_probability"], later.loc[acc, "churn_probability"]
        families = moved(
            rows.loc[(acc, pd.Timestamp(LATER, tz="UTC"))],
            rows.loc[(acc, pd.Timestamp(AS_OF, tz="UTC"))],
        )
        assert later.loc[acc, "change"] == (
            f"churn risk {was:.0%} -> {now:.0%} since {AS_OF}, with a new model (version 0 -> "
            f"{version}): +0 pts from the model ({was:.0%} -> {was:.0%} on the values of "
            f"{AS_OF}), {points(was, now)} from the account ({was:.0%} -> {now:.0%}){families}"
        ), acc

    # An older model without one of today's features: its rows lack the values to re-score.
    lacking = json.dumps([n for n in json.loads(recorded["model_features"].iloc[0]) if
                          n != "events_30d"])  # fmt: skip
    recorded.drop(columns="feat_events_30d").assign(
        model_version="0", model_features=lacking
    ).to_parquet(history, index=False)
    later = model_stages.score(data, LATER, tmp_path / "c", run).scores.set_index("account_id")
    for acc in both:
        was, now = first.loc[acc, "churn_probability"], later.loc[acc, "churn_probability"]
        assert later.loc[acc, "change"] == (
            f"churn risk {was:.0%} -> {now:.0%} since {AS_OF}, with a new model (version 0 -> "
            f"{version}) whose features differ from the previous model's, so the move cannot "
            "be split into the model's part and the account's"
        ), acc


def test_explain_prints_drivers_play_history_and_writes_a_png(
    world, cfg, trained, scored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from pipelines.cli import app

    data, _ = world
    top = pd.read_parquet(scored / "scores.parquet").iloc[0]  # the highest priority
    monkeypatch.setenv("MLFLOW_TRACKING_URI", cfg.tracking.uri)
    result = CliRunner().invoke(
        app,
        ["explain", top["account_id"], "--data", str(data), "--as-of", str(AS_OF),
         "--model", trained.model_uri, "--out", str(tmp_path)],
        terminal_width=200,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.output
    assert top["account_id"] in out
    assert f"{top['churn_probability']:.1%}" in out
    assert top["play"][:30] in out
    assert "Score history" in out and "2025-06-01" in out, "the month before is re-scored"
    png = tmp_path / f"explain-{top['account_id']}-{AS_OF}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_explain_reads_one_account_and_gives_the_batch_score(  # type: ignore[no-untyped-def]
    world, cfg, trained, scored, tmp_path: Path
) -> None:
    """``churn explain`` builds features for the account alone (all its months in one
    query): its score, drivers and play are the batch's, and its history at the month
    before is that day's whole-book score."""
    data, _ = world
    batch = pd.read_parquet(scored / "scores.parquet").set_index("account_id")
    month_before = model_stages.score(data, date(2025, 6, 1), tmp_path / "june", cfg).scores
    month_before = month_before.set_index("account_id")
    same = ["churn_probability", "health_score", "band", "play", "drivers", "priority"]
    shared = [a for a in batch.index if a in month_before.index]
    assert len(shared) >= 3, "some accounts are scored in both months"
    for acc in [batch.index[0], batch.index[-1], *shared[:2]]:
        e = model_stages.explain_account(data, acc, AS_OF, cfg, trained.model_uri, tmp_path)
        for col in same:
            assert e.row[col] == batch.loc[acc, col], (acc, col)
        june = e.history.set_index(e.history["as_of"].dt.date).loc[date(2025, 6, 1)]
        if acc in month_before.index:
            assert june["churn_probability"] == month_before.loc[acc, "churn_probability"]
            assert june["band"] == month_before.loc[acc, "band"]
        assert e.history["as_of"].is_monotonic_increasing


def _second_version(ts, cfg, trained) -> str:  # type: ignore[no-untyped-def]
    """Another registered version, cheaply: trees fitted directly (another seed and learning
    rate; no backtest), logged with the first run's scoring context. The alias stays."""
    from pipelines.context import CONTEXT_FILE
    from pipelines.tracking import log_churn_model, setup_tracking

    tracking = setup_tracking(cfg.tracking)
    model = ChurnModel(learning_rate=0.1, seed=8, num_threads=1).fit(ts.frame, ts.features)
    context = mlflow.artifacts.load_dict(f"runs:/{trained.run_id}/{CONTEXT_FILE}")
    with mlflow.start_run(experiment_id=tracking.experiment_id):
        info = log_churn_model(model, ts.frame, context, ts.top_events)
        mlflow.log_dict(context, CONTEXT_FILE)
    return str(mlflow.register_model(info.model_uri, cfg.tracking.registered_model).version)


def test_a_model_change_is_split_into_the_models_part_and_the_accounts(  # type: ignore[no-untyped-def]
    world, cfg, trained, tmp_path: Path
) -> None:
    """A second model version (trees fitted with another seed and learning rate) scores the
    next run. The model's part is checked against that model's own score of the first date,
    the account's part and its families against that model's two scores."""
    data, _ = world
    ts = build_training_set(load(data).tables, cfg.labels, cfg.features, cutoff=date(2025, 6, 1))
    name = cfg.tracking.registered_model
    second = _second_version(ts, cfg, trained)
    assert second != trained.version
    old, new = f"models:/{name}/{trained.version}", f"models:/{name}/{second}"

    run = with_history(cfg, tmp_path / "history.parquet")
    first = model_stages.score(data, AS_OF, tmp_path / "a", run, model_uri=old).scores
    later = model_stages.score(data, LATER, tmp_path / "b", run, model_uri=new).scores
    # The new model on the values of AS_OF, computed on its own: its score of AS_OF.
    alone = with_history(cfg, tmp_path / "alone.parquet")
    model_stages.score(data, AS_OF, tmp_path / "c", alone, model_uri=new)
    then_rows = pd.read_parquet(tmp_path / "alone.parquet").set_index("account_id")
    today_rows = pd.read_parquet(tmp_path / "history.parquet")
    today_rows = today_rows[today_rows["as_of"].dt.date == LATER].set_index("account_id")
    first, later = first.set_index("account_id"), later.set_index("account_id")
    both = later.index.intersection(first.index)
    assert len(both) > 10
    moves = []
    for acc in both:
        was, now = first.loc[acc, "churn_probability"], later.loc[acc, "churn_probability"]
        then, today = then_rows.loc[acc], today_rows.loc[acc]
        mid = then["churn_probability"]
        assert later.loc[acc, "change"] == (
            f"churn risk {was:.0%} -> {now:.0%} since {AS_OF}, with a new model (version "
            f"{trained.version} -> {second}): {points(was, mid)} from the model "
            f"({was:.0%} -> {mid:.0%} on the values of {AS_OF}), {points(mid, now)} from the "
            f"account ({mid:.0%} -> {now:.0%}){moved(today, then)}"
        ), acc
        moves.append(round(mid * 100) - round(was * 100))
    assert any(moves), "the second model scores some account differently"
