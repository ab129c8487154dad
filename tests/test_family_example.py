"""Adding a feature family: a small example, ``meetings``, from an extra table.

What the family needed, all of it in this file:

1. its contract table: one ``TableSpec`` in ``features.contract.TABLES`` (here added for the
   module's tests; a real family adds it to ``features/contract.py`` and to
   ``shared/DATA_CONTRACT.md``);
2. its module: one ``FeatureFamily`` (features, words, play, table, query, zero counts),
   registered with one line (a built-in family names its module in
   ``features.families.BUILT_IN``);
3. its tests.

Nothing else changes: the catalogue, the feature build, the zero-filled counts, the
explanations' words, the plays and the feature dictionary all read the declaration. Before
issue 16 the same family touched five modules in eight places besides its tests:
``features/contract.py`` (the table), ``features/build.py`` (the query, the ``makers`` dict,
the ``ZERO_WHEN_ABSENT`` list), ``features/catalog.py`` (the ``Family`` literal, a block of
``catalog()``), ``models/explain.py`` (``FAMILY_NAMES``) and ``models/plays.py``
(``DEFAULT_PLAYS``).

The world: two accounts with an open term ending 2025-01-01, scored on 2024-12-02 00:00
UTC. M1 met on 2024-11-20 (age 12 days), 2024-10-01 (62) and 2024-12-05 (after the
snapshot: not counted); M2 never met before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import ibis.expr.types as ir
import pandas as pd
import pytest
from conftest import write_tables

from features.asof import SECONDS_PER_DAY, since
from features.catalog import (
    Context,
    Feature,
    FeatureFamily,
    catalog,
    dictionary,
    families,
    register,
    rows,
    unregister,
    windowed,
    zero_when_absent,
)
from features.config import FeatureConfig, LabelConfig
from features.contract import TABLES, ColumnSpec, TableSpec
from features.read import connect
from features.scoring_set import build_scoring_set
from features.validate import load
from models.explain import FAMILY_NAMES
from models.plays import DEFAULT_PLAYS, PlayConfig, choose_play

AS_OF = date(2024, 12, 2)

# ------------------------------------------------------------------ the family's module


def declare(ctx: Context) -> list[Feature]:
    return [
        *windowed("meetings", "meetings", "Meetings held", "meetings", "higher",
                  "meetings with the customer in the last {w} days", (30, 90), "meetings"),
        *rows("meetings", "meetings", (
            ("days_since_meeting", "Days since last meeting", "days", None, "lower",
             "days since the last meeting with the customer"),
        )),
    ]  # fmt: skip


def meeting_features(meetings: ir.Table, snaps: ir.Table) -> ir.Table:
    j = since(meetings, "ts", snaps)
    age = (j.as_of_sec - j._sec) / SECONDS_PER_DAY
    return j.group_by("snapshot_id").aggregate(
        meetings_30d=j._sec.count(where=age <= 30),
        meetings_90d=j._sec.count(where=age <= 90),
        days_since_meeting=(j.as_of_sec.max() - j._sec.max()) / SECONDS_PER_DAY,
    )


MEETINGS = FeatureFamily(
    name="meetings",
    words="meeting cadence",
    play="Book a business review: the customer has stopped meeting us",
    declare=declare,
    table="meetings",
    query=meeting_features,
    zero_when_absent=("meetings_",),
)
MEETINGS_TABLE = TableSpec(
    "meetings",
    (ColumnSpec("account_id", "string", True), ColumnSpec("ts", "timestamp", True)),
    required=False,
    time_column="ts",
)


@pytest.fixture(scope="module", autouse=True)
def registered() -> Iterator[None]:
    TABLES["meetings"] = MEETINGS_TABLE
    register(MEETINGS)
    try:
        yield
    finally:
        unregister("meetings")
        del TABLES["meetings"]


# ------------------------------------------------------------------ the world


def _ts(*values: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), utc=True, format="ISO8601"))


def world() -> dict[str, pd.DataFrame]:
    ids = ["M1", "M2"]
    return {
        "accounts": pd.DataFrame({"account_id": ids, "created_at": _ts(*["2023-01-01"] * 2)}),
        "contracts": pd.DataFrame(
            {
                "contract_id": ["K1", "K2"],
                "account_id": ids,
                "start_date": pd.to_datetime(["2024-01-01"] * 2).date,
                "end_date": pd.to_datetime(["2025-01-01"] * 2).date,
                "arr": 1000.0,
                "outcome": pd.Series([None] * 2, dtype="string"),
            }
        ),
        "events": pd.DataFrame(
            {
                "account_id": [*ids, "M1"],
                "user_id": "u1",
                "ts": _ts(*["2024-11-15T09:00:00"] * 2, "2025-01-15T09:00:00"),
                "event": "login",
            }
        ),
        "meetings": pd.DataFrame(
            {
                "account_id": ["M1", "M1", "M1"],
                "ts": _ts("2024-11-20T00:00:00", "2024-10-01T00:00:00", "2024-12-05T00:00:00"),
            }
        ),
    }


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    data = write_tables(world(), tmp_path_factory.mktemp("meetings") / "data")
    clean = load(data, connect("duckdb", threads=1))
    ts = build_scoring_set(
        clean.tables, AS_OF, LabelConfig(), FeatureConfig(top_events=1), top_events=["login"]
    )
    return ts.frame.set_index("account_id")


# ------------------------------------------------------------------ what the declaration drives


def test_the_build_computes_it_from_its_table_point_in_time(scored: pd.DataFrame) -> None:
    # M1: ages 12 and 62 count (the meeting after the snapshot does not); M2: no row, so
    # the counts are 0 (zero_when_absent) and the days since empty.
    assert scored.loc["M1", ["meetings_30d", "meetings_90d"]].tolist() == [1, 2]
    assert scored.loc["M1", "days_since_meeting"] == pytest.approx(12.0)
    assert scored.loc["M2", ["meetings_30d", "meetings_90d"]].tolist() == [0, 0]
    assert pd.isna(scored.loc["M2", "days_since_meeting"])


def test_catalogue_dictionary_words_and_plays_read_the_declaration() -> None:
    assert families()[-1] is MEETINGS
    names = [f.name for f in catalog(sources=("events", "meetings"))]
    assert names[-3:] == ["meetings_30d", "meetings_90d", "days_since_meeting"]
    assert "meetings_30d" not in [f.name for f in catalog()], "absent table: no features"
    row = dictionary(catalog(sources=("meetings",)))[-1]
    assert row["description"] == "days since the last meeting with the customer"
    assert row["monotone"] == 1
    assert "meetings_" in zero_when_absent()
    assert FAMILY_NAMES["meetings"] == "meeting cadence"
    assert DEFAULT_PLAYS["meetings"] == MEETINGS.play
    cfg = PlayConfig()
    assert choose_play("meetings", "red", cfg) == MEETINGS.play
    assert cfg.texts()["meetings"] == MEETINGS.play


def test_a_family_without_a_play_or_words_is_an_error_where_it_is_declared() -> None:
    with pytest.raises(TypeError, match="play"):
        FeatureFamily(name="silent", words="silence", declare=declare)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"'silent': 'play' is empty"):
        FeatureFamily(name="silent", words="silence", play=" ", declare=declare)
    with pytest.raises(ValueError, match=r"'silent': 'words' is empty"):
        FeatureFamily(name="silent", words="", play="Call them", declare=declare)
    with pytest.raises(ValueError, match="a query needs the table it reads"):
        FeatureFamily(name="silent", words="w", play="p", declare=declare, query=meeting_features)
    with pytest.raises(ValueError, match="registered already"):
        register(MEETINGS)


def test_every_built_in_family_has_words_and_a_play() -> None:
    built_in = [f for f in families() if f is not MEETINGS]
    assert [f.name for f in built_in] == [
        "frequency", "breadth", "depth", "trend", "concentration", "lifecycle", "support",
        "voice", "sentiment", "billing", "activities", "static",
    ]  # fmt: skip
    assert all(FAMILY_NAMES[f.name] and DEFAULT_PLAYS[f.name] for f in built_in)
    by_table = {f.table for f in built_in if f.query is not None}
    assert by_table == {"tickets", "surveys", "sentiment", "invoices", "activities"}


def test_a_path_to_the_family_module_exists_for_each_built_in() -> None:
    import features.families as pkg

    folder = Path(pkg.__file__).parent
    assert sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("__")) == sorted(
        pkg.BUILT_IN
    )


def test_the_readme_lists_the_families_as_declared() -> None:
    from features.families.__main__ import family_table

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    listed = readme.split("<!-- families:start -->\n")[1].split("<!-- families:end -->")[0]
    # This module's own family is registered while it runs; the README lists the built-in.
    lines = family_table().splitlines(keepends=True)
    built_in = "".join(line for line in lines if not line.startswith("| meetings |"))
    assert len(lines) == len(built_in.splitlines()) + 1
    assert listed == built_in, "README is stale: paste `python -m features.families` into it"
