"""Item ids as dense indices, with the catalogue's facts as columns over them.

The blending engine never moves item id strings between nodes: a source's ids are
turned into indices once (:meth:`ItemTable.indices`), and filters and diversity
read the catalogue's facts for a whole candidate set with one array lookup
(:meth:`ItemTable.known`, :meth:`ItemTable.available`, :meth:`ItemTable.categories`).
A catalogue owns one table and writes its facts into it as items change; without a
catalogue the table only interns ids.

Indices are never reused or removed (a deleted item keeps its index as an
unavailable tombstone), so an index taken by one request stays valid for the next.
Not thread-safe: intern and read from one thread (the ingress's event loop).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["NO_CATEGORY", "ItemTable"]

NO_CATEGORY = -1
"""The category code of an item without a category (never capped by ``diversify``)."""

_FIRST_CAPACITY = 1024
_MEMO_SIZE = 256


class ItemTable:
    """Every item id met so far, each with a dense index, and per-index facts.

    ``known`` says whether the catalogue has ever held the item (deleted items stay
    known, as tombstones); ``available`` whether it may be shown (unknown items may);
    ``category`` a code into :attr:`category_names`, or :data:`NO_CATEGORY`.
    """

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self.ids: list[str] = []
        """Index -> item id."""
        self.category_names: list[str] = []
        """Category code -> name."""
        self._category_codes: dict[str, int] = {}
        self._known = np.zeros(_FIRST_CAPACITY, dtype=bool)
        self._available = np.ones(_FIRST_CAPACITY, dtype=bool)
        self._category = np.full(_FIRST_CAPACITY, NO_CATEGORY, dtype=np.int32)
        self._memo: dict[int, tuple[tuple[str, ...], np.ndarray, np.ndarray | None]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def indices(self, item_ids: Iterable[str]) -> np.ndarray:
        """The index of each id (``int64``), adding ids met for the first time."""
        codes = list(map(self._index.get, item_ids))
        if None in codes:
            ids = item_ids if isinstance(item_ids, Sequence) else list(item_ids)
            codes = [self.add(ids[i]) if c is None else c for i, c in enumerate(codes)]
        return np.array(codes, dtype=np.int64)

    def distinct_indices(self, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """The indices of ``item_ids`` without repeats (first sightings kept), and
        which positions those are (``None``: no id repeats).

        A tuple of ids (immutable: a model's fixed list, like popularity's) is
        remembered by identity, so answering the same list again costs a lookup.
        The arrays returned are read-only.
        """
        memo = type(item_ids) is tuple
        if memo:
            hit = self._memo.get(id(item_ids))
            if hit is not None and hit[0] is item_ids:
                return hit[1], hit[2]
        items = self.indices(item_ids)
        keep = None
        if len(items) > 1:
            unique, first = np.unique(items, return_index=True)
            if len(unique) < len(items):
                keep = np.sort(first)
                items = items[keep]
        if memo:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            items.flags.writeable = False
            self._memo[id(item_ids)] = (item_ids, items, keep)  # type: ignore[assignment]
        return items, keep

    def lookup(self, item_ids: Iterable[str]) -> np.ndarray:
        """The indices of the ids already in the table; unknown ids are left out."""
        get = self._index.get
        return np.array([c for c in map(get, item_ids) if c is not None], dtype=np.int64)

    def index_of(self, item_id: str) -> int | None:
        """The id's index, or ``None`` if the table has never met it."""
        return self._index.get(item_id)

    def add(self, item_id: str) -> int:
        """The id's index, adding it if new."""
        code = self._index.get(item_id)
        if code is None:
            code = self._index[item_id] = len(self.ids)
            self.ids.append(item_id)
            if code >= len(self._known):
                self._grow(2 * len(self._known))
        return code

    def ids_of(self, indices: np.ndarray) -> list[str]:
        """The ids of ``indices``, in order."""
        ids = self.ids
        return [ids[i] for i in indices.tolist()]

    def set_facts(self, item_id: str, *, known: bool, available: bool, category: str | None) -> int:
        """Record what the catalogue says about one item; its index."""
        code = self.add(item_id)
        self._known[code] = known
        self._available[code] = available
        self._category[code] = NO_CATEGORY if category is None else self._category_code(category)
        return code

    def known(self, indices: np.ndarray) -> np.ndarray:
        """Whether the catalogue has ever held each item (tombstones included)."""
        found: np.ndarray = self._known[indices]
        return found

    def available(self, indices: np.ndarray) -> np.ndarray:
        """Whether each item may be shown (items the catalogue never held may)."""
        found: np.ndarray = self._available[indices]
        return found

    def is_available(self, index: int) -> bool:
        """Whether one item may be shown (:meth:`available` for a single index)."""
        return bool(self._available[index])

    def category_of(self, index: int) -> str | None:
        """One item's category name, or ``None``."""
        code = int(self._category[index])
        return None if code == NO_CATEGORY else self.category_names[code]

    def category_code(self, name: str) -> int | None:
        """The code of category ``name``, or ``None`` when no item has had it."""
        return self._category_codes.get(name)

    def categories(self, indices: np.ndarray) -> np.ndarray:
        """Each item's category code (``NO_CATEGORY`` when it has none)."""
        found: np.ndarray = self._category[indices]
        return found

    def _category_code(self, name: str) -> int:
        code = self._category_codes.get(name)
        if code is None:
            code = self._category_codes[name] = len(self.category_names)
            self.category_names.append(name)
        return code

    def _grow(self, capacity: int) -> None:
        extra = capacity - len(self._known)
        self._known = np.concatenate([self._known, np.zeros(extra, dtype=bool)])
        self._available = np.concatenate([self._available, np.ones(extra, dtype=bool)])
        self._category = np.concatenate(
            [self._category, np.full(extra, NO_CATEGORY, dtype=np.int32)]
        )
