"""The live catalogue deployment: one replica that owns the application's durable item
store and hands out changes since a version.

Writes come from the ingress's admin routes (already validated there); every
ingress replica polls ``changes_since`` a few times a second and applies the
changes to its in-memory ``LiveCatalog``, whose ``filter`` is the last step of every
blend, so a deleted item leaves every answer within a second of the deletion being
acknowledged. One replica on purpose: one writer keeps one version sequence, and
SQLite already makes each acknowledged change durable before the answer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ray import serve

from deployments.catalog.items import CatalogItem, ItemPatch
from deployments.catalog.store import CatalogStore
from deployments.config.data import LiveCatalogConfig
from deployments.config.paths import resolve_store

__all__ = ["Catalog"]

logger = logging.getLogger("ray.serve")


def _as_json(item: CatalogItem) -> dict[str, Any]:
    return item.model_dump(mode="json")


@serve.deployment(num_replicas=1, max_ongoing_requests=256)
class Catalog:
    """Owns the SQLite catalogue of one application."""

    def __init__(self, config: dict[str, Any], seed: str | None) -> None:
        settings = LiveCatalogConfig.model_validate(config)
        app = serve.get_replica_context().app_name or "default"
        path = settings.store_path(app)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.store = CatalogStore(path)
        seeded = 0
        if seed is not None and resolve_store(seed).is_file():
            seeded = self.store.seed_from_parquet(resolve_store(seed))
        logger.info(
            "catalogue %s: %d items at version %d%s",
            path,
            self.store.count(),
            self.store.version(),
            f" ({seeded} imported from {seed})" if seeded else "",
        )

    async def put(self, item: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an item; the new catalogue version."""
        version = await asyncio.to_thread(self.store.put, CatalogItem.model_validate(item))
        return {"version": version}

    async def patch(self, item_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Change some fields of an item; the new version and the item."""
        changes = ItemPatch.model_validate(patch)
        version = await asyncio.to_thread(self.store.patch, item_id, changes)
        item = await asyncio.to_thread(self.store.get, item_id)
        return {"version": version, "item": None if item is None else _as_json(item)}

    async def delete(self, item_id: str) -> dict[str, Any]:
        """Delete an item (a tombstone others see as a change); the new version."""
        return {"version": await asyncio.to_thread(self.store.delete, item_id)}

    async def upsert_batch(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Create or replace many items in one transaction; the new version."""
        parsed = [CatalogItem.model_validate(item) for item in items]
        return {"version": await asyncio.to_thread(self.store.upsert_batch, parsed)}

    async def get(self, item_id: str) -> dict[str, Any] | None:
        """One live item, or None."""
        item = await asyncio.to_thread(self.store.get, item_id)
        return None if item is None else _as_json(item)

    async def changes_since(self, version: int) -> dict[str, Any]:
        """Changes after ``version``, oldest first: ``{"version", "changes": [[id,
        item or None (deleted)], ...]}``."""
        reached, changes = await asyncio.to_thread(self.store.changes_since, version)
        return {
            "version": reached,
            "changes": [
                [c.item_id, None if c.deleted or c.item is None else _as_json(c.item)]
                for c in changes
            ],
        }

    async def status(self) -> dict[str, int]:
        """The catalogue's version and live item count."""
        version = await asyncio.to_thread(self.store.version)
        return {"version": version, "items": await asyncio.to_thread(self.store.count)}
