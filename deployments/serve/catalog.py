"""The live catalogue deployment: the replicas that write the application's durable item
store and hand out changes since a version.

Writes come from the ingress's admin routes (already validated there); every
ingress replica polls ``changes_since`` a few times a second and applies the
changes to its in-memory ``LiveCatalog``, whose ``filter`` is the last step of every
blend, so a deleted item leaves every answer within a second of the deletion being
acknowledged. With the SQLite store, one replica on purpose: its file is on one
node's disk. With PostgreSQL (``live_catalog.url``), several replicas share the
database, which allocates one version sequence across them; either store makes
each acknowledged change durable before the answer.
"""

from __future__ import annotations

import asyncio
import logging

from ray import serve

from deployments.catalog.backends import open_catalog_store
from deployments.catalog.items import CatalogItem, ItemPatch
from deployments.catalog.messages import CatalogCounts, CatalogWrite, ChangePage
from deployments.catalog.store import CatalogStore
from deployments.config.data import LiveCatalogConfig
from deployments.config.paths import resolve_store

__all__ = ["Catalog"]

logger = logging.getLogger("ray.serve")


@serve.deployment(num_replicas=1, max_ongoing_requests=256)
class Catalog:
    """Writes and reads the catalogue of one application (SQLite or PostgreSQL)."""

    def __init__(self, settings: LiveCatalogConfig, seed: str | None) -> None:
        app = serve.get_replica_context().app_name or "default"
        self.store: CatalogStore = open_catalog_store(settings.location(app), app)
        seeded = 0
        if seed is not None and resolve_store(seed).is_file():
            seeded = self.store.seed_from_parquet(resolve_store(seed))
        logger.info(
            "catalogue %s: %d items at version %d%s",
            self.store.location,
            self.store.count(),
            self.store.version(),
            f" ({seeded} imported from {seed})" if seeded else "",
        )

    async def put(self, item: CatalogItem) -> CatalogWrite:
        """Create or replace an item; the new catalogue version."""
        return CatalogWrite(await asyncio.to_thread(self.store.put, item))

    async def patch(self, item_id: str, patch: ItemPatch) -> CatalogWrite:
        """Change some fields of an item; the new version and the item."""
        version = await asyncio.to_thread(self.store.patch, item_id, patch)
        return CatalogWrite(version, await asyncio.to_thread(self.store.get, item_id))

    async def delete(self, item_id: str) -> CatalogWrite:
        """Delete an item (a tombstone others see as a change); the new version."""
        return CatalogWrite(await asyncio.to_thread(self.store.delete, item_id))

    async def upsert_batch(self, items: list[CatalogItem]) -> CatalogWrite:
        """Create or replace many items in one transaction; the new version."""
        return CatalogWrite(await asyncio.to_thread(self.store.upsert_batch, items))

    async def get(self, item_id: str) -> CatalogItem | None:
        """One live item, or None."""
        return await asyncio.to_thread(self.store.get, item_id)

    async def changes_since(self, version: int) -> ChangePage:
        """Changes after ``version``, oldest first, as blending applies them."""
        reached, changes = await asyncio.to_thread(self.store.changes_since, version)
        return ChangePage(reached, [change.as_update() for change in changes])

    async def status(self) -> CatalogCounts:
        """The catalogue's version and live item count."""
        version = await asyncio.to_thread(self.store.version)
        return CatalogCounts(version, await asyncio.to_thread(self.store.count))
