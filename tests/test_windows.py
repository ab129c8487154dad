"""The range-join event features (:mod:`features.windows`) equal the running-sum ones.

Every column of :func:`features.usage.usage_features` and
:func:`features.usage.concentration_features`, after :func:`features.build.feature_table`'s
fill of the counts and its ``top_user_share_30d``, is compared cell by cell with
:func:`features.windows.event_features` on simulated worlds and on the hand-computed golden
account of ``test_features_golden.py``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import ibis.expr.types as ir
import pandas as pd
import pytest
from conftest import write_tables
from test_features_golden import GOLDEN, golden_tables, with_champion

from features import windows
from features.catalog import zero_when_absent
from features.config import FeatureConfig, LabelConfig
from features.feature_query import _with_ids
from features.snapshots import day_number
from features.training import build_training_set, data_end_day, training_snapshots
from features.usage import (
    common_events,
    concentration_features,
    ratio,
    rollups,
    usage_features,
)
from features.validate import load
from features.windows import event_features


def _finish(snaps: ir.Table, parts: list[ir.Table]) -> pd.DataFrame:
    """The parts joined to the snapshots as ``feature_table`` joins them: counts filled with
    0, ``top_user_share_30d`` from the helpers, which are then dropped."""
    base = snaps.select("snapshot_id")
    for part in parts:
        part = part.rename(_sid="snapshot_id")
        base = base.left_join(part, base.snapshot_id == part._sid).drop("_sid")
    base = base.mutate(
        **{c: base[c].fill_null(0) for c in base.columns if c.startswith(zero_when_absent())}
    )
    base = base.mutate(top_user_share_30d=ratio(base._top_n30, base._n30))
    frame = base.drop("_top_n30", "_n30").to_pyarrow().to_pandas()
    return frame.sort_values("snapshot_id").reset_index(drop=True)


def old_and_new(
    tables: dict[str, ir.Table],
    cfg: FeatureConfig,
    labels: LabelConfig | None = None,
    cutoff_day: int | None = None,
    groups: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both implementations' event features of the training snapshots, by ``snapshot_id``
    (the new one with its per-user part computed in ``groups`` groups of accounts)."""
    ud, ed = rollups(tables["events"], cfg)
    cutoff = cutoff_day or data_end_day(tables, ed)
    snaps = _with_ids(training_snapshots(tables, labels or LabelConfig(), cutoff))
    top = common_events(ed, cfg.top_events, cutoff)
    old = _finish(
        snaps,
        [
            usage_features(ud, ed, snaps, cfg, top),
            concentration_features(ud, snaps, cfg.champion_days),
        ],
    )
    accounts = snaps.account_id.to_pyarrow().to_pylist()
    splits = windows.account_splits(accounts, groups * windows.CHUNK_ROWS)
    new = _finish(snaps, [event_features(ud, ed, snaps, cfg, top, splits=splits)])
    return old, new


def assert_same(old: pd.DataFrame, new: pd.DataFrame) -> None:
    assert sorted(new.columns) == sorted(old.columns)
    assert len(old) > 0
    for col in old.columns:
        pd.testing.assert_series_equal(
            new[col].astype("float64"),
            old[col].astype("float64"),
            check_exact=False,
            rtol=1e-9,
            atol=1e-9,
            obj=col,
        )


def _world(root: Path, **sim: int) -> dict[str, ir.Table]:
    from simulator import SimConfig, simulate, write_world

    out = root / "world"
    write_world(simulate(SimConfig(accounts=120, seed=11, **sim)), out)
    return dict(load(out).tables)


@pytest.fixture(scope="module")
def sparse(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ir.Table]:
    return _world(tmp_path_factory.mktemp("sparse"))


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ir.Table]:
    return _world(tmp_path_factory.mktemp("sessions"), session_events=4)


CONFIGS = {
    "default": FeatureConfig(),
    "other windows": FeatureConfig(windows=(7, 30, 200), champion_days=60),
    "short champion": FeatureConfig(windows=(14,), champion_days=5, key_events=()),
}


