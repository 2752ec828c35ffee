"""Item attributes as columns over the item table's indices, for query-time rules.

A team declares which of its items' attributes rules may read, with a kind each
(``text``, ``number``, ``boolean``, ``time``), as search engines declare filterable
fields. Each declared attribute is one numpy column indexed like the
:class:`~blending.items.ItemTable`: numbers, booleans (1.0/0.0) and times (unix
seconds) as float64 with NaN for "missing", text as int32 codes into a per-attribute
dictionary with -1 for "missing". A rule over a whole candidate list is then one
array lookup and one comparison (``blending/rules.py``), whatever the catalogue's size.

``category`` (text) and ``published_at`` (time) are always there: they are the
catalogue's own fields. Values of the wrong kind are stored as missing, so an item
with ``price: "n/a"`` never passes a price range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from blending.items import NO_CATEGORY, ItemTable

__all__ = ["BUILT_IN_ATTRIBUTES", "NO_CODE", "AttributeColumns", "AttributeKind"]

AttributeKind = Literal["text", "number", "boolean", "time"]

BUILT_IN_ATTRIBUTES: dict[str, AttributeKind] = {"category": "text", "published_at": "time"}
"""Attributes every catalogue has: its items' own ``category`` and ``published_at``."""

NO_CODE = -2
"""The code of a text value no item has (matches nothing, not even "missing")."""

_MISSING_TEXT = NO_CATEGORY
"""The code of a missing text value: the table's code for "no category" too, so the
``category`` column is read as it is."""
_FIRST_CAPACITY = 1024


def _as_number(kind: AttributeKind, value: Any) -> float:
    """``value`` as the float a numeric column holds, NaN when it is of another kind."""
    if value is None:
        return math.nan
    if kind == "boolean":
        return float(value) if isinstance(value, bool) else math.nan
    if isinstance(value, bool):
        return math.nan
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else math.nan
    if kind == "time" and isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return math.nan
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return math.nan


class AttributeColumns:
    """The declared attributes (and the built-in ones) of every item of ``table``.

    Written by the catalogue as items change (:meth:`write`), read by rules for many
    items at once (:meth:`values`). Not thread-safe, like the table.
    """

    def __init__(self, table: ItemTable, declared: Mapping[str, AttributeKind]) -> None:
        clash = sorted(set(declared) & set(BUILT_IN_ATTRIBUTES))
        if clash:
            raise ValueError(f"attributes {clash} are built in: declare only your own")
        self.table = table
        self.kinds: dict[str, AttributeKind] = {**BUILT_IN_ATTRIBUTES, **declared}
        self._numeric = {
            name: np.full(_FIRST_CAPACITY, np.nan)
            for name, kind in self.kinds.items()
            if kind != "text" and name != "category"
        }
        self._text = {
            name: np.full(_FIRST_CAPACITY, _MISSING_TEXT, dtype=np.int32)
            for name, kind in declared.items()
            if kind == "text"
        }
        self._codes: dict[str, dict[str, int]] = {name: {} for name in self._text}

    def write(self, index: int, published_at: float | None, attributes: Mapping[str, Any]) -> None:
        """Record one item's publication time and declared attributes (others are
        ignored); an attribute it lacks becomes missing."""
        if index >= len(self._numeric["published_at"]):
            self._grow(max(2 * len(self._numeric["published_at"]), index + 1))
        self._numeric["published_at"][index] = math.nan if published_at is None else published_at
        for name, column in self._numeric.items():
            if name != "published_at":
                column[index] = _as_number(self.kinds[name], attributes.get(name))
        for name, codes in self._text.items():
            value = attributes.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                value = str(value)  # an integer SKU is the same text as "123"
            if not isinstance(value, str):
                codes[index] = _MISSING_TEXT
                continue
            dictionary = self._codes[name]
            code = dictionary.get(value)
            if code is None:
                code = dictionary[value] = len(dictionary)
            codes[index] = code

    def clear(self, index: int) -> None:
        """Forget one item's values (it was deleted)."""
        self.write(index, None, {})

    def published_at(self, index: int) -> float:
        """One item's publication time (NaN: unknown)."""
        column = self._numeric["published_at"]
        return float(column[index]) if index < len(column) else math.nan

    def values(self, name: str, indices: np.ndarray) -> np.ndarray:
        """The attribute of each item: float64 (NaN: missing) for numbers, booleans
        and times; int32 codes (-1: missing) for text (see :meth:`code`)."""
        if name == "category":
            found: np.ndarray = self.table.categories(indices)  # NO_CATEGORY is missing
            return found
        column = self._numeric.get(name)
        if column is None:
            column = self._text[name]
            missing: float | int = _MISSING_TEXT
        else:
            missing = math.nan
        inside = indices < len(column)
        if inside.all():
            picked: np.ndarray = column[indices]
            return picked
        out = np.full(len(indices), missing, dtype=column.dtype)
        out[inside] = column[indices[inside]]
        return out

    def code(self, name: str, value: str) -> int:
        """The code of text ``value`` in attribute ``name`` (:data:`NO_CODE` when no
        item has it)."""
        if name == "category":
            found = self.table.category_code(value)
            return NO_CODE if found is None else found
        return self._codes[name].get(value, NO_CODE)

    def _grow(self, capacity: int) -> None:
        for name, column in self._numeric.items():
            extra = np.full(capacity - len(column), np.nan)
            self._numeric[name] = np.concatenate([column, extra])
        for name, codes in self._text.items():
            extra_codes = np.full(capacity - len(codes), _MISSING_TEXT, dtype=np.int32)
            self._text[name] = np.concatenate([codes, extra_codes])
