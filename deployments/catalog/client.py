"""The ingress's side of the live catalogue: a ``LiveCatalog`` in memory, kept in step
with the ``Catalog`` deployment by polling its changes, and the admin calls."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from ray.serve.handle import DeploymentHandle

from blending.catalog import ItemInfo, LiveCatalog

__all__ = ["CatalogClient", "item_info"]

logger = logging.getLogger("ray.serve")


def item_info(item: dict[str, Any]) -> ItemInfo:
    """What blending needs of a catalogue item (its JSON form)."""
    published = item.get("published_at")
    return ItemInfo(
        item.get("category"),
        bool(item.get("available", True)),
        published_at=datetime.fromisoformat(published).timestamp() if published else None,
        title=str(item.get("title") or ""),
    )


class CatalogClient:
    """Keeps ``live`` up to date and forwards admin calls to the catalogue replica."""

    def __init__(self, handle: DeploymentHandle[Any], poll_interval_s: float) -> None:
        self.handle = handle
        self.poll_interval_s = poll_interval_s
        self.live = LiveCatalog()
        self.synced = False
        """Whether the first full sync has finished (before it, nothing is known)."""
        self._poller: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def sync(self) -> int:
        """Apply every change after the version held; return the version reached."""
        async with self._lock:
            while True:
                answer = await self.handle.changes_since.remote(self.live.version)
                changes = [
                    (item_id, None if item is None else item_info(item))
                    for item_id, item in answer["changes"]
                ]
                if answer["version"] == self.live.version and not changes:
                    break
                self.live.apply(answer["version"], changes)
                if not changes:
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

    async def call(self, method: str, *args: Any) -> Any:
        """An admin call; this replica applies its own change before answering."""
        result = await getattr(self.handle, method).remote(*args)
        if method in ("put", "patch", "delete", "upsert_batch"):
            await self.sync()
        return result
