"""The event log deployment: one replica that owns the application's event store.

Ingress replicas send it every served list (batched, off the request path) and
every feedback event (awaited: the 202 goes out only once the events are in the
write-ahead log, fsync'ed). It keeps the online totals the experiment reports and
the dashboard read, de-duplicates feedback by ``event_id`` and served lists by
``request_id`` (a batch resent after a failed call is stored once), and flushes to
Parquet within ``flush_interval_s``. All of that is ``deployments/events/journal.py``
(plain Python); this is its Serve replica.

Every method that reads the totals is ``async``: Serve runs a plain method in a
thread, where iterating the totals raced the event loop adding feedback to them
("dictionary changed size during iteration", seen by ``make power``).

One replica on purpose: counts and de-duplication need one writer, and an event
log handles tens of thousands of events a second from one process. If it dies,
Serve starts a new one, which writes what the old one left in the write-ahead log
to Parquet before it serves (``EventStore.recover``); ingresses retry meanwhile
(feedback answers 503 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import logging

from ray import serve

from blending.evaluation.stages import PruneState
from blending.evaluation.stats import ArmTotals
from blending.experiment_specs import PruneStageSpec
from blending.online import OnlineSnapshot
from deployments.config import EventsConfig, resolve_store
from deployments.events.journal import EventJournal, Observers
from deployments.events.records import (
    FeedbackRecord,
    FeedbackStored,
    InterleavingWins,
    ServedList,
)
from deployments.events.seen_feed import SeenPage
from deployments.json_types import JsonObject
from deployments.metrics import EventLogMetrics, start_flushing
from models.store import ArtifactStore

__all__ = ["EventLog"]

logger = logging.getLogger("ray.serve")


@serve.deployment(num_replicas=1, max_ongoing_requests=256, health_check_period_s=5)
class EventLog:
    """Hosts the application's ``EventJournal``, flushing it in the background."""

    def __init__(self, events: EventsConfig, store: str) -> None:
        app = serve.get_replica_context().app_name or "default"
        self.metrics = EventLogMetrics()
        observers = Observers(
            feedback=self._on_feedback, served=self._on_served, online=self._on_online
        )
        self.journal = EventJournal(events, ArtifactStore(resolve_store(store)), app, observers)
        start_flushing()
        self._flusher: asyncio.Task[None] | None = None

    def _on_feedback(self, record: FeedbackRecord, outcome: str) -> None:
        tags = {"use_case": record.use_case, "event": record.event, "outcome": outcome}
        self.metrics.feedback.inc(tags=tags)

    def _on_served(self, record: ServedList) -> None:
        self.metrics.served.inc(tags={"use_case": record.use_case})

    def _on_online(self, items: int, forgotten: int) -> None:
        self.metrics.online_items.set(items)
        if forgotten:
            self.metrics.online_forgotten.inc(forgotten)

    def _start_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(min(0.2, self.journal.store.flush_interval_s / 2))
            await self.journal.housekeeping()

    async def append_feedback(self, records: list[FeedbackRecord]) -> FeedbackStored:
        """Store feedback events durably (once per ``event_id``); answer only once
        they are in the WAL."""
        self._start_flusher()
        return await self.journal.append_feedback(records)

    async def append_served(self, records: list[ServedList]) -> int:
        """Store served lists (sent in batches by the ingresses), once per
        ``request_id``; how many were new."""
        self._start_flusher()
        return await self.journal.append_served(records)

    async def arm_totals(self, use_case: str, node: str) -> dict[str, ArmTotals]:
        """Requests, impressions and clicks of each arm of an experiment node."""
        return self.journal.arm_totals(use_case, node)

    async def interleaving(self, use_case: str, teams: list[str]) -> InterleavingWins:
        """Requests each team won (more clicked items), and ties."""
        return self.journal.interleaving(use_case, teams)

    async def prune_state(
        self, use_case: str, node: str, candidates: list[str], spec: PruneStageSpec
    ) -> PruneState:
        """Where a staged experiment's first stage stands (decided once, here)."""
        return self.journal.prune_state(use_case, node, candidates, spec)

    async def online_snapshot(self) -> OnlineSnapshot:
        """Decayed impressions and clicks of the most seen items (online learning)."""
        return self.journal.online_snapshot()

    async def checkpoint(self) -> str:
        """Save the online state to the artifact store now; its version."""
        return await self.journal.checkpoint_online()

    async def traffic(self) -> JsonObject:
        """Served lists per second, latency percentiles, degraded share: last minute."""
        return self.journal.traffic()

    async def seen_since(self, epoch: str, cursor: int) -> SeenPage:
        """What users were shown and acted on after ``cursor``, for the ingresses'
        seen-item histories."""
        return self.journal.seen_since(epoch, cursor)

    async def check_health(self) -> None:
        """Serve's probe; also restarts the flusher if it ever stopped."""
        self._start_flusher()
