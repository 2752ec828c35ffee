"""The durable item catalogue: items, their versions and tombstones, in SQLite.

Why SQLite: an acknowledged change must survive a restart of the whole service,
a batch must land all or nothing, and every ingress must be able to read the
changes since the version it last saw, in order. An embedded transactional store
gives all three without running a server: each write is one transaction, committed
to a write-ahead log that is fsync'ed before the call returns (``journal_mode=WAL``,
``synchronous=FULL``), and the ``version`` column is indexed for the change feed.
Keep the file on a local disk: SQLite's locking is not safe on network filesystems.

Every change takes the next ``version`` (a batch of n items takes n of them, so a
page of :meth:`CatalogStore.changes_since` never ends inside a batch). An item's
row holds its latest state and the version that made it; a deleted item keeps its
row as a tombstone (``deleted = 1``), so the change feed reports deletions. The
feed therefore gives the latest state of every item changed since a version, not
every intermediate state, which is all a replica needs to catch up.

The current version is read inside each write transaction rather than cached, so
several processes may share one file safely. Methods block (fsync): async callers
run them in a worker thread. Plain Python: no Ray.

Request bodies are validated with pydantic by :func:`parse_item`, :func:`parse_patch`
and :func:`parse_batch`, which raise ``InputError`` naming the field at fault
(``items.3.category``) before anything is written.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pyarrow.parquet as pq
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
from models.errors import BlendserveError, ConfigError, InputError

__all__ = [
    "ATTRIBUTES_MAX_BYTES",
    "ATTRIBUTES_MAX_KEYS",
    "CatalogChange",
    "CatalogItem",
    "CatalogStore",
    "ItemNotFoundError",
    "ItemPatch",
    "parse_batch",
    "parse_item",
    "parse_patch",
]

ATTRIBUTES_MAX_KEYS = 50
"""Most attributes one item may carry."""

ATTRIBUTES_MAX_BYTES = 10_000
"""Largest an item's attributes may be, as compact UTF-8 JSON."""

logger = logging.getLogger("ray.serve")

_SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the tables below; a future change migrates from it."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    data TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS items_by_version ON items (version);
"""


class ItemNotFoundError(BlendserveError, KeyError):
    """The catalogue has no live item with this id (it never had one, or it was deleted)."""

    def __init__(self, item_id: str) -> None:
        super().__init__(f"catalog: no item {item_id!r} (missing or deleted)")
        self.item_id = item_id

    def __str__(self) -> str:
        # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


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
        return ItemInfo(self.category, self.available, published, self.title)


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
    _check_unique(items)
    return items


def _check_unique(items: Sequence[CatalogItem]) -> None:
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        earlier = first.setdefault(item.item_id, index)
        if earlier != index:
            raise InputError(
                f"items.{index}.item_id",
                f"repeats {item.item_id!r} of items.{earlier}: one change per item per batch",
            )


class CatalogStore:
    """The durable catalogue: versioned items and tombstones in one SQLite file.

    One connection, guarded by a lock; every method blocks, writes until fsync'ed.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are opened explicitly (BEGIN IMMEDIATE takes
        # the write lock up front, so the version read inside cannot go stale).
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                # Still durable (rollback journal, synchronous=FULL), only slower.
                logger.warning("catalog %s: WAL journal unavailable, using %s", self.path, mode)
            self._conn.execute("PRAGMA synchronous=FULL")
            found = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if found not in (0, _SCHEMA_VERSION):
                self._conn.close()
                raise ConfigError(
                    f"catalog {self.path}: expected schema version {_SCHEMA_VERSION}, got {found}"
                )
            self._conn.executescript(
                f"BEGIN; {_SCHEMA} PRAGMA user_version = {_SCHEMA_VERSION}; COMMIT;"
            )

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @staticmethod
    def _current(conn: sqlite3.Connection) -> int:
        # The row holding the highest version is only ever overwritten with a higher
        # one, so the maximum is the catalogue's version.
        return int(conn.execute("SELECT COALESCE(MAX(version), 0) FROM items").fetchone()[0])

    def version(self) -> int:
        """The catalogue's version: 0 for a new store, then +1 per change."""
        with self._lock:
            return self._current(self._conn)

    def put(self, item: CatalogItem) -> int:
        """Create or replace ``item`` (reviving a deleted one); return the new version."""
        return self.upsert_batch([item])

    def upsert_batch(self, items: Sequence[CatalogItem]) -> int:
        """Create or replace ``items`` in one transaction (all or nothing); return the
        new version, each item taking the next one.

        Raises ``InputError`` (``items.<i>.item_id``) when an id repeats, before writing.
        """
        _check_unique(items)
        with self._write() as conn:
            return self._upsert(conn, items)

    def _upsert(self, conn: sqlite3.Connection, items: Sequence[CatalogItem]) -> int:
        start = self._current(conn)
        conn.executemany(
            "INSERT INTO items (item_id, version, deleted, data) VALUES (?, ?, 0, ?) "
            "ON CONFLICT (item_id) DO UPDATE SET "
            "version = excluded.version, deleted = 0, data = excluded.data",
            (
                (item.item_id, start + offset, item.model_dump_json())
                for offset, item in enumerate(items, 1)
            ),
        )
        return start + len(items)

    def patch(self, item_id: str, patch: ItemPatch) -> int:
        """Replace the fields ``patch`` sets; return the new version.

        Raises ``ItemNotFoundError`` when there is no live item ``item_id``.
        """
        with self._write() as conn:
            item = self._live(conn, item_id)
            if item is None:
                raise ItemNotFoundError(item_id)
            version = self._current(conn) + 1
            conn.execute(
                "UPDATE items SET version = ?, data = ? WHERE item_id = ?",
                (version, patch.apply_to(item).model_dump_json(), item_id),
            )
            return version

    def delete(self, item_id: str) -> int:
        """Delete ``item_id``, leaving a tombstone; return the new version.

        Raises ``ItemNotFoundError`` when there is no live item ``item_id``.
        """
        with self._write() as conn:
            if self._live(conn, item_id) is None:
                raise ItemNotFoundError(item_id)
            version = self._current(conn) + 1
            conn.execute(
                "UPDATE items SET version = ?, deleted = 1, data = NULL WHERE item_id = ?",
                (version, item_id),
            )
            return version

    @staticmethod
    def _live(conn: sqlite3.Connection, item_id: str) -> CatalogItem | None:
        row = conn.execute(
            "SELECT data FROM items WHERE item_id = ? AND deleted = 0", (item_id,)
        ).fetchone()
        return None if row is None else CatalogItem.model_validate_json(row[0])

    def get(self, item_id: str) -> CatalogItem | None:
        """The live item ``item_id``, or ``None`` (never created, or deleted)."""
        with self._lock:
            return self._live(self._conn, item_id)

    def count(self) -> int:
        """How many live items the catalogue holds."""
        with self._lock:
            row = self._conn.execute("SELECT COUNT(*) FROM items WHERE deleted = 0").fetchone()
        return int(row[0])

    def changes_since(self, version: int, limit: int = 10_000) -> tuple[int, list[CatalogChange]]:
        """The latest state of up to ``limit`` items changed after ``version``, oldest
        change first, and the version the caller has then reached: the last change's,
        or the current one when nothing changed. Call again from there for the rest.

        A reached version below ``version`` means the store is older than the caller
        (restored from a backup): the caller should start again from 0.
        """
        if limit < 1:
            raise ValueError(f"limit: expected at least 1, got {limit}")
        with self._lock:
            rows = self._conn.execute(
                "SELECT item_id, version, deleted, data FROM items "
                "WHERE version > ? ORDER BY version LIMIT ?",
                (version, limit),
            ).fetchall()
            reached = rows[-1][1] if rows else self._current(self._conn)
        changes = [
            CatalogChange(
                item_id,
                int(at),
                bool(deleted),
                None if deleted else CatalogItem.model_validate_json(data),
            )
            for item_id, at, deleted, data in rows
        ]
        return int(reached), changes

    def seed_from_parquet(self, path: str | os.PathLike[str]) -> int:
        """Import a Parquet file into a store that has never held an item; return how
        many items it imported (0 when the store was not new).

        Reads ``item_id`` and whichever of ``title``, ``category``, ``published_at``
        (timezone-aware) and ``available`` exist, as one batch. Raises ``ConfigError``
        naming the file, and the row and field at fault.
        """
        if self.version() != 0:
            return 0
        items = _read_seed(Path(path))
        with self._write() as conn:
            if self._current(conn) != 0:  # another process seeded it meanwhile
                return 0
            self._upsert(conn, items)
        return len(items)

    def close(self) -> None:
        """Close the database; the store cannot be used afterwards."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> CatalogStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_SEED_COLUMNS = ("item_id", "title", "category", "published_at", "available")


def _read_seed(source: Path) -> list[CatalogItem]:
    """The items of a seed file, all validated; ``ConfigError`` names the row at fault."""
    try:
        names = pq.read_schema(source).names
        columns = [name for name in _SEED_COLUMNS if name in names]
        rows = pq.read_table(source, columns=columns).to_pylist()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"catalog seed {source}: cannot read Parquet: {exc}") from exc
    if "item_id" not in columns:
        raise ConfigError(f"catalog seed {source}: expected an `item_id` column, got {names}")
    items = []
    for index, row in enumerate(rows):
        data = {key: value for key, value in row.items() if value is not None}
        data["item_id"] = str(row["item_id"])
        if "category" in data:
            data["category"] = str(data["category"])
        if isinstance(data.get("published_at"), datetime) and data["published_at"].tzinfo is None:
            raise ConfigError(
                f"catalog seed {source}: row {index}: published_at: expected a timestamp with a "
                "time zone (e.g. UTC), got a naive one"
            )
        try:
            items.append(parse_item(data))
        except InputError as exc:
            raise ConfigError(f"catalog seed {source}: row {index}: {exc}") from exc
    try:
        _check_unique(items)
    except InputError as exc:
        raise ConfigError(f"catalog seed {source}: {exc}") from exc
    return items
