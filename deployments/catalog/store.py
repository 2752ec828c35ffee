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
The items themselves, and their validation, are in ``items.py``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path

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

__all__ = ["CatalogStore", "live_item_ids"]

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
        check_unique(items)
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


def live_item_ids(path: str | os.PathLike[str]) -> set[str]:
    """The ids of a catalogue file's live items, read without writing to it (for checks
    run beside a serving catalogue, such as ``blendserve publish``)."""
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as conn:
            rows = conn.execute("SELECT item_id FROM items WHERE deleted = 0").fetchall()
    except sqlite3.Error as exc:
        raise ConfigError(f"catalog {path}: cannot read the live catalogue: {exc}") from exc
    return {row[0] for row in rows}


def _attribute(value: object) -> object:
    """A seed cell as an attribute value: lists joined with ``|`` (as in ``Action|Drama``),
    times as ISO 8601 text, scalars as they are."""
    if isinstance(value, list | tuple):
        return "|".join(str(v) for v in value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _read_seed(source: Path) -> list[CatalogItem]:
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
