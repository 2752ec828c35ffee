"""Typed messages between an ingress and the ``Catalog`` deployment."""

from __future__ import annotations

from dataclasses import dataclass, field

from blending.catalog import ItemInfo
from deployments.catalog.items import CatalogItem

__all__ = ["CatalogCounts", "CatalogWrite", "ChangePage"]


@dataclass(frozen=True)
class CatalogWrite:
    """A durable change: the catalogue version it made, and the item after a patch."""

    version: int
    item: CatalogItem | None = None


@dataclass(frozen=True)
class ChangePage:
    """Changes after a version, oldest first, as a ``LiveCatalog`` applies them (an
    item id, and what blending needs of the item, or None when it was deleted)."""

    version: int
    changes: list[tuple[str, ItemInfo | None]] = field(default_factory=list)


@dataclass(frozen=True)
class CatalogCounts:
    """The catalogue's version and how many live items it holds."""

    version: int
    items: int
