"""Popularity: item interaction counts in ``counts.parquet`` (``item_id``, ``count``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from models.base import ModelAdapter, Recommender, RecommendQuery, ScoredItem, TopItems
from models.errors import InputError, ModelError

__all__ = ["PopularityAdapter"]


class PopularityAdapter(ModelAdapter, Recommender):
    """Most-interacted items first; the same for every user."""

    format = "popularity"
    primary_file = "counts.parquet"

    def load(self) -> None:
        """Read the counts and sort them once, most popular first (ties by id)."""
        table = pq.read_table(self.directory / "counts.parquet", columns=["item_id", "count"])
        pairs = zip(table["item_id"].to_pylist(), table["count"].to_pylist(), strict=True)
        counts = {str(item): float(count) for item, count in pairs}
        if any(c < 0 for c in counts.values()):
            raise ModelError(f"model {self.name!r}: counts.parquet holds a negative count")
        self.counts = counts
        self.ranked: list[ScoredItem] = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        self._ids = tuple(item for item, _ in self.ranked)
        self._scores = np.array([count for _, count in self.ranked], dtype=np.float64)
        self._scores.flags.writeable = False
        self._tops: dict[int, TopItems] = {}

    def recommend(self, queries: Sequence[RecommendQuery], n: int) -> list[list[ScoredItem]]:
        """The ``n`` most popular items, scored by count."""
        row = self.ranked[:n]
        return [list(row) for _ in queries]

    def top_items(self, queries: Sequence[RecommendQuery], n: int) -> list[TopItems]:
        """The ``n`` most popular items as columns: one answer per ``n``, shared (an
        immutable tuple of ids and a read-only array), so the blender can remember it."""
        row = self._tops.get(n)
        if row is None:
            row = self._tops[n] = TopItems(self._ids[:n], self._scores[:n])
        return [row for _ in queries]

    def item_ids(self) -> Sequence[str]:
        """Every counted item, most popular first."""
        return self._ids

    def predict(self, instances: Sequence[Any]) -> list[Any]:
        """The count of each item id (0 for items never seen)."""
        out: list[Any] = []
        for index, item in enumerate(instances):
            if not isinstance(item, str):
                raise InputError(f"instances.{index}", f"expected an item id string, got {item!r}")
            out.append(self.counts.get(item, 0.0))
        return out
