"""Each distinct query is compiled once (:mod:`features.compiled`), and a remembered query
gives exactly the rows its own compile gives.

The reference is a plain Ibis connection (``ibis.duckdb.connect()``), which compiles every
expression itself. A remembered query is only ever reused for an expression of the same
shape; the risks are a key that misses a difference (wrong SQL reused) and table names put
back in the wrong places, and each test below would catch one of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
import pytest

from features.compiled import ENV, CompiledSql, default_folder, remember_compiled, shape
from features.read import connect


def _write(folder: Path, name: str, xs: list[int], group: list[str]) -> Path:
    path = folder / f"{name}.parquet"
    pd.DataFrame({"x": xs, "g": group}).to_parquet(path, index=False)
    return path


def _query(t: ir.Table, above: int = 1) -> ir.Table:
    """A filter, a window and a group-by: a few dozen nodes."""
    ranked = t.filter(t.x > above).mutate(
        r=ibis.row_number().over(ibis.window(group_by=t.g, order_by=t.x))
    )
    return ranked.group_by("g").aggregate(n=ranked.count(), top=ranked.r.max()).order_by("g")


def _plain(path: Path, build: Callable[[ir.Table], ir.Table] = _query) -> pa.Table:
    """The rows a connection that compiles everything itself gives."""
    con = ibis.duckdb.connect()
    return build(con.read_parquet(path)).to_pyarrow()


def _memo(con: ibis.BaseBackend) -> CompiledSql:
    memo = con.compile
    assert isinstance(memo, CompiledSql)
    return memo


@pytest.fixture
def con(monkeypatch: pytest.MonkeyPatch) -> ibis.BaseBackend:
    """The pipeline's connection, remembering SQL in this process only (the counts below
    would otherwise depend on what other tests left in the run's folder)."""
    monkeypatch.setenv(ENV, "off")
    return connect("duckdb", threads=1)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    a = _write(tmp_path, "a", [1, 2, 3, 4, 5], ["p", "p", "q", "q", "q"])
    b = _write(tmp_path, "b", [3, 4, 5, 6, 7, 8], ["p", "q", "r", "r", "p", "q"])
    return a, b


def test_the_same_query_over_other_files_is_compiled_once_with_its_own_rows(
    files: tuple[Path, Path], con: ibis.BaseBackend
) -> None:
    memo = _memo(con)
    a, b = (con.read_parquet(p) for p in files)
    assert a.get_name() != b.get_name()  # each file has a table of its own, named at random
    got_a, got_b = _query(a).to_pyarrow(), _query(b).to_pyarrow()
    assert (memo.compiled, memo.remembered) == (1, 1)
    assert got_a.equals(_plain(files[0]))
    assert got_b.equals(_plain(files[1]))
    # Hand-computed: b's rows above 1 are all of them; p has 3 and 7, q 4 and 8, r 5 and 6;
    # Ibis numbers rows from 0.
    assert got_b.to_pydict() == {"g": ["p", "q", "r"], "n": [2, 2, 2], "top": [1, 1, 1]}


def test_swapped_tables_get_their_own_names_back(
    files: tuple[Path, Path], con: ibis.BaseBackend
) -> None:
    """``a - b`` and ``b - a`` have the same shape: the second reuses the first's SQL with
    the names put back where each table is read."""
    memo = _memo(con)
    a, b = (con.read_parquet(p).select("x") for p in files)
    a_minus_b = a.difference(b).order_by("x").to_pyarrow()
    b_minus_a = b.difference(a).order_by("x").to_pyarrow()
    assert memo.remembered == 1
    assert a_minus_b.column("x").to_pylist() == [1, 2]
    assert b_minus_a.column("x").to_pylist() == [6, 7, 8]


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(lambda t: _query(t, above=2), id="another literal"),
        pytest.param(lambda t: _query(t.mutate(x=t.x.cast("float64"))), id="another type"),
        pytest.param(lambda t: _query(t.rename(y="x").mutate(x=ibis._.y + 0)), id="more nodes"),
        pytest.param(
            lambda t: t.group_by("g").aggregate(n=t.count()).order_by(ibis.desc("g")),
            id="another order",
        ),
    ],
)
def test_any_other_argument_is_another_query(
    files: tuple[Path, Path], con: ibis.BaseBackend, other: Callable[[ir.Table], ir.Table]
) -> None:
    memo = _memo(con)
    t = con.read_parquet(files[0])
    first = _query(t).to_pyarrow()
    second = other(t).to_pyarrow()
    assert (memo.compiled, memo.remembered) == (2, 0)
    assert first.equals(_plain(files[0]))
    assert second.equals(_plain(files[0], other))
    assert shape(_query(t).op())[0] != shape(other(t).op())[0]


def test_tables_with_names_of_their_own_are_part_of_the_key(
    files: tuple[Path, Path], con: ibis.BaseBackend
) -> None:
    """A table a user or the pipeline named is not renamed: two of them are two queries."""
    memo = _memo(con)
    for name, path in zip(("first", "second"), files, strict=True):
        con.create_table(name, pd.read_parquet(path))
    one, two = (_query(con.table(n)).to_pyarrow() for n in ("first", "second"))
    assert (memo.compiled, memo.remembered) == (2, 0)
    assert one.equals(_plain(files[0]))
    assert two.equals(_plain(files[1]))


