"""The ingress's side of the event log: served lists shipped in batches off the
request path, feedback awaited until it is durable, totals for reports."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ray.serve.handle import DeploymentHandle

from blending.evaluation.stats import ArmTotals
from blending.online import OnlineSnapshot
from deployments.events.records import (
    FeedbackRecord,
    FeedbackStored,
    InterleavingWins,
    ServedList,
)
from deployments.json_types import JsonObject
from models.errors import ModelError

__all__ = ["EventClient", "EventLogUnavailable"]

logger = logging.getLogger("ray.serve")

_SHIP_EVERY_S = 0.25
_BUFFER_MAX = 50_000
"""Served lists kept while the event log is unreachable; older ones are dropped."""


class EventLogUnavailable(ModelError):
    """The event log did not store the events in time (retry them)."""


class EventClient:
    """Talks to the app's ``EventLog`` deployment through its handle."""

    def __init__(self, handle: DeploymentHandle[Any], timeout_s: float = 5.0) -> None:
        self.handle = handle
        self.timeout_s = timeout_s
        self._served: list[ServedList] = []
        self.dropped = 0
        """Served lists dropped because the event log stayed unreachable."""
        self._shipper: asyncio.Task[None] | None = None

    def served(self, record: ServedList) -> None:
        """Queue a served list; a background task ships the queue four times a second."""
        self._served.append(record)
        if len(self._served) > _BUFFER_MAX:
            drop = len(self._served) - _BUFFER_MAX
            del self._served[:drop]
            self.dropped += drop
        if self._shipper is None or self._shipper.done():
            self._shipper = asyncio.get_running_loop().create_task(self._ship_loop())

    async def _ship_loop(self) -> None:
        while True:
            await asyncio.sleep(_SHIP_EVERY_S)
            if not self._served:
                continue
            batch, self._served = self._served, []
            try:
                await self._call("append_served", batch)
            except Exception as exc:  # noqa: BLE001 - kept and retried next round
                self._served = batch + self._served
                logger.warning(
                    "event log unreachable (%s): %d lists queued", exc, len(self._served)
                )

    async def _call(self, method: str, *args: Any) -> Any:
        response = getattr(self.handle, method).remote(*args)
        try:
            return await asyncio.wait_for(response, self.timeout_s)
        except TimeoutError:
            response.cancel()
            raise EventLogUnavailable(
                f"the event log did not answer {method} within {self.timeout_s}s"
            ) from None

    async def feedback(self, records: list[FeedbackRecord]) -> FeedbackStored:
        """Store feedback durably; ``EventLogUnavailable`` when it could not be."""
        try:
            result: FeedbackStored = await self._call("append_feedback", records)
        except EventLogUnavailable:
            raise
        except Exception as exc:
            raise EventLogUnavailable(f"the event log failed: {exc}") from exc
        return result

    async def arm_totals(self, use_case: str, node: str) -> dict[str, ArmTotals]:
        """Requests, impressions and clicks per arm."""
        result: dict[str, ArmTotals] = await self._call("arm_totals", use_case, node)
        return result

    async def interleaving(self, use_case: str, teams: list[str]) -> InterleavingWins:
        """Wins per team and ties."""
        result: InterleavingWins = await self._call("interleaving", use_case, teams)
        return result

    async def online_snapshot(self) -> OnlineSnapshot:
        """The online learning state (decayed impressions and clicks of the most seen
        items), refreshed by every ingress once a second."""
        snapshot: OnlineSnapshot = await self._call("online_snapshot")
        return snapshot

    async def traffic(self) -> JsonObject:
        """The last minute of served lists."""
        result: JsonObject = await self._call("traffic")
        return result
