"""Editorial lists ('staff picks'): an ordered list of item ids in ``items.json``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from models.base import ModelAdapter, Recommender, RecommendQuery, ScoredItem, TopItems
from models.errors import ModelError

__all__ = ["CuratedListAdapter"]


class CuratedListAdapter(ModelAdapter, Recommender):
    """The same ordered list for everyone; the first item scores 1, the last ``1/n``."""

    format = "curated"
    primary_file = "items.json"
    curated = True

    def load(self) -> None:
        """Read the ordered, de-duplicated item list."""
        data = json.loads((self.directory / "items.json").read_text(encoding="utf-8"))
        items = [str(i) for i in data["items"]]
        if len(set(items)) != len(items):
            raise ModelError(f"model {self.name!r}: items.json lists an item twice")
        self.items = items
        total = len(items)
        self._scores = np.array([(total - i) / total for i in range(total)], dtype=np.float64)
        self._scores.flags.writeable = False
        self._tops: dict[int, TopItems] = {}

    def recommend(self, queries: Sequence[RecommendQuery], n: int) -> list[list[ScoredItem]]:
        """The first ``n`` items of the list, scored by position."""
        total = len(self.items)
        row = [(item, (total - i) / total) for i, item in enumerate(self.items[:n])]
        return [list(row) for _ in queries]

    def top_items(self, queries: Sequence[RecommendQuery], n: int) -> list[TopItems]:
        """The first ``n`` items as columns: one answer per ``n``, shared (an immutable
        tuple of ids and a read-only array), so the blender can remember it."""
        row = self._tops.get(n)
        if row is None:
            row = self._tops[n] = TopItems(tuple(self.items[:n]), self._scores[:n])
        return [row for _ in queries]

    def item_ids(self) -> Sequence[str]:
        """The list's items, in order."""
        return self.items

    def predict(self, instances: Sequence[Any]) -> list[Any]:
        """The whole list, once per instance (instances are ignored)."""
        return [list(self.items) for _ in instances]
