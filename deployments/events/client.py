"""The ingress's side of the event log: served lists shipped in batches off the
request path, feedback awaited until it is durable, totals for reports."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle

from blending.evaluation.stages import PruneState
from blending.evaluation.stats import ArmTotals
from blending.experiment_specs import PruneStageSpec
from blending.online import OnlineSnapshot
from deployments.events.records import (
    FeedbackRecord,
    FeedbackStored,
    InterleavingWins,
    ServedList,
)
from deployments.events.seen_feed import SeenPage
from deployments.json_types import JsonObject
from models.errors import ModelError, describe_error

__all__ = ["EventClient", "EventLogUnavailable", "served_list_bytes"]

logger = logging.getLogger("ray.serve")

_SHIP_EVERY_S = 0.25
_UNREACHABLE_FOR_S = 1.0
"""After the event log could not be reached, calls fail at once for this long, then one
tries again. Without it, while its replica restarts every feedback request would hold
an ingress slot for the whole timeout, and the full slots would refuse recommendations
too (measured by the chaos suite: 49 refused recommendations in one restart)."""
_RECORD_OVERHEAD_BYTES = 200
"""What a queued served list costs besides its strings (the struct, list and dict
objects), for the buffer's bound."""
_ITEM_OVERHEAD_BYTES = 60
"""What each item id costs besides its characters (a str object and its pointer)."""


class EventLogUnavailable(ModelError):
    """The event log did not store the events in time (retry them)."""


def served_list_bytes(record: ServedList) -> int:
    """About what ``record`` holds in memory while it waits: its strings plus a fixed
    cost per list (an estimate, cheap enough for every request)."""
    strings = sum(map(len, record.items)) + sum(map(len, record.teams))
    maps = sum(
        len(key) + len(value)
        for mapping in (record.variant, record.model_versions)
        for key, value in mapping.items()
    )
    per_item = _ITEM_OVERHEAD_BYTES * len(record.items)
    # The plan's text is one object shared by every list of the plan: not counted.
    return (
        _RECORD_OVERHEAD_BYTES + per_item + strings + maps + len(record.user) + len(record.inputs)
    )


