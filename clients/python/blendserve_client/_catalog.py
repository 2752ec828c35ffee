"""Catalogue items and the answers of the catalogue's admin routes."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

from blendserve_client._json import Reader

__all__ = [
    "UNSET",
    "CatalogChange",
    "CatalogItem",
    "CatalogStatus",
    "PublishedAt",
    "Unset",
]

PublishedAt: TypeAlias = datetime | str | float | int
"""A publication time: an aware ``datetime``, ISO 8601 text with an offset, or unix seconds."""


class Unset(enum.Enum):
    """The type of :data:`UNSET`: "leave this field as it is" in :meth:`Client.patch_item`."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Literal[Unset.UNSET] = Unset.UNSET
"""A patch argument left out: the item keeps its value (``None`` would clear it)."""


def published_json(value: PublishedAt | None) -> str | float | int | None:
    """``published_at`` as the API takes it."""
    return value.isoformat() if isinstance(value, datetime) else value


@dataclass(frozen=True)
class CatalogItem:
    """One catalogue item: what may be shown, and the facts blends filter on.

    >>> CatalogItem("a09999", title="Breaking", category="tech").available
    True
    """

    item_id: str
    """The id models return: 1 to 128 printable characters, no ``/``."""
    title: str = ""
    """Human-readable title (at most 500 characters)."""
    category: str | None = None
    """What ``diversify`` caps per list; None: none."""
    published_at: datetime | None = None
    """When it was published (aware); what ``fresh`` ranks by."""
    available: bool = True
    """Whether it may be shown: False hides it from every answer within a second."""
    attributes: dict[str, Any] = field(default_factory=dict)
    """Free facts: at most 50 keys, values strings, finite numbers, booleans or null."""

    def _to_json(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "title": self.title,
            "category": self.category,
            "published_at": published_json(self.published_at),
            "available": self.available,
            "attributes": dict(self.attributes),
        }

    @classmethod
    def _from_json(cls, data: Reader) -> CatalogItem:
        return cls(
            item_id=data.text("item_id"),
            title=data.opt_text("title") or "",
            category=data.opt_text("category"),
            published_at=data.opt_datetime("published_at"),
            available=data.flag("available", True),
            attributes=data.mapping("attributes", True),
        )


def item_json(item: CatalogItem | Mapping[str, Any]) -> dict[str, Any]:
    """An item of a batch as the API takes it: a :class:`CatalogItem` or a mapping."""
    if isinstance(item, CatalogItem):
        return item._to_json()
    if isinstance(item, Mapping):
        body = dict(item)
        if "published_at" in body:
            body["published_at"] = published_json(body["published_at"])
        return body
    raise TypeError(f"expected a CatalogItem or a mapping, got {type(item).__name__}")


@dataclass(frozen=True)
class CatalogChange:
    """The answer of a catalogue write: the catalogue's version once it is durable.

    >>> client.delete_item("a00042").version  # doctest: +SKIP
    2002
    """

    version: int
    """The catalogue's version after the change (every change takes the next one)."""
    count: int = 1
    """Items written: 1, or the batch's size."""
    item: CatalogItem | None = None
    """The item as it is now (:meth:`Client.patch_item` only)."""

    @classmethod
    def _from_json(cls, data: Reader) -> CatalogChange:
        item = CatalogItem._from_json(data.child("item")) if data.has("item") else None
        return cls(version=data.integer("version"), count=data.integer("count", 1), item=item)


@dataclass(frozen=True)
class CatalogStatus:
    """The catalogue's version and size, and model items it does not know.

    >>> client.catalog_status().items  # doctest: +SKIP
    2000
    """

    version: int
    """The store's version."""
    items: int
    """Live items in the store."""
    replica_version: int | None
    """The version the answering ingress replica has applied (catches up within 1 s)."""
    unknown_model_items: dict[str, Any]
    """Per model: items it recommends that the catalogue does not know."""

    @classmethod
    def _from_json(cls, data: Reader) -> CatalogStatus:
        return cls(
            version=data.integer("version"),
            items=data.integer("items"),
            replica_version=data.opt_integer("replica_version"),
            unknown_model_items=data.mapping("unknown_model_items", True),
        )
