"""The item id table: dense indices that never move, and the catalogue's facts as columns."""

from __future__ import annotations

import numpy as np

from blending.catalog import ItemInfo, LiveCatalog, StaticCatalog
from blending.items import NO_CATEGORY, ItemTable


def test_ids_keep_their_index_and_lookups_never_add() -> None:
    table = ItemTable()
    assert table.indices(["a", "b", "a"]).tolist() == [0, 1, 0]
    assert table.indices(["c", "b"]).tolist() == [2, 1]
    assert table.lookup(["b", "ghost", "c"]).tolist() == [1, 2]
    assert len(table) == 3 and table.index_of("ghost") is None
    assert table.ids_of(np.array([2, 0])) == ["c", "a"]


def test_the_table_grows_past_its_first_capacity() -> None:
    table = ItemTable()
    ids = [f"i{n}" for n in range(5000)]
    assert table.indices(ids).tolist() == list(range(5000))
    table.set_facts("i4999", known=True, available=False, category="news")
    last = np.array([4999, 0])
    assert table.available(last).tolist() == [False, True]
    assert table.known(last).tolist() == [True, False]
    assert table.categories(last).tolist() == [0, NO_CATEGORY]


def test_a_repeated_id_keeps_its_first_place_and_fixed_lists_are_remembered() -> None:
    table = ItemTable()
    items, keep = table.distinct_indices(["x", "y", "x", "z"])
    assert items.tolist() == [0, 1, 2] and keep is not None and keep.tolist() == [0, 1, 3]
    fixed = ("p", "q")
    first, _ = table.distinct_indices(fixed)
    again, _ = table.distinct_indices(fixed)
    assert again is first and not first.flags.writeable
    assert table.distinct_indices(("p", "q"))[0].tolist() == first.tolist()


def test_catalogues_write_their_facts_into_their_table() -> None:
    static = StaticCatalog({"a": ItemInfo("news"), "b": ItemInfo(None, available=False)})
    at = static.table.lookup(["a", "b"])
    assert static.table.available(at).tolist() == [True, False]
    assert static.table.category_names[static.table.categories(at)[0]] == "news"
    live = LiveCatalog()
    live.apply(1, [("a", ItemInfo("sport"))])
    live.apply(2, [("a", None)])  # deleted: still known, never available
    (a,) = live.table.lookup(["a"])
    assert live.table.known(np.array([a])).tolist() == [True]
    assert live.table.available(np.array([a])).tolist() == [False]
    live.apply(3, [("a", ItemInfo("tech"))])
    assert live.table.available(np.array([a])).tolist() == [True]
