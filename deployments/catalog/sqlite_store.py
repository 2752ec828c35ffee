"""The catalogue in one SQLite file: the embedded default, no server to run.

Each write is a ``BEGIN IMMEDIATE`` transaction (the write lock up front, so the
version read inside cannot go stale), committed to a write-ahead log that is fsync'ed
before the call returns (``journal_mode=WAL``, ``synchronous=FULL``). Several
processes on one machine may share the file. Keep it on a local disk: SQLite's
locking is not safe on network filesystems, so one catalogue replica owns it, and the
catalogue is as durable as that node's disk (use PostgreSQL to survive losing it).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from deployments.catalog.store import SCHEMA, CatalogStore, Cursor
from models.errors import ConfigError

__all__ = ["SqliteCatalogStore", "sqlite_live_item_ids"]

logger = logging.getLogger("ray.serve")

_SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the table; a future change migrates from it."""


class SqliteCatalogStore(CatalogStore):
    """The catalogue in the SQLite file ``path``: one connection, guarded by a lock."""

    _conn: sqlite3.Connection

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self.location = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are opened explicitly.
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
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
            f"BEGIN; {SCHEMA} PRAGMA user_version = {_SCHEMA_VERSION}; COMMIT;"
        )

    @contextmanager
    def _reading(self) -> Iterator[Cursor]:
        with closing(self._conn.cursor()) as cursor:
            yield cursor

    @contextmanager
    def _writing(self) -> Iterator[Cursor]:
        with closing(self._conn.cursor()) as cursor:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")


def sqlite_live_item_ids(path: str | os.PathLike[str]) -> set[str]:
    """The ids of a catalogue file's live items, read without writing to it (for checks
    run beside a serving catalogue, such as ``blendserve publish``)."""
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as conn:
            rows = conn.execute("SELECT item_id FROM items WHERE deleted = 0").fetchall()
    except sqlite3.Error as exc:
        raise ConfigError(f"catalog {path}: cannot read the live catalogue: {exc}") from exc
    return {row[0] for row in rows}
