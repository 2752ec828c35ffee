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


def test_ids_stay_known_after_their_block_is_sealed() -> None:
    ids = RecentIds(capacity=80)  # blocks of 20
    first = [f"id{i}" for i in range(35)]
    assert all(ids.reserve(first))
    assert all(key in ids for key in first)
    assert ids.reserve([*first, "new"]) == [False] * 35 + [True]


def test_released_ids_are_stored_on_retry_even_once_sealed() -> None:
    ids = RecentIds(capacity=80)
    ids.reserve([f"id{i}" for i in range(25)])  # id0..id19 sealed
    ids.release(["id3", "id22"])  # one sealed, one still open
    assert "id3" not in ids and "id22" not in ids and "id4" in ids
    assert ids.reserve(["id3", "id22", "id4"]) == [True, True, False]


def test_the_oldest_ids_leave_first_and_the_count_stays_near_the_capacity() -> None:
    ids = RecentIds(capacity=80)
    for i in range(1000):
        ids.add(f"id{i}")
    assert 70 <= len(ids) <= 90
    assert "id0" not in ids and "id500" not in ids
    assert all(f"id{i}" in ids for i in range(940, 1000))


def test_tuples_are_ids_too() -> None:
    ids = RecentIds(capacity=100)
    ids.add(("result-1", "click"))
    assert ("result-1", "click") in ids and ("result-1", "impression") not in ids


def test_a_full_set_of_a_hundred_thousand_ids_takes_about_a_megabyte() -> None:
    keys = [uuid.uuid4().hex for _ in range(200_000)]
    ids = RecentIds(capacity=100_000)
    tracemalloc.start()
    for start in range(0, len(keys), 1000):
        ids.reserve(keys[start : start + 1000])
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # 8 bytes a sealed id, ~100 one of the open block (4096 at most): a dict of the
    # strings themselves would hold ~17 MB.
    assert held < 3_000_000, held
    assert all(key in ids for key in keys[-80_000:])
