"""Ids the event log has stored recently, so that a resent batch or a client's retry
is stored once: feedback by ``event_id``, served lists by ``request_id``, and which
items already had a feedback event of a kind (for counting each item once)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable

import numpy as np

__all__ = ["RecentIds"]

GENERATIONS = 4
"""Hash tables in the ring: the oldest is emptied when the newest is full, so at least
``GENERATIONS - 1`` tables' worth of ids (the capacity) are always remembered."""
MAX_LOAD = 0.7
"""Slots a table fills at most (linear probing: about 6 probes for a missing id)."""
_EMPTY = np.uint64(0)
_RELEASED = np.uint64(1)
"""A released id's slot: not a match, but probing goes on past it."""
_SCALAR_UP_TO = 8
"""Batches up to this size are looked up one by one (a few scalar reads each, where
the vectorised probing costs tens of numpy calls)."""


class RecentIds:
    """At least the last ``capacity`` ids, kept as 64-bit hashes in a ring of
    fixed-size hash tables (numpy, open addressing): about 15 bytes per id of the
    capacity, all of it allocated and touched when the set is made, so memory does
    not grow as ids arrive (a soak's resident memory stays flat) and nothing is
    reallocated or copied after that.

    Two different ids share a hash with odds of about ``len(self) / 2**64`` per new id
    (5e-14 for a million): such an id would be taken for a resend. Ids are reserved
    before their events are written (a concurrent retry of the same batch is then a
    duplicate, not a second write) and released if the write fails.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._per_table = max(1, -(-capacity // (GENERATIONS - 1)))
        size = max(2, int(self._per_table / MAX_LOAD) + 1)
        self._tables = np.empty((GENERATIONS, size), dtype=np.uint64)
        self._tables.fill(_EMPTY)  # written, so its pages are resident from the start
        self._counts = [0] * GENERATIONS
        self._newest = 0

    @property
    def nbytes(self) -> int:
        """Memory the tables hold, fixed from the start."""
        return int(self._tables.nbytes)

    def __len__(self) -> int:
        return sum(self._counts)

    def __contains__(self, key: object) -> bool:
        return bool(self._known(np.array([_digest(key)], dtype=np.uint64))[0])

    def add(self, key: Hashable) -> None:
        """Remember ``key`` (forgetting the oldest table's ids once the newest is full)."""
        self.reserve([key])

    def reserve(self, keys: Iterable[Hashable]) -> list[bool]:
        """For each key, whether it is new; the new ones are remembered at once (a key
        twice in one batch is new only the first time)."""
        digests = np.fromiter(map(_digest, keys), dtype=np.uint64)
        known = self._known(digests)
        fresh = []
        added: set[int] = set()
        for digest, old in zip(digests.tolist(), known.tolist(), strict=True):
            is_new = not old and digest not in added
            if is_new:
                added.add(digest)
                self._insert(digest)
            fresh.append(is_new)
        return fresh

    def release(self, keys: Iterable[Hashable]) -> None:
        """Forget keys whose write failed, so that their retry is stored."""
        for key in keys:
            digest = np.uint64(_digest(key))
            for table in self._tables:
                at = _slot_of(table, digest)
                if at is not None:
                    table[at] = _RELEASED
                    break

    def _known(self, digests: np.ndarray) -> np.ndarray:
        """Which of ``digests`` some table holds (every table probed at once per step)."""
        if len(digests) <= _SCALAR_UP_TO:
            return np.array(
                [any(_slot_of(t, d) is not None for t in self._tables) for d in digests],
                dtype=bool,
            )
        found = np.zeros(len(digests), dtype=bool)
        size = self._tables.shape[1]
        for table in self._tables:
            pending = np.flatnonzero(~found)
            at = digests[pending] % np.uint64(size)
            while len(pending):
                held = table[at]
                hit = held == digests[pending]
                found[pending[hit]] = True
                going_on = ~hit & (held != _EMPTY)
                pending, at = pending[going_on], (at[going_on] + np.uint64(1)) % np.uint64(size)
        return found

    def _insert(self, digest: int) -> None:
        if self._counts[self._newest] >= self._per_table:
            # The newest table is full: the oldest becomes the newest, emptied in place.
            self._newest = (self._newest + 1) % GENERATIONS
            self._tables[self._newest].fill(_EMPTY)
            self._counts[self._newest] = 0
        table = self._tables[self._newest]
        size = len(table)
        at = digest % size
        while table[at] > _RELEASED:
            at = (at + 1) % size
        table[at] = digest
        self._counts[self._newest] += 1


def _slot_of(table: np.ndarray, digest: np.uint64) -> int | None:
    """Where ``table`` holds ``digest``, if it does."""
    size = len(table)
    at = int(digest) % size
    while table[at] != _EMPTY:
        if table[at] == digest:
            return at
        at = (at + 1) % size
    return None


def _digest(key: object) -> int:
    """A key's 64-bit hash as an unsigned int (Python's SipHash for strings, seeded
    per process: these sets live only in one process's memory), never one of the two
    marker values."""
    digest = hash(key) & 0xFFFF_FFFF_FFFF_FFFF
    return digest if digest > 1 else digest + 2