def test_another_process_reads_the_folder_and_a_broken_file_is_compiled_again(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "sql"
    first_con = ibis.duckdb.connect()
    first = remember_compiled(first_con, folder)
    assert _query(first_con.read_parquet(files[0])).to_pyarrow().equals(_plain(files[0]))
    assert (first.compiled, first.remembered) == (1, 0)
    (stored,) = folder.glob("*.json")
    assert "SELECT" in json.loads(stored.read_text())["sql"]
    # A new connection with a memory of its own: the query comes from the folder.
    second_con = ibis.duckdb.connect()
    second = remember_compiled(second_con, folder)
    assert _query(second_con.read_parquet(files[1])).to_pyarrow().equals(_plain(files[1]))
    assert (second.compiled, second.remembered) == (0, 1)
    # A file that is not what was written: compiled again, and rewritten.
    stored.write_text("{not json", encoding="utf-8")
    third_con = ibis.duckdb.connect()
    third = remember_compiled(third_con, folder)
    assert _query(third_con.read_parquet(files[1])).to_pyarrow().equals(_plain(files[1]))
    assert (third.compiled, third.remembered) == (1, 0)
    assert "SELECT" in json.loads(stored.read_text())["sql"]


def test_an_expression_the_key_cannot_spell_is_compiled_every_time(
    con: ibis.BaseBackend,
) -> None:
    """SQL given as text carries its connection: no key, compiled as usual, right rows."""
    memo = _memo(con)
    for n in (1, 1):
        assert con.sql(f"SELECT {n} AS x").to_pyarrow().column("x").to_pylist() == [n]
    assert memo.remembered == 0


def test_the_folder_is_the_setting_or_the_users_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "off")
    assert default_folder() is None
    monkeypatch.setenv(ENV, "/somewhere/sql")
    assert default_folder() == Path("/somewhere/sql")
    monkeypatch.delenv(ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", "/home/u/.cache")
    assert default_folder() == Path("/home/u/.cache/churn-health/sql")


def test_one_accounts_explanation_reuses_anothers_query(
    sim_frames: dict[str, pd.DataFrame], con: ibis.BaseBackend
) -> None:
    """``churn explain`` builds the same query for every account (the accounts are a table,
    not literals): the second account's build compiles nothing, and its rows are the
    whole book's rows of that account."""
    from features.config import FeatureConfig, LabelConfig
    from features.scoring_set import build_scoring_set

    memo = _memo(con)
    tables = {name: con.create_table(name, frame) for name, frame in sim_frames.items()}
    labels, cfg, top = LabelConfig(within_days=3650), FeatureConfig(top_events=1), ("login",)
    last = sim_frames["events"]["ts"].max().date()
    days = [last - timedelta(days=120), last - timedelta(days=30)]
    book = build_scoring_set(tables, days, labels, cfg, top).frame
    some = sorted(set(book["account_id"]))[:2]
    build_scoring_set(tables, days, labels, cfg, top, accounts=some[:1])
    before = memo.compiled
    alone = build_scoring_set(tables, days, labels, cfg, top, accounts=some[1:]).frame
    assert memo.compiled == before
    expected = book[book["account_id"] == some[1]].reset_index(drop=True)
    assert len(expected) == len(days)
    pd.testing.assert_frame_equal(alone, expected, check_categorical=False)


def test_the_next_days_explanation_reuses_the_query_and_reads_more_events_safely(
    sim_frames: dict[str, pd.DataFrame], con: ibis.BaseBackend
) -> None:
    """The first day of events a scoring set reads is rounded down to a multiple of
    ``START_STEP`` days (older events move no feature): an explanation a day later, in the
    same step, compiles nothing, and each gives the whole book's rows of its days."""
    from features.config import FeatureConfig, LabelConfig
    from features.scoring_set import START_STEP, build_scoring_set
    from features.snapshots import day_number
    from features.usage import lookback_days

    memo = _memo(con)
    tables = {name: con.create_table(name, frame) for name, frame in sim_frames.items()}
    labels, cfg, top = LabelConfig(within_days=3650), FeatureConfig(top_events=1), ("login",)
    last = sim_frames["events"]["ts"].max().date() - timedelta(days=40)
    # The first day of a step: the day after stays in it.
    first = last - timedelta(days=(day_number(last) - lookback_days(cfg)) % START_STEP)
    runs = []
    for shift in (0, 1):
        days = [first + timedelta(days=shift + k) for k in (0, 30)]
        book = build_scoring_set(tables, days, labels, cfg, top).frame
        account = sorted(set(book["account_id"]))[0]
        before = memo.compiled
        alone = build_scoring_set(tables, days, labels, cfg, top, accounts=[account]).frame
        runs.append(memo.compiled - before)
        expected = book[book["account_id"] == account].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone, expected, check_categorical=False)
    assert runs == [1, 0], "the first explanation compiles its query, the next day's reuses it"
