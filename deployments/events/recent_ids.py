"""Ids the event log has stored recently, so that a resent batch or a client's retry
is stored once: feedback by ``event_id``, served lists by ``request_id``, and which
items already had a feedback event of a kind (for counting each item once)."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable

import numpy as np

__all__ = ["RecentIds"]

_GENERATIONS = 8
"""How many sealed blocks the capacity is split into: the oldest leaves as a block."""


class RecentIds:
    """The last ``capacity`` ids (about; the oldest leave a block at a time), kept as
    64-bit hashes in sorted numpy blocks: 8 bytes an id instead of ~170 for a Python
    string in a dict, so that a million ids cost 8 MB and a long run's memory stays flat.

    Two different ids share a hash with odds of about ``len(self) / 2**64`` per new id
    (5e-14 for a million): such an id would be taken for a resend. Ids are reserved
    before their events are written (a concurrent retry of the same batch is then a
    duplicate, not a second write) and released if the write fails.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._block_size = max(1, capacity // _GENERATIONS)
        self._open: dict[int, None] = {}
        """Hashes of the newest ids, until there are a block's worth."""
        self._sealed: deque[np.ndarray] = deque()
        """Sorted uint64 blocks of older hashes, oldest first."""
        self._sealed_count = 0

    def __len__(self) -> int:
        return len(self._open) + self._sealed_count

    def __contains__(self, key: object) -> bool:
        digest = _digest(key)
        if digest in self._open:
            return True
        value = np.uint64(digest)
        for block in self._sealed:
            at = int(np.searchsorted(block, value))
            if at < len(block) and block[at] == value:
                return True
        return False

    def add(self, key: Hashable) -> None:
        """Remember ``key`` (forgetting the oldest block beyond the capacity)."""
        self._open[_digest(key)] = None
        if len(self._open) >= self._block_size:
            self._seal()

    def reserve(self, keys: Iterable[Hashable]) -> list[bool]:
        """For each key, whether it is new; the new ones are remembered at once (a key
        twice in one batch is new only the first time)."""
        digests = [_digest(key) for key in keys]
        sealed = self._in_sealed(digests)
        fresh = []
        taken: set[int] = set()
        for digest, old in zip(digests, sealed, strict=True):
            is_new = not old and digest not in self._open and digest not in taken
            if is_new:
                taken.add(digest)
                self._open[digest] = None
            fresh.append(is_new)
        if len(self._open) >= self._block_size:
            self._seal()
        return fresh

    def release(self, keys: Iterable[Hashable]) -> None:
        """Forget keys whose write failed, so that their retry is stored."""
        for key in keys:
            digest = _digest(key)
            if digest in self._open:
                del self._open[digest]
                continue
            value = np.uint64(digest)
            for i, block in enumerate(self._sealed):  # rare: sealed while being written
                at = int(np.searchsorted(block, value))
                if at < len(block) and block[at] == value:
                    self._sealed[i] = np.delete(block, at)
                    self._sealed_count -= 1
                    break

    def _in_sealed(self, digests: list[int]) -> np.ndarray:
        values = np.fromiter(digests, dtype=np.uint64, count=len(digests))
        found = np.zeros(len(values), dtype=bool)
        for block in self._sealed:
            if not len(block):
                continue
            at = np.minimum(np.searchsorted(block, values), len(block) - 1)
            found |= block[at] == values
        return found

    def _seal(self) -> None:
        block = np.fromiter(self._open, dtype=np.uint64, count=len(self._open))
        block.sort()
        self._sealed.append(block)
        self._sealed_count += len(block)
        self._open = {}
        while len(self) > self.capacity and self._sealed:
            self._sealed_count -= len(self._sealed.popleft())


def _digest(key: object) -> int:
    """A key's 64-bit hash as an unsigned int (Python's SipHash for strings, seeded
    per process: these sets live only in one process's memory)."""
    return hash(key) & 0xFFFF_FFFF_FFFF_FFFF
