"""Exports as they come, generated: every command ends in exit 0 or 2, never a traceback.

Hypothesis writes corrupted copies of a small simulated world's CSV export: other
delimiters and encodings, a byte-order mark, truncated, empty and header-only files,
duplicated and shuffled rows, empty cells in any column, timestamps far in the future or
past or not timestamps at all, numbers as spreadsheets write them, attribute names taken by
the pipeline, event names that differ in case, unknown accounts and missing tables. Then
``validate``, ``features``, ``score`` (with a model trained on the clean world) and, for a
few cases, ``train`` run through the real command line, in this process. Each must exit 0
or 2; exit 2 prints one "error:" message and no trace; a failed command leaves no output.

``CHURN_FUZZ_EXAMPLES`` sets the number of generated exports (default 6); what they ended
in is tallied by ``pytest --hypothesis-show-statistics``. The examples are derived from the
test's name, so a CI failure reproduces.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from pipelines.cli import main
from simulator import SimConfig, simulate, write_world

EXAMPLES = int(os.environ.get("CHURN_FUZZ_EXAMPLES", "6"))
AS_OF = "2025-06-01"
TABLES = ("accounts", "contracts", "events", "tickets", "surveys", "sentiment", "invoices")
TIMES = {
    "accounts": "created_at",
    "contracts": "end_date",
    "events": "ts",
    "tickets": "created_at",
    "surveys": "ts",
    "sentiment": "ts",
    "invoices": "issued_at",
}
QUICK = {
    "model": {"trials": 1, "backtest_trials": 1, "tune_folds": 2, "backtest_folds": 2,
              "monotone": "on", "num_threads": 1, "bootstrap": 50},
    "scoring": {"waterfalls": 0},
}  # fmt: skip


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def churn(cwd: Path, *args: str) -> tuple[int, str]:
    """Run the ``churn`` command line in this process; its exit code and all it printed."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["churn", *args]
    code = 0
    try:
        with _cwd(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as stop:
        code = int(stop.code or 0)
    finally:
        sys.argv = argv
    return code, out.getvalue() + err.getvalue()


def settings_file(root: Path, store: Path) -> Path:
    path = root / "churn.yaml"
    config = {**QUICK, "tracking": {"uri": f"sqlite:///{store}/mlflow.db"}}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class World(dict[str, pd.DataFrame]):
    """Tables as the CSV cells of an export (every value as text), shown by size alone."""

    def __repr__(self) -> str:
        return f"World({len(self['accounts'])} accounts)"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A 30-account world as an export holds it."""
    out = tmp_path_factory.mktemp("fuzz") / "world"
    write_world(simulate(SimConfig(accounts=30, seed=3)), out, "csv")
    return World(
        {t: pd.read_csv(out / f"{t}.csv", dtype=str, keep_default_na=False) for t in TABLES}
    )


@pytest.fixture(scope="module")
def store(sim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow store whose champion was trained on the clean simulated world."""
    root = tmp_path_factory.mktemp("fuzz-store")
    code, text = churn(root, "train", "--data", str(sim_dir), "--force",
                       "--config", str(settings_file(root, root)))  # fmt: skip
    assert code == 0, text
    return root


# ------------------------------------------------------------------------- corruptions

Op = tuple[Any, ...]
table = st.sampled_from(TABLES)
ops = st.one_of(
    st.tuples(
        st.just("dialect"),
        table,
        st.sampled_from([",", ";", "\t"]),
        st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]),
    ),
    st.tuples(st.just("truncate"), table, st.floats(0.0, 0.999)),
    st.tuples(st.just("empty"), table),
    st.tuples(st.just("header only"), table),
    st.tuples(st.just("duplicate rows"), table, st.integers(1, 5)),
    st.tuples(st.just("shuffle"), table, st.integers(0, 2**16)),
    st.tuples(st.just("empty cells"), table, st.integers(0, 8), st.floats(0.0, 1.0)),
    st.tuples(
        st.just("timestamp"),
        table,
        st.sampled_from(
            [
                "2099-01-01T00:00:00",
                "1900-01-01",
                "9999-12-31",
                "31/12/2024",
                "2024-02-30",
                "yesterday",
                "0",
            ]
        ),
        st.integers(1, 50),
    ),
    st.tuples(st.just("thousands"), st.sampled_from(["1,234.50", "12,5", "1.234,50", "€90"])),
    st.tuples(
        st.just("attribute"),
        st.sampled_from(
            [
                "seats",
                "events_30d",
                "tickets_tier",
                "label",
                "as_of",
                "snapshot_id",
                "status",
                "churned_at",
                "_x",
                "created_at ",
                "Plan",
                "arr",
            ]
        ),
        st.sampled_from(["1", "gold", "2024-01-01", "", "Closed-Lost", "TRUE"]),
    ),
    st.tuples(st.just("event case"), st.sampled_from(["upper", "title", "dash"])),
    st.tuples(st.just("unknown account"), table, st.integers(1, 20)),
    st.tuples(st.just("drop"), table),
)


