"""The durable item catalogue: items, their versions and tombstones, in a SQL database.

Two backends share everything here: SQLite (``sqlite_store.py``), the embedded
default, one file on the catalogue replica's disk; and PostgreSQL
(``postgres_store.py``), a server that several catalogue replicas on several nodes
share, so that losing a node loses no catalogue. ``backends.py`` picks one from a
URL.

What both guarantee: an acknowledged change survives a restart of the whole service
(each write is one transaction, durable before the call returns); a batch lands all
or nothing; and anyone can read the changes since the version they last saw, in
order. Every change takes the next ``version`` (a batch of n items takes n of them, so
a page of :meth:`CatalogStore.changes_since` never ends inside a batch). Writers are
serialised (each backend takes its write lock first) and the current version is read
inside the write transaction, so versions are committed in order: a reader never sees
version n + 1 before version n, however many processes write. An item's row holds its
latest state and the version that made it; a deleted item keeps its row as a tombstone
(``deleted = 1``), so the change feed reports deletions. The feed gives the latest
state of every item changed since a version, not every intermediate state, which is
all a replica needs to catch up.

Methods block (fsync, network): async callers run them in a worker thread. Plain
Python: no Ray. The items themselves, and their validation, are in ``items.py``.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pyarrow.parquet as pq

from deployments.catalog.items import (
    CatalogChange,
    CatalogItem,
    ItemNotFoundError,
    ItemPatch,
    check_unique,
    parse_item,
)
from models.errors import ConfigError, InputError

__all__ = ["CatalogStore", "Cursor", "read_seed"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    data TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS items_by_version ON items (version);
"""
"""The one table, in SQL both backends accept; the version index serves the feed."""


class Cursor(Protocol):
    """What the shared SQL needs of a DB-API cursor (sqlite3's and psycopg's both fit)."""

    def execute(self, sql: Any, params: Any = ..., /) -> Any:
        """Run one statement."""

    def executemany(self, sql: Any, params: Any, /) -> Any:
        """Run one statement per parameter row."""

    def fetchone(self) -> Any:
        """The next row, or None."""

    def fetchall(self) -> list[Any]:
        """The remaining rows."""


class _Connection(Protocol):
    def close(self) -> None: ...


