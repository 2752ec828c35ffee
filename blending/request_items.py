"""The request's view of items: the shared id table and what the request excludes."""

from __future__ import annotations

from collections.abc import Collection
from functools import cached_property

import numpy as np

from blending.items import ItemTable

__all__ = ["RequestItems"]


class RequestItems:
    """The request's view of items: the id table, whether a catalogue fills its facts,
    and the indices of the ids the request excludes.

    The excluded indices are looked up (never added: a request must not grow the
    shared table) on first use, after every source has been turned into indices,
    so an excluded id missing from the table cannot be in any list.
    """

    def __init__(
        self,
        table: ItemTable,
        exclude: Collection[str],
        catalog: bool,
        hidden: np.ndarray | None = None,
    ) -> None:
        self.table = table
        self.exclude = exclude
        self.catalog = catalog
        self.hidden = hidden
        """Indices excluded beside ``exclude``'s ids (what the user has seen)."""

    @property
    def excludes(self) -> bool:
        """Whether the request excludes anything."""
        return bool(len(self.exclude)) or (self.hidden is not None and bool(len(self.hidden)))

    @cached_property
    def excluded(self) -> np.ndarray:
        """Indices of the excluded ids the table knows, and the hidden ones."""
        found = self.table.lookup(self.exclude)
        if self.hidden is None or not len(self.hidden):
            return found
        return np.union1d(found, self.hidden) if len(found) else self.hidden
