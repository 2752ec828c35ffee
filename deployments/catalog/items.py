"""A catalogue item as clients send it and replicas apply it, validated.

Request bodies are validated with pydantic by :func:`parse_item`, :func:`parse_patch`
and :func:`parse_batch`, which raise ``InputError`` naming the field at fault
(``items.3.category``) before anything is written. The storage backend
(``store.py``) takes only items that passed here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from blending.catalog import ItemInfo
from models.errors import BlendserveError, InputError

__all__ = [
    "ATTRIBUTES_MAX_BYTES",
    "ATTRIBUTES_MAX_KEYS",
    "CatalogChange",
    "CatalogItem",
    "ItemNotFoundError",
    "ItemPatch",
    "check_unique",
    "parse_batch",
    "parse_item",
    "parse_patch",
]

ATTRIBUTES_MAX_KEYS = 50
"""Most attributes one item may carry."""

ATTRIBUTES_MAX_BYTES = 10_000
"""Largest an item's attributes may be, as compact UTF-8 JSON."""


class ItemNotFoundError(BlendserveError, KeyError):
    """The catalogue has no live item with this id (it never had one, or it was deleted)."""

    def __init__(self, item_id: str) -> None:
        super().__init__(f"catalog: no item {item_id!r} (missing or deleted)")
        self.item_id = item_id

    def __str__(self) -> str:
        # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class CatalogUnavailableError(BlendserveError):
    """The catalogue could not be reached (its replica died mid-call, its database is
    down). A write that failed so may or may not have been applied: the client retries
    it, and a retried put or delete is idempotent."""


def _item_id(value: str) -> str:
    if not value.isprintable() or "/" in value:
        raise ValueError(f"expected printable characters and no '/', got {value!r}")
    return value


def _attribute_value(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value!r}")
        return value
    raise ValueError(f"expected a string, number, boolean or null, got {type(value).__name__}")


def _attributes_size(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > ATTRIBUTES_MAX_BYTES:
        raise ValueError(f"expected at most {ATTRIBUTES_MAX_BYTES} bytes of JSON, got {size}")
    return value


ItemId = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(_item_id)]
Title = Annotated[str, StringConstraints(max_length=500)]
Category = Annotated[str, StringConstraints(max_length=100)]
AttributeValue = Annotated[
    Any,
    PlainValidator(_attribute_value),
    WithJsonSchema({"type": ["string", "number", "boolean", "null"]}),
]
Attributes = Annotated[
    dict[Annotated[str, StringConstraints(max_length=64)], AttributeValue],
    Field(max_length=ATTRIBUTES_MAX_KEYS),
    AfterValidator(_attributes_size),
]


class CatalogItem(BaseModel):
    """One item of the catalogue, as the admin API takes it and the store keeps it."""

    model_config = ConfigDict(extra="forbid")

    item_id: ItemId = Field(
        description="The id models return: 1 to 128 printable characters, no `/`."
    )
    title: Title = Field("", description="A human-readable title, at most 500 characters.")
    category: Category | None = Field(
        None, description="What `diversify` caps per list (at most 100 characters); null: none."
    )
    published_at: AwareDatetime | None = Field(
        None, description="When it was published: ISO 8601 with a UTC offset, or unix seconds."
    )
    available: bool = Field(True, description="Whether it may be shown; `filter` drops it if not.")
    attributes: Attributes = Field(
        default_factory=dict,
        description=(
            f"Free facts: at most {ATTRIBUTES_MAX_KEYS} keys of at most 64 characters, values "
            f"strings, finite numbers, booleans or null, at most {ATTRIBUTES_MAX_BYTES} bytes "
            "of JSON."
        ),
    )

    def info(self) -> ItemInfo:
        """What the blender needs of this item."""
        published = None if self.published_at is None else self.published_at.timestamp()
        return ItemInfo(self.category, self.available, published, self.attributes)


class ItemPatch(BaseModel):
    """A partial update: the fields given replace the item's (``attributes`` as a whole)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"available": False}]}
    )

    title: Title | None = Field(None, description="A new title.")
    category: Category | None = Field(None, description="A new category; null clears it.")
    published_at: AwareDatetime | None = Field(
        None, description="A new publication time; null clears it."
    )
    available: bool | None = Field(None, description="Whether it may be shown.")
    attributes: Attributes | None = Field(None, description="New attributes, replacing all.")

    @field_validator("title", "available", "attributes")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Only an explicit null reaches this check (defaults are not validated).
        if value is None:
            raise ValueError("may not be null")
        return value

    @model_validator(mode="after")
    def _changes_something(self) -> ItemPatch:
        if not self.model_fields_set:
            raise ValueError(f"expected at least one of {', '.join(type(self).model_fields)}")
        return self

    def apply_to(self, item: CatalogItem) -> CatalogItem:
        """``item`` with this patch's fields replaced."""
        return item.model_copy(update={name: getattr(self, name) for name in self.model_fields_set})


@dataclass(frozen=True)
class CatalogChange:
    """An item's latest state in the change feed; ``item`` is ``None`` when deleted."""

    item_id: str
    version: int
    deleted: bool
    item: CatalogItem | None

    def as_update(self) -> tuple[str, ItemInfo | None]:
        """The change as :meth:`blending.catalog.LiveCatalog.apply` takes it."""
        return self.item_id, None if self.item is None else self.item.info()


def _input_error(exc: ValidationError, where: str) -> InputError:
    error = exc.errors()[0]
    path = ".".join([where] * bool(where) + [str(part) for part in error["loc"]])
    return InputError(path or "body", error["msg"].removeprefix("Value error, "))


def parse_item(data: Any, where: str = "") -> CatalogItem:
    """Validate one item; ``where`` prefixes field paths (``items.3``).

    Raises ``InputError`` naming the first field at fault (``items.3.category``).
    """
    try:
        return CatalogItem.model_validate(data)
    except ValidationError as exc:
        raise _input_error(exc, where) from exc


def parse_patch(data: Any, where: str = "") -> ItemPatch:
    """Validate a partial update; raises ``InputError`` naming the field at fault."""
    try:
        return ItemPatch.model_validate(data)
    except ValidationError as exc:
        raise _input_error(exc, where) from exc


def parse_batch(data: Any, max_items: int) -> list[CatalogItem]:
    """Validate a batch body ``{"items": [...]}`` of at most ``max_items`` items.

    Raises ``InputError`` naming the first field at fault: an unknown top-level key,
    ``items`` missing, not a list or too long, an invalid ``items.<i>.<field>``, or an
    id repeated within the batch.
    """
    if not isinstance(data, dict):
        raise InputError("body", f'expected {{"items": [...]}}, got {type(data).__name__}')
    extra = sorted(str(key) for key in data if key != "items")
    if extra:
        raise InputError(extra[0], "unexpected field beside `items`")
    if "items" not in data:
        raise InputError("items", "required: a list of items")
    entries = data["items"]
    if not isinstance(entries, list):
        raise InputError("items", f"expected a list of items, got {type(entries).__name__}")
    if len(entries) > max_items:
        raise InputError("items", f"expected at most {max_items} items, got {len(entries)}")
    items = [parse_item(entry, f"items.{index}") for index, entry in enumerate(entries)]
    check_unique(items)
    return items


def check_unique(items: Sequence[CatalogItem]) -> None:
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        earlier = first.setdefault(item.item_id, index)
        if earlier != index:
            raise InputError(
                f"items.{index}.item_id",
                f"repeats {item.item_id!r} of items.{earlier}: one change per item per batch",
            )
