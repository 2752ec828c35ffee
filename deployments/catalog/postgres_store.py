"""The catalogue in PostgreSQL: state off the catalogue replica's node.

Any number of catalogue replicas, on any nodes, share one database; each application
keeps its table in a schema of its own (``catalog_<app>``). A write transaction first
takes ``LOCK TABLE items IN SHARE ROW EXCLUSIVE MODE``, which writers exclude each
other with and readers ignore, so versions are allocated and committed in order
across replicas. A commit returns once PostgreSQL has flushed its WAL
(``synchronous_commit`` as the server sets it; ``on`` by default), and survives the
catalogue replicas, their nodes and a restart of the server.

A lost connection (the server restarted, a network blip) fails the call in flight and
is opened again by the next one; a read is retried once on the new connection. The
password, when there is one, belongs in libpq's environment (``PGPASSWORD``, a
``PGPASSFILE``) rather than in the URL in a config file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from deployments.catalog.store import SCHEMA, CatalogStore, Cursor
from models.errors import ConfigError

__all__ = ["PostgresCatalogStore", "postgres_live_item_ids"]

_APP_NAME = re.compile(r"[A-Za-z0-9_-]{1,50}")


def schema_name(app: str) -> str:
    """The PostgreSQL schema of application ``app``'s catalogue."""
    if not _APP_NAME.fullmatch(app):
        raise ConfigError(
            f"catalog: application name {app!r} cannot name a PostgreSQL schema "
            "(letters, digits, '_' and '-', at most 50)"
        )
    return "catalog_" + app.replace("-", "_").lower()


class PostgresCatalogStore(CatalogStore):
    """Application ``app``'s catalogue in the PostgreSQL database at ``url``."""

    _placeholder = "%s"
    _conn: psycopg.Connection[Any]

    def __init__(self, url: str, app: str, connect_timeout_s: float = 10.0) -> None:
        super().__init__()
        self.url = url
        self.schema = schema_name(app)
        self.location = f"{_without_password(url)} (schema {self.schema})"
        self._connect_timeout_s = connect_timeout_s
        self._conn = self._connect()
        with self._conn.transaction():
            # Two replicas starting at once may both create: the lock makes it one.
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.schema,))
            self._conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            self._conn.execute(self._in_schema())
            for statement in filter(str.strip, SCHEMA.split(";")):
                self._conn.execute(statement)

    def _in_schema(self) -> sql.Composed:
        return sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema))

    def _connect(self) -> psycopg.Connection:
        try:
            conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self._connect_timeout_s))
            )
        except psycopg.OperationalError as exc:
            raise ConfigError(f"catalog {self.location}: cannot connect: {exc}") from exc
        conn.execute(self._in_schema())  # absent before the first start: created next
        return conn

    def _connection(self) -> psycopg.Connection:
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    @contextmanager
    def _reading(self) -> Iterator[Cursor]:
        # Reads are single statements in autocommit mode (no snapshot held between
        # calls); the shared SQL orders them so that this is enough.
        with self._connection().cursor() as cursor:
            yield _RetryingCursor(cursor, self)

    @contextmanager
    def _writing(self) -> Iterator[Cursor]:
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cursor:
            cursor.execute("LOCK TABLE items IN SHARE ROW EXCLUSIVE MODE")
            yield cursor


class _RetryingCursor:
    """A read cursor that opens the connection again and retries once when it was lost
    (the server restarted since the last call)."""

    def __init__(self, cursor: psycopg.Cursor[Any], store: PostgresCatalogStore) -> None:
        self._cursor, self._store = cursor, store

    def execute(self, statement: Any, params: Any = None, /) -> Any:
        """Run one statement, on a new connection once if the old one was lost."""
        try:
            return self._cursor.execute(statement, params)
        except psycopg.OperationalError:
            if not self._store._conn.broken:
                raise
            self._cursor = self._store._connection().cursor()
            return self._cursor.execute(statement, params)

    def executemany(self, statement: Any, params: Any, /) -> Any:
        """Refused: reads only."""
        raise TypeError("a read cursor does not write")

    def fetchone(self) -> Any:
        """The next row, or None."""
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        """The remaining rows."""
        return self._cursor.fetchall()


def postgres_live_item_ids(url: str, app: str) -> set[str]:
    """The ids of application ``app``'s live items, read without creating anything (for
    checks beside a serving catalogue, such as ``blendserve publish``)."""
    items = sql.SQL("SELECT item_id FROM {}.items WHERE deleted = 0").format(
        sql.Identifier(schema_name(app))
    )
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            return {row[0] for row in conn.execute(items).fetchall()}
    except psycopg.Error as exc:
        where = _without_password(url)
        raise ConfigError(f"catalog {where}: cannot read the live catalogue: {exc}") from exc


def _without_password(url: str) -> str:
    """``url`` as it may appear in a log line."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
