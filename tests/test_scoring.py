"""Batch scoring end to end: a model trained on a simulated past scores its future renewals.

The model is trained on what was known before 2025-06-01 and scores the terms renewing in
the 120 days after 2025-07-01, whose outcomes and true reasons the simulator knows.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import quick_config

from features.simulator import SimConfig, simulate, write_world
from features.training import build_training_set
from features.validate import load
from models.bands import assign_bands
from pipelines import stages, training
from pipelines.scoring import CONTRACT_COLUMNS, load_scoring_model, write_scores_dir

AS_OF = date(2025, 7, 1)
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
    return quick_config(tmp_path_factory.mktemp("mlruns"), trials=3)


@pytest.fixture(scope="module")
def trained(world, cfg):  # type: ignore[no-untyped-def]
    data, _ = world
    clean = load(data)
    ts = build_training_set(clean.tables, cfg.labels, cfg.features, cutoff=date(2025, 6, 1))
    return training.train(ts, cfg)


@pytest.fixture(scope="module")
def scored(world, cfg, trained, tmp_path_factory):  # type: ignore[no-untyped-def]
    data, _ = world
    out = tmp_path_factory.mktemp("out") / "scores"
    stages.score(data, AS_OF, out, cfg)
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
    stages.score(data, AS_OF, again, cfg)
    for name in ("scores.parquet", "scores.csv"):
        assert (again / name).read_bytes() == (scored / name).read_bytes(), name


def test_hostile_names_come_out_inert(scored) -> None:  # type: ignore[no-untyped-def]
    html = (scored / "report.html").read_text()
    csv = (scored / "scores.csv").read_text()
    parquet = pd.read_parquet(scored / "scores.parquet")
    names = set(parquet["name"])
    assert {"<script>alert(1)</script>", '=HYPERLINK("x")'} <= names, "both were scored"
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "'=HYPERLINK(" in csv
    cells = pd.read_csv(scored / "scores.csv", dtype=str).stack()
    assert not cells.str.match(r"[=+@\t\r]").any(), "no cell can start a spreadsheet formula"
    assert (cells == '\'=HYPERLINK("x")').sum() >= 1


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


def test_change_since_the_last_run(world, cfg, scored, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, _ = world
    out = tmp_path / "weekly"
    stages.score(data, AS_OF, out, cfg)
    later = stages.score(data, date(2025, 7, 15), out, cfg).scores
    both = later[later["change"] != ""]
    assert len(both) > 10, "accounts scored in both runs report a change"
    assert both["change"].str.contains(r"churn risk \d+% -> \d+% since 2025-07-01").all()
    history = pd.read_parquet(out / "history.parquet")
    assert set(history["as_of"].dt.date) == {AS_OF, date(2025, 7, 15)}


def test_a_model_with_other_features_is_refused(world, cfg, trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, _ = world
    other = cfg.model_copy(
        update={"features": cfg.features.model_copy(update={"windows": (14, 30)})}
    )
    with pytest.raises(ValueError, match="expects features that were not built"):
        stages.score(data, AS_OF, tmp_path / "x", other)


def test_top_driver_matches_the_true_reason(world, cfg, trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, truth = world
    # Renewals of the next 180 days: more churners with one dominant cause to compare.
    wide = cfg.model_copy(update={"labels": cfg.labels.model_copy(update={"within_days": 180})})
    s = stages.score(data, AS_OF, tmp_path / "wide", wide).scores
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
