"""The ingress's side of the live catalogue: a ``LiveCatalog`` in memory, kept in step
with the ``Catalog`` deployment by polling its changes, and the admin calls."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from ray.exceptions import RayError
from ray.serve.handle import DeploymentHandle

from blending.attributes import AttributeKind
from blending.catalog import LiveCatalog
from deployments.catalog.items import CatalogItem, CatalogUnavailableError, ItemPatch
from deployments.catalog.messages import CatalogCounts, CatalogWrite, ChangePage
from models.errors import BlendserveError, describe_error

__all__ = ["CatalogClient"]

logger = logging.getLogger("ray.serve")


class CatalogClient:
    """Keeps ``live`` up to date and forwards admin calls to the catalogue replica."""

    def __init__(
        self,
        handle: DeploymentHandle[Any],
        poll_interval_s: float,
        attributes: Mapping[str, AttributeKind] | None = None,
    ) -> None:
        self.handle = handle
        self.poll_interval_s = poll_interval_s
        self.live = LiveCatalog(attributes)
        self.synced = False
        """Whether the first full sync has finished (before it, nothing is known)."""
        self._poller: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def sync(self) -> int:
        """Apply every change after the version held; return the version reached."""
        async with self._lock:
            while True:
                page: ChangePage = await self.handle.changes_since.remote(self.live.version)
                if page.version == self.live.version and not page.changes:
                    break
                self.live.apply(page.version, page.changes)
                if not page.changes:
                    break
            self.synced = True
            return self.live.version

    def start(self) -> None:
        """Poll for changes in the background (idempotent)."""
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                await self.sync()
            except Exception as exc:  # noqa: BLE001 - keep the last state, try again
                logger.warning("catalogue sync failed (%s); retrying", exc)

    async def _call(self, method: str, *args: object) -> Any:
        """``method`` of a catalogue replica; its own refusals (an unknown item, bad
        input) come back as they are, a replica or database that failed as
        ``CatalogUnavailableError`` (503, retry)."""
        try:
            return await getattr(self.handle, method).remote(*args)
        except (BlendserveError, asyncio.CancelledError):
            raise
        except (RayError, OSError) as exc:
            raise CatalogUnavailableError(
                f"catalog: {method} failed; retry: {describe_error(exc)}"
            ) from exc

    async def _write(self, method: str, *args: object) -> CatalogWrite:
        """A change; this replica applies it before answering, so its next answer
        already reflects it."""
        result: CatalogWrite = await self._call(method, *args)
        await self.sync()
        return result

    async def put(self, item: CatalogItem) -> CatalogWrite:
        """Create or replace ``item``."""
        return await self._write("put", item)

    async def patch(self, item_id: str, patch: ItemPatch) -> CatalogWrite:
        """Change some fields of an item."""
        return await self._write("patch", item_id, patch)

    async def delete(self, item_id: str) -> CatalogWrite:
        """Delete an item."""
        return await self._write("delete", item_id)

    async def upsert_batch(self, items: list[CatalogItem]) -> CatalogWrite:
        """Create or replace many items, all or none."""
        return await self._write("upsert_batch", items)

    async def get(self, item_id: str) -> CatalogItem | None:
        """One live item, or None."""
        item: CatalogItem | None = await self._call("get", item_id)
        return item

    async def status(self) -> CatalogCounts:
        """The store's version and live item count."""
        counts: CatalogCounts = await self._call("status")
        return counts
