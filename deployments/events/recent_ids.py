"""Ids the event log has stored recently, so that a resent batch or a client's retry
is stored once: feedback by ``event_id``, served lists by ``request_id``, and which
items already had a feedback event of a kind (for counting each item once)."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable

import numpy as np

__all__ = ["RecentIds"]

BLOCK_SIZE = 4096
"""Newest ids held as a Python dict before they join the sorted array: small, so the
dict's memory (~80 bytes an id) stays a fixed few hundred KB however long the run."""


class RecentIds:
    """The last ``capacity`` ids (about: the oldest leave a block at a time), kept as
    64-bit hashes in one sorted numpy array: 8 bytes an id instead of ~170 for a
    Python string in a dict, so that a million ids cost 8 MB and a long run's memory
    stays flat once full.

    Two different ids share a hash with odds of about ``len(self) / 2**64`` per new id
    (5e-14 for a million): such an id would be taken for a resend. Ids are reserved
    before their events are written (a concurrent retry of the same batch is then a
    duplicate, not a second write) and released if the write fails.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._block_size = max(1, min(BLOCK_SIZE, capacity // 4))
        self._open: dict[int, None] = {}
        """Hashes of the newest ids, until there are a block's worth."""
        self._sealed = np.empty(0, dtype=np.uint64)
        """Every older hash, sorted: one binary search answers membership."""
        self._blocks: deque[np.ndarray] = deque()
        """The same hashes by block, oldest first: what leaves when full."""

    def __len__(self) -> int:
        return len(self._open) + len(self._sealed)

    def __contains__(self, key: object) -> bool:
        digest = _digest(key)
        return digest in self._open or bool(self._in_sealed([digest])[0])

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
        for digest, old in zip(digests, sealed, strict=True):
            is_new = not old and digest not in self._open
            if is_new:
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
            value = np.uint64(digest)  # rare: sealed while its write was going on
            self._sealed = _without(self._sealed, value)
            for i, block in enumerate(self._blocks):
                shorter = _without(block, value)
                if len(shorter) < len(block):
                    self._blocks[i] = shorter
                    break

    def _in_sealed(self, digests: list[int]) -> np.ndarray:
        values = np.fromiter(digests, dtype=np.uint64, count=len(digests))
        if not len(self._sealed):
            return np.zeros(len(values), dtype=bool)
        at = np.minimum(np.searchsorted(self._sealed, values), len(self._sealed) - 1)
        return np.asarray(self._sealed[at] == values)

    def _seal(self) -> None:
        block = np.fromiter(self._open, dtype=np.uint64, count=len(self._open))
        block.sort()
        self._open = {}
        self._blocks.append(block)
        self._sealed = np.insert(self._sealed, np.searchsorted(self._sealed, block), block)
        while len(self) > self.capacity and len(self._blocks) > 1:
            oldest = self._blocks.popleft()
            # One occurrence of each (a value added twice is in two blocks).
            self._sealed = np.delete(self._sealed, np.searchsorted(self._sealed, oldest))


def _without(values: np.ndarray, value: np.uint64) -> np.ndarray:
    """A sorted array less one occurrence of ``value`` (itself if absent)."""
    at = int(np.searchsorted(values, value))
    return np.delete(values, at) if at < len(values) and values[at] == value else values


def _digest(key: object) -> int:
    """A key's 64-bit hash as an unsigned int (Python's SipHash for strings, seeded
    per process: these sets live only in one process's memory)."""
    return hash(key) & 0xFFFF_FFFF_FFFF_FFFF