class EventClient:
    """Talks to the app's ``EventLog`` deployment through its handle.

    Served lists wait in a buffer of at most ``buffer_bytes`` until they are shipped
    (four times a second, in one call). None is ever dropped: while the event log is
    unreachable the buffer grows, and once it is full the ingress refuses new
    recommendations (:meth:`has_room`) until the event log takes the backlog.
    """

    def __init__(
        self, handle: DeploymentHandle[Any], timeout_s: float = 5.0, buffer_bytes: int = 64 << 20
    ) -> None:
        self.handle = handle
        self.timeout_s = timeout_s
        self.buffer_bytes = buffer_bytes
        self._served: list[tuple[ServedList, int]] = []
        """Queued served lists, each with its ``served_list_bytes`` (counted once)."""
        self.buffered_bytes = 0
        """What the served lists waiting to be shipped hold (``served_list_bytes``)."""
        self._shipper: asyncio.Task[None] | None = None
        self._unreachable_until = 0.0
        self._unreachable_because = ""
        """Why the last call could not reach the event log ("" once one did)."""
        self._probing = False

    def has_room(self) -> bool:
        """Whether another served list fits in the buffer."""
        return self.buffered_bytes < self.buffer_bytes

    def backlog(self) -> str:
        """What waits in the buffer, for the refusal's message."""
        return (
            f"{len(self._served)} served lists ({self.buffered_bytes >> 10} KiB) wait for the "
            f"event log, the buffer's limit (events.served_buffer_mb)"
        )

    def served(self, record: ServedList) -> None:
        """Queue a served list; a background task ships the queue four times a second."""
        size = served_list_bytes(record)
        self._served.append((record, size))
        self.buffered_bytes += size
        if self._shipper is None or self._shipper.done():
            self._shipper = asyncio.get_running_loop().create_task(self._ship_loop())

    async def _ship_loop(self) -> None:
        while True:
            await asyncio.sleep(_SHIP_EVERY_S)
            await self.ship()

    async def ship(self) -> bool:
        """Send every queued served list in one call; on failure keep them, in order,
        for the next round (the event log stores a resent list once). Whether the
        queue was shipped."""
        if not self._served:
            return True
        batch, self._served = self._served, []
        try:
            await self._call("append_served", [record for record, _ in batch])
        except Exception as exc:  # noqa: BLE001 - kept and retried next round
            self._served = batch + self._served
            logger.warning("event log unreachable (%s): %d lists queued", exc, len(self._served))
            return False
        self.buffered_bytes -= sum(size for _, size in batch)
        return True

    async def _call(self, method: str, *args: Any) -> Any:
        # Once unreachable, one call at a time (after _UNREACHABLE_FOR_S) finds out
        # whether it is back; the others fail at once meanwhile.
        probe = self._unreachable_because != ""
        if probe and (self._probing or self._clock() < self._unreachable_until):
            raise EventLogUnavailable(
                f"the event log is unreachable ({self._unreachable_because}); retry shortly"
            )
        self._probing = probe
        response = getattr(self.handle, method).remote(*args)
        try:
            result = await asyncio.wait_for(response, self.timeout_s)
        except TimeoutError:
            response.cancel()
            self._unreachable(f"no answer to {method} within {self.timeout_s}s")
            raise EventLogUnavailable(
                f"the event log did not answer {method} within {self.timeout_s}s"
            ) from None
        except RayActorError as exc:  # its replica died; not an error it raised
            self._unreachable(describe_error(exc))
            raise
        finally:
            self._probing = self._probing and not probe
        self._unreachable_because = ""
        return result

    def _unreachable(self, because: str) -> None:
        self._unreachable_until = self._clock() + _UNREACHABLE_FOR_S
        self._unreachable_because = because

    @staticmethod
    def _clock() -> float:
        return asyncio.get_running_loop().time()

    async def feedback(self, records: list[FeedbackRecord]) -> FeedbackStored:
        """Store feedback durably; ``EventLogUnavailable`` when it could not be."""
        try:
            result: FeedbackStored = await self._call("append_feedback", records)
        except EventLogUnavailable:
            raise
        except Exception as exc:
            # A Ray error's text is the remote traceback: its last line names the cause
            # ("OSError: [Errno 28] No space left on device").
            raise EventLogUnavailable(f"the event log failed: {describe_error(exc)}") from exc
        return result

    async def arm_totals(self, use_case: str, node: str) -> dict[str, ArmTotals]:
        """Requests, impressions and clicks per arm."""
        result: dict[str, ArmTotals] = await self._call("arm_totals", use_case, node)
        return result

    async def interleaving(self, use_case: str, teams: list[str]) -> InterleavingWins:
        """Wins per team and ties."""
        result: InterleavingWins = await self._call("interleaving", use_case, teams)
        return result

    async def prune_state(
        self, use_case: str, node: str, candidates: list[str], spec: PruneStageSpec
    ) -> PruneState:
        """Where a staged experiment's first stage stands, as the event log decided."""
        state: PruneState = await self._call("prune_state", use_case, node, candidates, spec)
        return state

    async def online_snapshot(self) -> OnlineSnapshot:
        """The online learning state (decayed impressions and clicks of the most seen
        items), refreshed by every ingress once a second."""
        snapshot: OnlineSnapshot = await self._call("online_snapshot")
        return snapshot

    async def seen_since(self, epoch: str, cursor: int) -> SeenPage:
        """Per-user events after ``cursor`` (see ``SeenFeed.since``)."""
        page: SeenPage = await self._call("seen_since", epoch, cursor)
        return page

    async def traffic(self) -> JsonObject:
        """The last minute of served lists."""
        result: JsonObject = await self._call("traffic")
        return result
