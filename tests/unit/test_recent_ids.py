"""The event log's memory of stored ids: a resend is a duplicate, a failed write's ids
are free again, old ids leave, and a full set stays small."""

import tracemalloc
import uuid

from deployments.events.recent_ids import RecentIds


def test_a_resent_id_is_a_duplicate_and_a_repeat_in_one_batch_counts_once() -> None:
    ids = RecentIds(capacity=1000)
    assert ids.reserve(["a", "b", "a"]) == [True, True, False]
    assert ids.reserve(["b", "c"]) == [False, True]
    assert "a" in ids and "c" in ids and "z" not in ids
    assert len(ids) == 3


def test_ids_stay_known_in_older_tables_and_in_large_batches() -> None:
    ids = RecentIds(capacity=90)  # tables of 30
    first = [f"id{i}" for i in range(75)]
    assert all(ids.reserve(first))
    assert all(key in ids for key in first)
    assert ids.reserve([*first, "new"]) == [False] * 75 + [True]


def test_released_ids_are_stored_on_retry_in_any_table() -> None:
    ids = RecentIds(capacity=90)
    ids.reserve([f"id{i}" for i in range(45)])  # id0..id29 in an older table
    ids.release(["id3", "id40"])
    assert "id3" not in ids and "id40" not in ids and "id4" in ids and "id41" in ids
    assert ids.reserve(["id3", "id40", "id4"]) == [True, True, False]


def test_at_least_the_last_capacity_ids_are_known_and_the_oldest_leave_first() -> None:
    ids = RecentIds(capacity=90)
    for i in range(1000):
        ids.add(f"id{i}")
    assert 90 <= len(ids) <= 120
    assert "id0" not in ids and "id500" not in ids
    assert all(f"id{i}" in ids for i in range(910, 1000))


def test_tuples_are_ids_too() -> None:
    ids = RecentIds(capacity=100)
    ids.add(("result-1", "click"))
    assert ("result-1", "click") in ids and ("result-1", "impression") not in ids


def test_memory_is_allocated_once_and_stays_flat_as_ids_churn() -> None:
    ids = RecentIds(capacity=100_000)
    keys = [uuid.uuid4().hex for _ in range(300_000)]
    tracemalloc.start()
    for start in range(0, len(keys), 1000):
        ids.reserve(keys[start : start + 1000])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Only each batch's temporaries are allocated after the tables (~1.5 MB, made
    # with the set): a dict of the strings themselves would hold ~17 MB.
    assert peak < 500_000, peak
    assert ids.nbytes < 2_000_000
    assert all(key in ids for key in keys[-100_000:])