@pytest.mark.parametrize("cfg", CONFIGS.values(), ids=CONFIGS.keys())
def test_equal_on_a_sparse_world(sparse: dict[str, ir.Table], cfg: FeatureConfig) -> None:
    assert_same(*old_and_new(sparse, cfg))


@pytest.mark.parametrize("cfg", CONFIGS.values(), ids=CONFIGS.keys())
def test_equal_on_a_world_with_sessions(sessions: dict[str, ir.Table], cfg: FeatureConfig) -> None:
    assert_same(*old_and_new(sessions, cfg))


@pytest.mark.parametrize("cfg", CONFIGS.values(), ids=CONFIGS.keys())
def test_equal_in_groups_of_accounts(sparse: dict[str, ir.Table], cfg: FeatureConfig) -> None:
    """The per-user part computed for three groups of accounts apart (as a large world is)."""
    assert_same(*old_and_new(sparse, cfg, groups=3))


def test_the_build_splits_a_large_world_without_changing_a_value(
    sparse: dict[str, ir.Table], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``build_training_set`` with a group of accounts per 20,000 user-days (every part
    materialised, the per-user one per group) gives the same frame as in one piece."""
    whole = build_training_set(sparse, LabelConfig(), FeatureConfig()).frame
    n = rollups(sparse["events"], FeatureConfig())[0].count().to_pyarrow().as_py()
    monkeypatch.setattr(windows, "CHUNK_ROWS", 20_000)
    assert n > 3 * 20_000
    split = build_training_set(sparse, LabelConfig(), FeatureConfig()).frame
    pd.testing.assert_frame_equal(split, whole, check_exact=False, rtol=1e-12, atol=1e-12)


def _golden(tmp_path: Path, tables: dict[str, pd.DataFrame], cfg: FeatureConfig) -> pd.Series:
    """C1's row (as of 2024-12-02), new implementation, checked against the old one."""
    clean = load(write_tables(tables, tmp_path / "d"))
    labels = LabelConfig(lead_days=(30,))
    old, new = old_and_new(dict(clean.tables), cfg, labels, day_number(date(2025, 6, 1)))
    assert_same(old, new)
    assert len(new) == 2, "one snapshot per decided term (C0, C1)"
    return new.iloc[1]


def test_golden_values(tmp_path: Path) -> None:
    row = _golden(tmp_path, golden_tables(), FeatureConfig(top_events=1))
    names = [n for n in GOLDEN if n in row.index]
    assert len(names) == 33, "every golden event feature but utilisation (seats)"
    for name in names:
        assert row[name] == pytest.approx(GOLDEN[name], abs=1e-9), name


@pytest.mark.parametrize(
    ("user", "day", "champion_days", "expected", "share"),
    [
        ("u5", "2024-05-01", 365, 215, 3 / 4),
        ("u5", "2024-05-01", 180, 1, 3 / 4),
        ("u6", "2024-11-25", 30, 7, 5 / 9),
        ("u6", "2024-11-25", 5, 1, 5 / 9),
    ],
)
def test_golden_champion(
    tmp_path: Path, user: str, day: str, champion_days: int, expected: int, share: float
) -> None:
    """The planted champions of ``test_features_golden.py`` (5 logins of ``user`` on
    ``day``), whose values are computed by hand there."""
    cfg = FeatureConfig(top_events=1, champion_days=champion_days)
    row = _golden(tmp_path, with_champion(user, day), cfg)
    assert row["days_since_champion"] == expected
    assert row["top_user_share_30d"] == pytest.approx(share, abs=1e-12)


def test_no_events_in_the_look_back(tmp_path: Path) -> None:
    """A snapshot whose account was silent for over 180 days: counts 0, ratios missing,
    ``days_since_last_event`` 181, no champion (the golden account's events moved back a
    year)."""
    tables = golden_tables()
    tables["events"] = tables["events"].assign(ts=tables["events"].ts - pd.Timedelta(days=400))
    row = _golden(tmp_path, tables, FeatureConfig(top_events=1, champion_days=30))
    assert row["events_90d"] == 0 and row["active_users_30d"] == 0
    assert row["days_since_last_event"] == 181
    assert pd.isna(row["key_share_30d"]) and pd.isna(row["days_since_champion"])
