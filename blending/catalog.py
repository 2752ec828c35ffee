"""What the blender knows about items: their category and whether they may be shown.

``filter`` and ``diversify`` nodes read an :class:`ItemCatalog`'s :class:`ItemTable`
(the facts as columns over item indices); ``get`` answers for one item. :class:`StaticCatalog`
is loaded once from Parquet; :class:`LiveCatalog` is kept in step with the durable
store (``deployments/catalog/store.py``) by applying its changes, and also answers
"what was published lately" (:meth:`LiveCatalog.recent`) without sorting anything
per call.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import pyarrow.parquet as pq
import pyarrow.types as pa_types

from blending.attributes import AttributeColumns, AttributeKind
from blending.items import ItemTable
from models.errors import ConfigError

__all__ = ["ItemCatalog", "ItemInfo", "LiveCatalog", "StaticCatalog"]


_NO_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ItemInfo:
    """The facts about one item that blending rules use."""

    category: str | None = None
    """What ``diversify`` caps per list; ``None``: never capped."""
    available: bool = True
    """Whether the item may be shown; ``filter`` drops it otherwise."""
    published_at: float | None = None
    """When it was published, in unix seconds; ``None``: unknown."""
    attributes: Mapping[str, Any] = field(default_factory=lambda: _NO_ATTRIBUTES)
    """The team's own facts (``price``, ``in_stock``...); rules read the declared ones."""


class ItemCatalog(Protocol):
    """Looks items up by id; ``None`` for an item it does not know.

    ``table`` holds the same facts as columns, for the blending engine, and
    ``attributes`` the declared attributes, for query-time rules.
    """

    table: ItemTable
    attributes: AttributeColumns

    def get(self, item_id: str) -> ItemInfo | None:
        """The item's facts, or ``None``."""
        ...


class StaticCatalog:
    """An immutable in-memory catalogue."""

    def __init__(
        self, items: dict[str, ItemInfo], attributes: Mapping[str, AttributeKind] | None = None
    ) -> None:
        self._items = items
        self.table = ItemTable()
        self.attributes = AttributeColumns(self.table, attributes or {})
        for item_id, info in items.items():
            _record(self.attributes, item_id, info)

    def get(self, item_id: str) -> ItemInfo | None:
        """The item's facts, or ``None``."""
        return self._items.get(item_id)

    def __len__(self) -> int:
        return len(self._items)

    def item_ids(self) -> set[str]:
        """Every item id it holds."""
        return set(self._items)

    @classmethod
    def from_parquet(
        cls, path: str | os.PathLike[str], attributes: Mapping[str, AttributeKind] | None = None
    ) -> StaticCatalog:
        """Read ``item_id`` and optional ``category``, ``available`` and
        ``published_at`` columns, and a column per declared attribute it has.

        Raises ``ConfigError`` naming the file when it is missing or lacks ``item_id``.
        """
        source = Path(path)
        try:
            table = pq.read_table(source)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"catalog {source}: cannot read Parquet: {exc}") from exc
        names = set(table.column_names)
        if "item_id" not in names:
            raise ConfigError(
                f"catalog {source}: expected an `item_id` column, got {sorted(names)}"
            )
        ids = [str(i) for i in table.column("item_id").to_pylist()]
        n = len(ids)
        categories = table.column("category").to_pylist() if "category" in names else [None] * n
        available = table.column("available").to_pylist() if "available" in names else [True] * n
        published = _times(table.column("published_at")) if "published_at" in names else [None] * n
        declared = [name for name in attributes or {} if name in names]
        facts = [table.column(name).to_pylist() for name in declared]
        rows = zip(ids, categories, available, published, strict=True)
        return cls(
            {
                item: ItemInfo(
                    None if cat is None else str(cat),
                    bool(avail),
                    when,
                    {name: column[row] for name, column in zip(declared, facts, strict=True)},
                )
                for row, (item, cat, avail, when) in enumerate(rows)
            },
            attributes,
        )


def _times(column: Any) -> list[float | None]:
    """A Parquet column of timestamps or unix seconds as unix seconds."""
    values = column.to_pylist()
    if not pa_types.is_timestamp(column.type):
        return [None if v is None else float(v) for v in values]
    return [None if v is None else v.replace(tzinfo=v.tzinfo or UTC).timestamp() for v in values]


