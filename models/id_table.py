"""A model's row ids (users or items) and their row numbers, as numpy arrays.

A million users in a Python dict cost about 125 bytes each in every process that
loads the model (the strings, their ints, the hash table); as a fixed-width string
array sorted once and searched by bisection they cost 4 bytes a character plus 4
for the row, and a lookup of one id takes microseconds, not the request's budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["IdTable"]


class IdTable:
    """Ids in row order, and a sorted copy to find the row of an id."""

    def __init__(self, ids: Iterable[object]) -> None:
        self.ids: np.ndarray = np.array([str(i) for i in ids], dtype=str)
        """``str`` array: row -> id."""
        if self.ids.size == 0:
            self.ids = np.zeros(0, dtype="<U1")
        # Stable: a repeated id finds its first row.
        self._order = np.argsort(self.ids, kind="stable").astype(
            np.int32 if len(self.ids) < 2**31 else np.int64
        )
        self._sorted = self.ids[self._order]

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, wanted: Sequence[str], missing: int) -> np.ndarray:
        """``int64`` row of each id of ``wanted``; ``missing`` for an id not in the table."""
        if len(wanted) == 0:
            return np.zeros(0, dtype=np.int64)
        if len(self.ids) == 0:
            return np.full(len(wanted), missing, dtype=np.int64)
        query = np.array([str(w) for w in wanted], dtype=str)
        # Bisect at the table's width (a longer id is cut there, and then fails the
        # comparison below with the whole id, as it must).
        at = np.searchsorted(self._sorted, query.astype(self._sorted.dtype))
        at = np.minimum(at, len(self._sorted) - 1)
        found = self._sorted[at] == query
        return np.where(found, self._order[at], missing).astype(np.int64)

    def row(self, wanted: str) -> int | None:
        """The row of one id, or ``None``."""
        (found,) = self.rows([wanted], -1)
        return None if found < 0 else int(found)

    def nbytes(self) -> int:
        """Bytes of its arrays."""
        return int(self.ids.nbytes + self._order.nbytes + self._sorted.nbytes)
