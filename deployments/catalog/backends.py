"""Which catalogue backend a location names: a ``postgresql://`` (or ``postgres://``)
URL opens PostgreSQL, anything else is a SQLite file."""

from __future__ import annotations

import os

from deployments.catalog.store import CatalogStore

__all__ = ["is_postgres_url", "live_item_ids", "open_catalog_store"]


def is_postgres_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than a SQLite file."""
    return str(location).startswith(("postgresql://", "postgres://"))


def open_catalog_store(location: str | os.PathLike[str], app: str = "blendserve") -> CatalogStore:
    """The catalogue of application ``app`` at ``location``: a PostgreSQL URL (the app
    picks its schema) or a SQLite file (one per app already)."""
    if is_postgres_url(location):
        from deployments.catalog.postgres_store import PostgresCatalogStore  # psycopg: only here

        return PostgresCatalogStore(str(location), app)
    from deployments.catalog.sqlite_store import SqliteCatalogStore

    return SqliteCatalogStore(location)


def live_item_ids(location: str | os.PathLike[str], app: str = "blendserve") -> set[str]:
    """The ids of the live items of the catalogue at ``location``, without writing to a
    SQLite file (for checks beside a serving catalogue, such as ``blendserve publish``)."""
    if is_postgres_url(location):
        from deployments.catalog.postgres_store import postgres_live_item_ids

        return postgres_live_item_ids(str(location), app)
    from deployments.catalog.sqlite_store import sqlite_live_item_ids

    return sqlite_live_item_ids(location)
