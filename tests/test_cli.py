"""The churn command line: verbs, exit codes and the configuration file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from features.errors import ContractError
from pipelines.config import load_config


def churn(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("churn")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_simulate_writes_the_world_and_its_truth_beside_it(tmp_path: Path) -> None:
    out = tmp_path / "w"
    run = churn("simulate", "--out", str(out), "--accounts", "40", "--seed", "5", "--format", "csv")
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{t}.csv"
        for t in (
            "accounts",
            "contracts",
            "events",
            "tickets",
            "surveys",
            "sentiment",
            "invoices",
            "activities",
        )
    )
    assert (tmp_path / "w-truth.parquet").is_file()
    assert "40 accounts" in run.stdout


def test_features_verb_writes_rows_and_dictionary(sim_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.parquet"
    run = churn(
        "features",
        "--data",
        str(sim_dir),
        "--as-of",
        "2025-06-01",
        "--out",
        str(out),
        "--within",
        "90",
    )
    assert run.returncode == 0, run.stderr
    frame = pd.read_parquet(out)
    assert len(frame) > 0
    days_left = (frame["renewal_date"] - frame["as_of"]).dt.days
    assert days_left.between(1, 90).all(), "only open terms renewing within 90 days"
    decl = json.loads(out.with_suffix(".features.json").read_text())
    names = [d["name"] for d in decl]
    assert {"events_30d", "utilisation_30d", "urgent_open"} <= set(names)
    assert set(names) <= set(frame.columns)
    assert {d["healthy"] for d in decl} <= {"higher", "lower", "none"}


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    run = churn("features", "--data", str(tmp_path), "--as-of", "2025-13-01", "--out", "x.parquet")
    assert run.returncode == 2
    assert "--as-of" in run.stderr


def test_a_bad_config_file_names_the_setting(tmp_path: Path) -> None:
    bad = tmp_path / "churn.yaml"
    bad.write_text("labels:\n  horizon_dayz: 30\n")
    run = churn("validate", "--data", str(tmp_path), "--config", str(bad))
    assert run.returncode == 2
    assert "labels.horizon_dayz" in run.stderr


def test_command_line_overrides_the_file(tmp_path: Path) -> None:
    f = tmp_path / "churn.yaml"
    f.write_text("labels:\n  label: inactivity\n  horizon_days: 30\nfeatures:\n  windows: [14]\n")
    cfg = load_config(f, {"labels": {"horizon_days": 45, "active_days": None}})
    assert cfg.labels.label == "inactivity"
    assert cfg.labels.horizon_days == 45, "the option wins"
    assert cfg.labels.active_days == 90, "an option not given keeps the default"
    assert cfg.features.windows == (14,)
    with pytest.raises(ContractError, match=r"labels\.lead_days"):
        load_config(None, {"labels": {"lead_days": [-5]}})


def test_the_readme_configuration_is_valid_and_complete() -> None:
    """The YAML under "## Configuration" in the README parses, and names every section."""
    import yaml

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    raw = yaml.safe_load(block)
    from pipelines.config import ChurnConfig

    cfg = ChurnConfig.model_validate(raw)
    assert set(raw) == set(ChurnConfig.model_fields), "every top-level section is documented"
    for name, sub in raw.items():
        if isinstance(sub, dict) and name != "plays":
            model = type(getattr(cfg, name))
            assert set(sub) == set(model.model_fields), f"every setting of {name} is documented"
    assert cfg.plays.by_family["depth"].startswith("Key-feature training"), "defaults kept"
    assert cfg == ChurnConfig(), "the documented values are the defaults"


def test_memory_limit_caps_duckdb_and_is_refused_for_spark() -> None:
    """engine.memory_limit reaches DuckDB (512 MB = 512e6 bytes = 488.2 MiB, as DuckDB
    prints it); a malformed size, or the setting on Spark, is a named config error."""
    from pipelines.stages import engine

    con = engine(load_config(None, {"engine": {"memory_limit": "512MB"}}))
    assert con.raw_sql("SELECT current_setting('memory_limit')").fetchone() == ("488.2 MiB",)
    default = engine(load_config(None, {}))  # held: its spill folder lives as long as it
    limit, spill = default.raw_sql(
        "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
    ).fetchone()
    assert limit == "3.0 GiB", "a 4 GiB budget by default, not 80% of RAM"
    assert Path(spill).is_dir() and Path(spill).name.startswith("churn-"), spill
    with pytest.raises(ContractError, match=r"engine\.memory_limit: .*'lots'"):
        load_config(None, {"engine": {"memory_limit": "lots"}})
    with pytest.raises(ContractError, match="memory_limit caps DuckDB only"):
        load_config(None, {"engine": {"name": "spark", "memory_limit": "1GB"}})


def test_the_data_commands_start_without_mlflow_or_lightgbm() -> None:
    """``churn --help``, ``validate`` and ``features`` import no model library: the stages
    that need a model (:mod:`pipelines.model_stages`) load only in the commands that run
    them (on this machine ``churn validate`` of the demo world took 1.3 s against 4.1-4.6 s
    with them loaded)."""
    probe = (
        "import sys, pipelines.cli, pipelines.stages; "
        "print(sorted(m for m in ('mlflow', 'lightgbm', 'sklearn', 'optuna', 'shap', "
        "'matplotlib', 'pipelines.model_stages') if m in sys.modules))"
    )
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "[]"


def test_a_command_leaves_no_temporary_folder_behind(sim_dir: Path, tmp_path: Path) -> None:
    """Each DuckDB connection has a scratch folder (UTF-8 copies, spilled data) in the
    system's temporary folder; it goes when the command exits, although the command skips
    the collector's passes at exit (``pipelines.startup.own_process``)."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    exe = Path(sys.executable).with_name("churn")
    env = {**os.environ, "TMPDIR": str(scratch)}
    ran = subprocess.run([str(exe), "validate", "--data", str(sim_dir)], capture_output=True,
                         text=True, timeout=300, env=env)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert list(scratch.iterdir()) == []
    # The control: a process that skips the exit hooks leaves its connection's folder there.
    control = tmp_path / "control"
    control.mkdir()
    skip = "import os; from features.read import connect; con = connect(); os._exit(0)"
    subprocess.run([sys.executable, "-c", skip], check=True, timeout=300,
                   env={**env, "TMPDIR": str(control)})  # fmt: skip
    assert [p.name[:6] for p in control.iterdir()] == ["churn-"]