class CatalogStore(ABC):
    """The durable catalogue's operations, written once over a DB-API cursor.

    A backend supplies a cursor for a read and a transaction for a write (its write
    lock already taken), and the parameter style of its driver. Every method blocks;
    one store may be shared by threads.
    """

    location: str
    """Where the data lives (a file or a server), for messages."""

    _conn: _Connection

    _placeholder = "?"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def _sql(self, statement: str) -> str:
        return statement if self._placeholder == "?" else statement.replace("?", self._placeholder)

    @abstractmethod
    @contextmanager
    def _reading(self) -> Iterator[Cursor]:
        """A cursor for reads (called with ``self._lock`` held)."""

    @abstractmethod
    @contextmanager
    def _writing(self) -> Iterator[Cursor]:
        """A transaction that holds the write lock: committed when the block ends,
        rolled back when it raises (called with ``self._lock`` held)."""

    def close(self) -> None:
        """Close the database connection; the store cannot be used afterwards."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def _read(self) -> Iterator[Cursor]:
        with self._lock, self._reading() as cursor:
            yield cursor

    @contextmanager
    def _write(self) -> Iterator[Cursor]:
        with self._lock, self._writing() as cursor:
            yield cursor

    @staticmethod
    def _current(cursor: Cursor) -> int:
        # The row holding the highest version is only ever overwritten with a higher
        # one, so the maximum is the catalogue's version.
        cursor.execute("SELECT COALESCE(MAX(version), 0) FROM items")
        return int(cursor.fetchone()[0])

    def version(self) -> int:
        """The catalogue's version: 0 for a new store, then +1 per change."""
        with self._read() as cursor:
            return self._current(cursor)

    def put(self, item: CatalogItem) -> int:
        """Create or replace ``item`` (reviving a deleted one); return the new version."""
        return self.upsert_batch([item])

    def upsert_batch(self, items: Sequence[CatalogItem]) -> int:
        """Create or replace ``items`` in one transaction (all or nothing); return the
        new version, each item taking the next one.

        Raises ``InputError`` (``items.<i>.item_id``) when an id repeats, before writing.
        """
        check_unique(items)
        with self._write() as cursor:
            return self._upsert(cursor, items)

    def _upsert(self, cursor: Cursor, items: Sequence[CatalogItem]) -> int:
        start = self._current(cursor)
        cursor.executemany(
            self._sql(
                "INSERT INTO items (item_id, version, deleted, data) VALUES (?, ?, 0, ?) "
                "ON CONFLICT (item_id) DO UPDATE SET "
                "version = excluded.version, deleted = 0, data = excluded.data"
            ),
            [
                (item.item_id, start + offset, item.model_dump_json())
                for offset, item in enumerate(items, 1)
            ],
        )
        return start + len(items)

    def patch(self, item_id: str, patch: ItemPatch) -> int:
        """Replace the fields ``patch`` sets; return the new version.

        Raises ``ItemNotFoundError`` when there is no live item ``item_id``.
        """
        with self._write() as cursor:
            item = self._live(cursor, item_id)
            if item is None:
                raise ItemNotFoundError(item_id)
            version = self._current(cursor) + 1
            cursor.execute(
                self._sql("UPDATE items SET version = ?, data = ? WHERE item_id = ?"),
                (version, patch.apply_to(item).model_dump_json(), item_id),
            )
            return version

    def delete(self, item_id: str) -> int:
        """Delete ``item_id``, leaving a tombstone; return the new version.

        Raises ``ItemNotFoundError`` when there is no live item ``item_id``.
        """
        with self._write() as cursor:
            if self._live(cursor, item_id) is None:
                raise ItemNotFoundError(item_id)
            version = self._current(cursor) + 1
            cursor.execute(
                self._sql(
                    "UPDATE items SET version = ?, deleted = 1, data = NULL WHERE item_id = ?"
                ),
                (version, item_id),
            )
            return version

    def _live(self, cursor: Cursor, item_id: str) -> CatalogItem | None:
        cursor.execute(
            self._sql("SELECT data FROM items WHERE item_id = ? AND deleted = 0"), (item_id,)
        )
        row = cursor.fetchone()
        return None if row is None else CatalogItem.model_validate_json(row[0])

    def get(self, item_id: str) -> CatalogItem | None:
        """The live item ``item_id``, or ``None`` (never created, or deleted)."""
        with self._read() as cursor:
            return self._live(cursor, item_id)

    def count(self) -> int:
        """How many live items the catalogue holds."""
        with self._read() as cursor:
            cursor.execute("SELECT COUNT(*) FROM items WHERE deleted = 0")
            return int(cursor.fetchone()[0])

    def changes_since(self, version: int, limit: int = 10_000) -> tuple[int, list[CatalogChange]]:
        """The latest state of up to ``limit`` items changed after ``version``, oldest
        change first, and the version the caller has then reached: the last change's,
        or the current one when nothing changed. Call again from there for the rest.

        A reached version below ``version`` means the store is older than the caller
        (restored from a backup): the caller should start again from 0.
        """
        if limit < 1:
            raise ValueError(f"limit: expected at least 1, got {limit}")
        with self._read() as cursor:
            # The current version first: every version up to it is committed (writers
            # are serialised), while one committed after it would be missed if the
            # rows were read first and the version after them.
            current = self._current(cursor)
            cursor.execute(
                self._sql(
                    "SELECT item_id, version, deleted, data FROM items "
                    "WHERE version > ? AND version <= ? ORDER BY version LIMIT ?"
                ),
                (version, current, limit),
            )
            rows = cursor.fetchall()
        reached = rows[-1][1] if len(rows) == limit else current
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
        (timezone-aware) and ``available`` exist, as one batch; every other column
        becomes the items' attributes. Raises ``ConfigError`` naming the file, and the
        row and field at fault.
        """
        if self.version() != 0:
            return 0
        items = read_seed(Path(path))
        with self._write() as cursor:
            if self._current(cursor) != 0:  # another replica seeded it meanwhile
                return 0
            self._upsert(cursor, items)
        return len(items)

    def __enter__(self) -> CatalogStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_SEED_COLUMNS = ("item_id", "title", "category", "published_at", "available")


def _attribute(value: object) -> object:
    """A seed cell as an attribute value: lists joined with ``|`` (as in ``Action|Drama``),
    times as ISO 8601 text, scalars as they are."""
    if isinstance(value, list | tuple):
        return "|".join(str(v) for v in value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def read_seed(source: Path) -> list[CatalogItem]:
    """The items of a seed file, all validated; ``ConfigError`` names the row at fault."""
    try:
        names = pq.read_schema(source).names
        rows = pq.read_table(source).to_pylist()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"catalog seed {source}: cannot read Parquet: {exc}") from exc
    if "item_id" not in names:
        raise ConfigError(f"catalog seed {source}: expected an `item_id` column, got {names}")
    items = []
    for index, row in enumerate(rows):
        data = {key: row[key] for key in _SEED_COLUMNS if row.get(key) is not None}
        # Every other column is a fact about the item (a team's own attributes, all of
        # an item's categories): kept as its attributes, not dropped.
        attributes = {
            key: _attribute(value) for key, value in row.items() if key not in _SEED_COLUMNS
        }
        if attributes:
            data["attributes"] = attributes
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
        check_unique(items)
    except InputError as exc:
        raise ConfigError(f"catalog seed {source}: {exc}") from exc
    return items