def _write(frames: dict[str, pd.DataFrame], corruptions: list[Op], out: Path) -> None:
    """The world's CSV files with the corruptions applied, in order."""
    frames = {k: v.copy() for k, v in frames.items()}
    dialect: dict[str, tuple[str, str]] = {}
    raw: dict[str, bytes | None] = {}
    for op in corruptions:
        kind, *args = op
        if kind == "dialect":
            dialect[args[0]] = (args[1], args[2])
        elif kind in ("truncate", "empty", "header only", "drop"):
            raw[args[0]] = None  # applied to the bytes below
        elif kind == "duplicate rows":
            f = frames[args[0]]
            frames[args[0]] = pd.concat([f, f.head(args[1])], ignore_index=True)
        elif kind == "shuffle":
            frames[args[0]] = frames[args[0]].sample(frac=1.0, random_state=args[1])
        elif kind == "empty cells":
            f = frames[args[0]]
            col = f.columns[args[1] % len(f.columns)]
            f.loc[f.index[: int(len(f) * args[2])], col] = ""
        elif kind == "timestamp":
            f = frames[args[0]]
            f.loc[f.index[: args[2]], TIMES[args[0]]] = args[1]
        elif kind == "thousands":
            c = frames["contracts"]
            c["arr"] = [args[0]] * min(3, len(c)) + list(c["arr"].iloc[3:])
        elif kind == "attribute":
            frames["accounts"][args[0]] = args[1]
        elif kind == "event case":
            e = frames["events"]
            change = {"upper": str.upper, "title": str.title, "dash": lambda s: s.replace("_", "-")}
            half = e.index[::2]
            e.loc[half, "event"] = e.loc[half, "event"].map(change[args[0]])
        elif kind == "unknown account":
            f = frames[args[0]]
            f.loc[f.index[: args[1]], "account_id"] = "NOT-AN-ACCOUNT"
    out.mkdir(parents=True)
    for name, frame in frames.items():
        sep, encoding = dialect.get(name, (",", "utf-8"))
        data = frame.to_csv(index=False, sep=sep).encode(encoding, errors="replace")
        for op in corruptions:
            if op[0] in ("truncate", "empty", "header only", "drop") and op[1] == name:
                if op[0] == "truncate":
                    data = data[: int(len(data) * op[2])]
                elif op[0] == "empty":
                    data = b""
                elif op[0] == "header only":
                    data = data.split(b"\n", 1)[0] + b"\n"
                else:
                    data = None  # type: ignore[assignment]
                    break
        if data is not None:
            (out / f"{name}.csv").write_bytes(data)


def _check(command: str, code: int, text: str, made: list[Path], tally: bool = True) -> None:
    if tally:
        event(f"{command} exit {code}")
    assert code in (0, 2), f"{command} exit {code}:\n{text}"
    assert "Traceback" not in text, text
    if code == 2:
        assert "error:" in text, text
        left = [p for p in made if p.exists()]
        assert not left, f"{command} failed and left {left}"


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # Each example runs four commands (seconds each): no shrinking, the first failure is shown.
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(corruptions=st.lists(ops, min_size=1, max_size=3))
def test_corrupted_exports_exit_0_or_2_and_leave_no_partial_output(
    base: World, store: Path, corruptions: list[Op]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "export"
        _write(base, corruptions, data)
        config = str(settings_file(root, store))
        before = sorted(p.name for p in root.iterdir())
        code, text = churn(root, "validate", "--data", str(data), "--config", config)
        _check("validate", code, text, [])
        feats = root / "features.parquet"
        code, text = churn(root, "features", "--data", str(data), "--as-of", AS_OF, "--out",
                           str(feats), "--within", "400", "--config", config)  # fmt: skip
        _check("features", code, text, [feats, feats.with_suffix(".features.json")])
        scores = root / "scores"
        code, text = churn(root, "score", "--data", str(data), "--as-of", AS_OF, "--out",
                           str(scores), "--within", "400", "--config", config)  # fmt: skip
        _check("score", code, text, [scores])
        made = {p.name for p in root.iterdir()} - set(before)
        promised = {"features.parquet", "features.features.json", "scores", "score-history.parquet"}
        assert made <= promised, made


#: Training is the costly command: one export that trains despite everything (the 2099
#: events are excluded, churned_at is not used, the dialect and encoding are detected), and
#: two that cannot, each with what its message must name.
TRAIN_CASES: list[tuple[list[Op], int, str]] = [
    (
        [
            ("dialect", "events", ";", "cp1252"),
            ("shuffle", "events", 1),
            ("timestamp", "events", "2099-01-01T00:00:00", 3),
            ("duplicate rows", "events", 2),
            ("attribute", "churned_at", "2024-01-01"),
            ("event case", "upper"),
        ],
        0,
        "Registered version 1",
    ),
    ([("header only", "contracts")], 2, "contracts"),
    ([("empty cells", "contracts", 4, 0.5)], 2, "contracts.arr"),
]


@pytest.mark.parametrize(
    ("corruptions", "expected", "says"),
    TRAIN_CASES,
    ids=lambda c: "+".join(o[0] for o in c) if isinstance(c, list) else None,
)
def test_training_on_a_corrupted_export_exits_0_or_2(
    sim_dir: Path, tmp_path: Path, corruptions: list[Op], expected: int, says: str
) -> None:
    """Training on the 120-account world's export (enough outcomes to train), corrupted."""
    empty = {"NaT": "", "None": "", "nan": "", "<NA>": ""}
    world = {
        t: pd.read_parquet(sim_dir / f"{t}.parquet").astype(str).replace(empty) for t in TABLES
    }
    data = tmp_path / "export"
    _write(world, corruptions, data)
    config = str(settings_file(tmp_path, tmp_path))
    code, text = churn(tmp_path, "train", "--data", str(data), "--config", config)
    _check("train", code, text, [], tally=False)
    assert code == expected, text
    assert says in text, text