def _record(columns: AttributeColumns, item_id: str, info: ItemInfo | None) -> int:
    """Write one item's facts into the table and attribute columns (``None``: deleted,
    an unavailable tombstone without attributes); its index."""
    table = columns.table
    if info is None:
        code = table.set_facts(item_id, known=True, available=False, category=None)
        columns.clear(code)
        return code
    code = table.set_facts(item_id, known=True, available=info.available, category=info.category)
    columns.write(code, info.published_at, info.attributes)
    return code


_DELETED = ItemInfo(available=False)
"""What :meth:`LiveCatalog.get` answers for a deleted item: unavailable, so a
``filter`` drops it even while a model still recommends it."""

_UNSEEN, _LIVE, _DELETED_STATE = 0, 1, 2


class LiveCatalog:
    """An in-memory catalogue kept in step with the durable store by applying its changes.

    The owner polls the store for the changes since :attr:`version` and hands them to
    :meth:`apply`: ``(item_id, ItemInfo)`` for an item created or replaced,
    ``(item_id, None)`` for one deleted. A deleted item stays known as a tombstone
    (``get`` answers an unavailable :class:`ItemInfo`), because models trained before
    the deletion keep recommending it.

    The facts live in columns over the table's item indices (the table's own, the
    attribute columns with publication times, and whether each item is live or
    deleted), not in an object
    per item: a million items cost about 250 bytes each in every ingress replica
    (ids, their index, the recency index), not a kilobyte. ``get`` builds the
    :class:`ItemInfo` it answers.

    Beside the lookup it keeps the live, available items that have a publication
    time sorted by ``(published_at, item_id)``, updated on each change, so
    :meth:`recent` costs a bisection and a slice, not a sort.

    Not thread-safe: apply changes and read from one thread (the ingress's event loop).
    ``version`` is the store version whose changes have all been applied (0 at first).
    """

    _REBUILD_SHARE = 8
    """Sort the recency index anew when one batch changes more than 1/``_REBUILD_SHARE``
    of it (the first sync of a large catalogue): one sort beats that many inserts."""

    def __init__(self, attributes: Mapping[str, AttributeKind] | None = None) -> None:
        self._state = np.zeros(1024, dtype=np.int8)
        """Per table index: ``_UNSEEN``, ``_LIVE`` or ``_DELETED_STATE``."""
        self._live = 0
        self._recent = _SortedKeys()
        self.table = ItemTable()
        self.attributes = AttributeColumns(self.table, attributes or {})
        """Publication times and the declared attributes, as columns."""
        self.version = 0

    def apply(self, version: int, changes: Iterable[tuple[str, ItemInfo | None]]) -> None:
        """Apply ``changes`` in order (``None``: deleted) and move to ``version``.

        Raises ``ValueError`` when ``version`` is older than :attr:`version`: the
        caller mixed up its polls, and applying older states would undo newer ones.
        """
        if version < self.version:
            raise ValueError(f"live catalogue: expected a version >= {self.version}, got {version}")
        batch = list(changes)
        rebuild = len(batch) > max(64, len(self._recent) // self._REBUILD_SHARE)
        table = self.table
        for item_id, info in batch:
            code = table.add(item_id)
            if code >= len(self._state):
                self._grow(max(2 * len(self._state), code + 1))
            if not rebuild and (old := self._recent_key(code, item_id)):
                self._recent.remove(old)
            self._live += int(info is not None) - int(self._state[code] == _LIVE)
            _record(self.attributes, item_id, info)
            if info is None:
                self._state[code] = _DELETED_STATE
                continue
            self._state[code] = _LIVE
            if not rebuild and (key := self._recent_key(code, item_id)):
                self._recent.add(key)
        if rebuild:
            every = np.arange(len(table))
            published = self.attributes.values("published_at", every)
            live = np.flatnonzero(
                (self._state[: len(table)] == _LIVE)
                & table.available(every)
                & np.isfinite(published)
            )
            ids = table.ids
            times = published[live].tolist()
            keys = zip(times, [ids[i] for i in live.tolist()], strict=True)
            self._recent = _SortedKeys(sorted(keys))
        self.version = version

    def get(self, item_id: str) -> ItemInfo | None:
        """The item's facts; an unavailable tombstone if deleted; ``None`` if never seen."""
        code = self.table.index_of(item_id)
        if code is None or code >= len(self._state) or self._state[code] == _UNSEEN:
            return None
        if self._state[code] == _DELETED_STATE:
            return _DELETED
        published = self.attributes.published_at(code)
        return ItemInfo(
            self.table.category_of(code),
            self.table.is_available(code),
            None if math.isnan(published) else published,
        )

    def known(self, item_id: str) -> bool:
        """Whether ``item_id`` is a live item (deleted and unseen ones are not)."""
        code = self.table.index_of(item_id)
        return code is not None and code < len(self._state) and self._state[code] == _LIVE

    def __len__(self) -> int:
        """How many live items (available or not) the catalogue holds."""
        return self._live

    def _recent_key(self, code: int, item_id: str) -> _Key | None:
        """The item's place in the recency index, or ``None`` when it does not belong
        there (deleted, unavailable, or without a finite publication time)."""
        published = self.attributes.published_at(code)
        if self._state[code] != _LIVE or not math.isfinite(published):
            return None
        return (published, item_id) if self.table.is_available(code) else None

    def _grow(self, capacity: int) -> None:
        extra = capacity - len(self._state)
        self._state = np.concatenate([self._state, np.zeros(extra, dtype=np.int8)])

    def recent(self, now: float, max_age_s: float, limit: int) -> list[tuple[str, float]]:
        """Up to ``limit`` live, available items published in ``[now - max_age_s, now]``,
        newest first, as ``(item_id, published_at)``.

        Items scheduled after ``now`` are left out until their time. Equal times come
        in descending ``item_id`` order, so the answer is deterministic.
        """
        keys = self._recent.newest(now - max_age_s, now, limit)
        return [(item_id, published) for published, item_id in keys]


_Key = tuple[float, str]


def _published(key: _Key) -> float:
    return key[0]


class _SortedKeys:
    """Sorted keys in buckets of at most ``2 * _LOAD``, each bucket sorted and every key
    of a bucket below the next bucket's (the layout of ``sortedcontainers.SortedList``).

    An insert or removal bisects the buckets' maxima, then moves part of one bucket;
    a flat sorted list would move half of a catalogue-sized list per change.
    """

    _LOAD = 512

    def __init__(self, ordered: list[_Key] | None = None) -> None:
        ordered = ordered or []
        step = self._LOAD
        self._buckets = [ordered[at : at + step] for at in range(0, len(ordered), step)]
        self._maxes = [bucket[-1] for bucket in self._buckets]
        self._size = len(ordered)

    def __len__(self) -> int:
        return self._size

    def add(self, key: _Key) -> None:
        """Insert ``key`` in order."""
        self._size += 1
        if not self._buckets:
            self._buckets.append([key])
            self._maxes.append(key)
            return
        at = min(bisect_left(self._maxes, key), len(self._maxes) - 1)
        bucket = self._buckets[at]
        insort(bucket, key)
        self._maxes[at] = bucket[-1]
        if len(bucket) > 2 * self._LOAD:
            upper = bucket[self._LOAD :]
            del bucket[self._LOAD :]
            self._buckets.insert(at + 1, upper)
            self._maxes[at] = bucket[-1]
            self._maxes.insert(at + 1, upper[-1])

    def remove(self, key: _Key) -> None:
        """Remove ``key`` if present."""
        at = bisect_left(self._maxes, key)
        if at == len(self._maxes):
            return
        bucket = self._buckets[at]
        index = bisect_left(bucket, key)
        if index == len(bucket) or bucket[index] != key:
            return
        del bucket[index]
        self._size -= 1
        if bucket:
            self._maxes[at] = bucket[-1]
        else:
            del self._buckets[at]
            del self._maxes[at]

    def newest(self, low: float, high: float, limit: int) -> list[_Key]:
        """Up to ``limit`` keys with a time in ``[low, high]``, highest first."""
        found: list[_Key] = []
        # The first bucket whose maximum is past ``high`` may still hold keys below it.
        at = min(bisect_right(self._maxes, high, key=_published), len(self._buckets) - 1)
        while at >= 0 and len(found) < limit:
            bucket = self._buckets[at]
            end = bisect_right(bucket, high, key=_published)
            start = bisect_left(bucket, low, key=_published, hi=end)
            found.extend(reversed(bucket[max(start, end - (limit - len(found))) : end]))
            if start > 0:
                break
            at -= 1
        return found
