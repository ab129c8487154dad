"""The data fingerprint: every byte of every input file, and nothing else."""

from __future__ import annotations

import hashlib
import shutil

import pandas as pd
import pytest
from conftest import tiny_tables, write_tables

from features.errors import ContractError
from features.fingerprint import changed_files, data_fingerprint


@pytest.fixture
def folder(tmp_path):
    return write_tables(tiny_tables(), tmp_path / "data")


def test_each_input_file_is_hashed_whole(folder):
    fp = data_fingerprint(folder)
    names = {p.name for p in folder.iterdir()}
    assert set(fp["files"]) == names
    events = folder / "events.parquet"
    assert fp["files"]["events.parquet"] == {
        "bytes": events.stat().st_size,
        "sha256": hashlib.sha256(events.read_bytes()).hexdigest(),
    }


def test_one_byte_at_the_end_of_a_file_changes_the_digest(folder):
    """MLflow's dataset digest reads the first rows; ours reads to the end of each file."""
    before = data_fingerprint(folder)
    tickets = folder / "tickets.parquet"
    raw = bytearray(tickets.read_bytes())
    raw[-1] ^= 1  # the last byte (the Parquet magic): no reader needs to see it to hash rows
    tickets.write_bytes(bytes(raw))
    after = data_fingerprint(folder)
    assert after["digest"] != before["digest"]
    assert changed_files(before, after) == ["tickets.parquet (changed)"]


def test_same_bytes_same_digest_wherever_the_folder_is(folder, tmp_path):
    copy = shutil.copytree(folder, tmp_path / "elsewhere")
    assert data_fingerprint(copy) == data_fingerprint(folder)


def test_other_files_do_not_count_and_missing_or_new_tables_are_named(folder):
    before = data_fingerprint(folder)
    (folder / "notes.txt").write_text("exported by hand")
    assert data_fingerprint(folder) == before
    (folder / "sentiment.parquet").unlink()
    after = data_fingerprint(folder)
    assert changed_files(before, after) == ["sentiment.parquet (missing now)"]
    assert changed_files(after, before) == ["sentiment.parquet (new)"]


def test_a_table_given_as_a_folder_counts_each_part(folder):
    events = pd.read_parquet(folder / "events.parquet")
    (folder / "events.parquet").unlink()
    parts = folder / "events" / "month=1"
    parts.mkdir(parents=True)
    events.iloc[:3].to_parquet(parts / "a.parquet")
    events.iloc[3:].to_parquet(parts / "b.parquet")
    files = data_fingerprint(folder)["files"]
    assert {"events/month=1/a.parquet", "events/month=1/b.parquet"} <= set(files)


def test_a_folder_without_the_required_tables_is_a_user_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ContractError, match="required table"):
        data_fingerprint(tmp_path / "empty")
