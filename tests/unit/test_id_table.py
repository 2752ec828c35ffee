"""A model's ids as arrays: every id finds its row, anything else finds none."""

from __future__ import annotations

import numpy as np

from models.id_table import IdTable


def test_each_id_finds_its_row_and_unknown_ids_the_missing_value() -> None:
    table = IdTable(["u10", "u2", "u1", 7])
    assert len(table) == 4 and table.ids.tolist() == ["u10", "u2", "u1", "7"]
    rows = table.rows(["u1", "u2", "u10", "7", "nobody", ""], missing=4)
    assert rows.tolist() == [2, 1, 0, 3, 4, 4] and rows.dtype == np.int64
    assert table.row("u2") == 1 and table.row("u3") is None


def test_an_id_longer_than_any_in_the_table_is_not_cut_into_a_match() -> None:
    table = IdTable(["abc", "abcd"])
    # At the table's width (4) "abcde" reads "abcd": it must still be unknown.
    assert table.rows(["abcde", "abcd", "ab"], missing=-1).tolist() == [-1, 1, -1]


def test_a_table_without_ids_knows_none() -> None:
    assert IdTable([]).rows(["a", "b"], missing=0).tolist() == [0, 0]
    assert IdTable(["a"]).rows([], missing=0).tolist() == []


def test_a_million_ids_cost_bytes_per_character_not_a_python_object_each() -> None:
    table = IdTable(f"u{i}" for i in range(1_000_000))
    # "u999999": 7 characters of 4 bytes, twice (row order, sorted), and a 4-byte row.
    assert table.nbytes() <= 1_000_000 * (2 * 7 * 4 + 4)
    probe = np.random.default_rng(0).integers(0, 1_000_000, 1000)
    assert table.rows([f"u{i}" for i in probe], missing=-1).tolist() == probe.tolist()
