"""What the blender knows about items: their category and whether they may be shown.

``filter`` and ``diversify`` nodes read an :class:`ItemCatalog`. The static one here
is loaded once from Parquet; a live catalogue with an admin API implements the same
protocol.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow.parquet as pq

from models.errors import ConfigError

__all__ = ["ItemCatalog", "ItemInfo", "StaticCatalog"]


@dataclass(frozen=True)
class ItemInfo:
    """The facts about one item that blending rules use."""

    category: str | None = None
    available: bool = True


class ItemCatalog(Protocol):
    """Looks items up by id; ``None`` for an item it does not know."""

    def get(self, item_id: str) -> ItemInfo | None:
        """The item's facts, or ``None``."""
        ...


class StaticCatalog:
    """An immutable in-memory catalogue."""

    def __init__(self, items: dict[str, ItemInfo]) -> None:
        self._items = items

    def get(self, item_id: str) -> ItemInfo | None:
        """The item's facts, or ``None``."""
        return self._items.get(item_id)

    def __len__(self) -> int:
        return len(self._items)

    @classmethod
    def from_parquet(cls, path: str | os.PathLike[str]) -> StaticCatalog:
        """Read ``item_id`` and optional ``category`` and ``available`` columns.

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
        return cls(
            {
                item: ItemInfo(None if cat is None else str(cat), bool(avail))
                for item, cat, avail in zip(ids, categories, available, strict=True)
            }
        )
