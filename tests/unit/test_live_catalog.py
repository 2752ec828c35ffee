"""The live catalogue in memory: changes applied in order, deleted items kept as
unavailable tombstones, and the recency index staying right as items change."""

from __future__ import annotations

import random

import pytest
from ranked_lists import Lists

import blending.catalog as catalog_module
from blending.catalog import ItemInfo, LiveCatalog
from blending.nodes import apply_filter

NOW = 1_000_000.0


def _dated(published_at: float | None, available: bool = True) -> ItemInfo:
    return ItemInfo("news", available, published_at)


def test_item_info_still_builds_positionally() -> None:
    info = ItemInfo("news", False)
    assert (info.category, info.available, info.published_at) == ("news", False, None)


def test_apply_upserts_and_moves_the_version() -> None:
    catalog = LiveCatalog()
    catalog.apply(2, [("a", ItemInfo("news")), ("b", ItemInfo("sport"))])
    catalog.apply(3, [("a", ItemInfo("tech", published_at=NOW))])
    assert catalog.version == 3 and len(catalog) == 2
    assert catalog.get("a") == ItemInfo("tech", published_at=NOW)
    assert catalog.get("zzz") is None and not catalog.known("zzz")


def test_a_deleted_item_is_an_unavailable_tombstone() -> None:
    catalog = LiveCatalog()
    catalog.apply(1, [("a", ItemInfo("news"))])
    catalog.apply(2, [("a", None), ("never-seen", None)])
    for item in ("a", "never-seen"):
        info = catalog.get(item)
        assert info is not None and not info.available
        assert not catalog.known(item)
    assert len(catalog) == 0


def test_filter_drops_an_item_a_model_returns_after_its_deletion() -> None:
    catalog = LiveCatalog()
    catalog.apply(2, [("a", ItemInfo()), ("b", ItemInfo())])
    catalog.apply(3, [("a", None)])
    lists = Lists(catalog.table)
    candidates = lists.source("m", ("a", 2.0), ("b", 1.0), ("c", 0.5))
    kept = apply_filter(candidates, lists.request(catalog=True))
    assert lists.ids(kept) == ["b", "c"]


def test_an_item_created_again_after_deletion_is_live() -> None:
    catalog = LiveCatalog()
    catalog.apply(1, [("a", _dated(NOW - 5))])
    catalog.apply(2, [("a", None)])
    catalog.apply(3, [("a", _dated(NOW - 1))])
    assert catalog.known("a") and catalog.recent(NOW, 60, 10) == [("a", NOW - 1)]


def test_apply_refuses_an_older_version() -> None:
    catalog = LiveCatalog()
    catalog.apply(5, [])
    with pytest.raises(ValueError, match=">= 5, got 4"):
        catalog.apply(4, [("a", ItemInfo())])
    assert catalog.get("a") is None


def test_recent_is_newest_first_within_the_age_and_limit() -> None:
    catalog = LiveCatalog()
    catalog.apply(
        1,
        [
            ("old", _dated(NOW - 120)),
            ("edge", _dated(NOW - 60)),
            ("mid", _dated(NOW - 30)),
            ("new", _dated(NOW - 1)),
            ("future", _dated(NOW + 10)),
            ("undated", _dated(None)),
            ("hidden", _dated(NOW - 2, available=False)),
        ],
    )
    assert catalog.recent(NOW, 60, 10) == [("new", NOW - 1), ("mid", NOW - 30), ("edge", NOW - 60)]
    assert catalog.recent(NOW, 60, 2) == [("new", NOW - 1), ("mid", NOW - 30)]
    assert catalog.recent(NOW, 10, 10) == [("new", NOW - 1)]
    assert catalog.recent(NOW, 60, 0) == []
    assert catalog.recent(NOW + 10, 5, 10) == [("future", NOW + 10)]


def test_recent_follows_deletions_and_changed_times_and_availability() -> None:
    catalog = LiveCatalog()
    catalog.apply(3, [("a", _dated(NOW - 3)), ("b", _dated(NOW - 2)), ("c", _dated(NOW - 1))])
    catalog.apply(4, [("c", None)])
    catalog.apply(5, [("a", _dated(NOW))])  # republished: now the newest
    catalog.apply(6, [("b", _dated(NOW - 2, available=False))])
    assert catalog.recent(NOW, 60, 10) == [("a", NOW)]
    catalog.apply(7, [("b", _dated(NOW - 2)), ("a", _dated(None))])
    assert catalog.recent(NOW, 60, 10) == [("b", NOW - 2)]


@pytest.mark.parametrize("batch_size", [1, 7, 500])
def test_recent_matches_a_full_sort_after_random_changes(
    batch_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small batches update the index in place, large ones rebuild it; tiny buckets
    # make the index split and empty buckets many times. All agree with sorting the
    # live items from scratch.
    monkeypatch.setattr(catalog_module._SortedKeys, "_LOAD", 4)
    rng = random.Random(batch_size)
    catalog = LiveCatalog()
    truth: dict[str, ItemInfo] = {}
    version = 0
    for _ in range(3000 // batch_size):
        batch: list[tuple[str, ItemInfo | None]] = []
        for _ in range(batch_size):
            item = f"i{rng.randrange(300)}"
            dated = _dated(NOW - rng.randrange(100), available=rng.random() < 0.9)
            info = None if rng.random() < 0.2 else dated
            batch.append((item, info))
            if info is None:
                truth.pop(item, None)
            else:
                truth[item] = info
        version += batch_size
        catalog.apply(version, batch)
    assert len(catalog) == len(truth)
    for now, max_age_s, limit in [(NOW, 50, 20), (NOW, 1000, 1000), (NOW - 30, 10, 5), (NOW, 0, 9)]:
        expected = sorted(
            (
                (info.published_at, item)
                for item, info in truth.items()
                if info.available
                and info.published_at is not None
                and now - max_age_s <= info.published_at <= now
            ),
            reverse=True,
        )[:limit]
        assert catalog.recent(now, max_age_s, limit) == [(item, at) for at, item in expected]
    for item, info in truth.items():
        assert catalog.get(item) == info and catalog.known(item)


def test_a_large_catalogue_costs_columns_not_an_object_per_item() -> None:
    import tracemalloc

    n = 50_000
    catalog = LiveCatalog()
    tracemalloc.start()
    for start in range(0, n, 1000):
        # Built inside the traced region, as unpickled changes are in a replica.
        batch = [
            (f"a{i}", ItemInfo(f"topic-{i % 64}", True, NOW + i))
            for i in range(start, start + 1000)
        ]
        catalog.apply(start + 1000, batch)
    del batch
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Objects per item (the ItemInfo, its strings, a dict entry) cost about 430 bytes.
    assert held / n < 300, f"{held / n:.0f} bytes an item"
    assert catalog.get("a123") == ItemInfo("topic-59", True, NOW + 123)
