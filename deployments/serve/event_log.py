"""The event log deployment: one replica that owns the application's event store.

Ingress replicas send it every served list (batched, off the request path) and
every feedback event (awaited: the 202 goes out only once the events are in the
write-ahead log, fsync'ed). It keeps the online totals the experiment reports and
the dashboard read, de-duplicates feedback by ``event_id``, and flushes to Parquet
within ``flush_interval_s``.

One replica on purpose: counts and de-duplication need one writer, and an event
log handles tens of thousands of events a second from one process. If it dies,
Serve starts a new one, which writes what the old one left in the write-ahead log
to Parquet before it serves (``EventStore.recover``); ingresses retry meanwhile
(feedback answers 503 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

from ray import serve

from blending.evaluation.stats import ArmTotals
from blending.online import OnlineSnapshot
from deployments.config import EventsConfig, resolve_store
from deployments.events.counts import EventCounts
from deployments.events.online_state import OnlineState
from deployments.events.records import (
    FeedbackRecord,
    FeedbackStored,
    InterleavingWins,
    ServedList,
)
from deployments.events.store import EventStore
from deployments.json_types import JsonObject
from deployments.metrics import EventLogMetrics, start_flushing
from models.store import ArtifactStore

__all__ = ["EventLog"]

logger = logging.getLogger("ray.serve")

_EVENT_IDS_KEPT = 1_000_000
"""Feedback event ids remembered for de-duplication (about 100 MB at most)."""

_EVENT_IDS_DAYS = 2
"""On start, event ids of this many recent days are read back from the dataset."""


@serve.deployment(num_replicas=1, max_ongoing_requests=256, health_check_period_s=5)
class EventLog:
    """Owns the write-ahead log, the Parquet dataset and the online totals."""

    def __init__(self, events: EventsConfig, store: str) -> None:
        app = serve.get_replica_context().app_name or "default"
        # One dataset and one WAL per application: two apps never recover each
        # other's segments or mix their use cases.
        self.store = EventStore(
            events.dataset_uri(app),
            events.wal_path(app),
            events.flush_interval_s,
            events.flush_max_events,
        )
        recovered = self.store.recover()
        # The totals need only these columns of the served lists; not their items.
        served = self.store.read("served", ["use_case", "variant"])
        feedback = self.store.read("feedback")
        self.counts = EventCounts.rebuild(served, feedback)
        self._event_ids: OrderedDict[str, None] = OrderedDict()
        since = (datetime.now(UTC) - timedelta(days=_EVENT_IDS_DAYS)).strftime("%Y-%m-%d")
        for row in feedback.select(["event_id", "date"]).to_pylist():
            if row["event_id"] and row["date"] >= since:
                self._remember(row["event_id"])
        self.online = OnlineState(events.online, ArtifactStore(resolve_store(store)), app)
        self.online.restore(feedback)
        self.metrics = EventLogMetrics()
        start_flushing()
        self._flusher: asyncio.Task[None] | None = None
        logger.info(
            "event log %s: %d served lists and %d feedback events so far (%d recovered)",
            self.store.uri,
            served.num_rows,
            feedback.num_rows,
            recovered,
        )

    def _remember(self, event_id: str) -> None:
        self._event_ids[event_id] = None
        if len(self._event_ids) > _EVENT_IDS_KEPT:
            self._event_ids.popitem(last=False)

    def _start_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(min(0.2, self.store.flush_interval_s / 2))
            if self.store.flush_due():
                try:
                    await asyncio.to_thread(self.store.flush)
                except Exception:  # a full disk or a lost bucket: keep the WAL, retry
                    logger.exception("event log: flush to %s failed; retrying", self.store.uri)
            if self.online.checkpoint_due():
                try:
                    await asyncio.to_thread(self.online.checkpoint)
                except Exception:  # the store is unwritable: the WAL still has it all
                    logger.exception("online state: checkpoint failed; retrying")

    async def append_feedback(self, records: list[FeedbackRecord]) -> FeedbackStored:
        """Store feedback events durably; answer only once they are in the WAL.

        Events whose ``event_id`` was seen before are dropped as duplicates."""
        self._start_flusher()
        fresh, duplicates = [], 0
        for record in records:
            event_id = record.event_id
            if event_id in self._event_ids:
                duplicates += 1
                continue
            self._remember(event_id)  # reserved now: a concurrent retry is a duplicate
            fresh.append(record)
        try:
            await asyncio.to_thread(self.store.append, "feedback", [r.row() for r in fresh])
        except BaseException:
            for record in fresh:
                self._event_ids.pop(record.event_id, None)
            raise
        for record in fresh:
            self.online.observe(record.item_id, record.event, record.ts)
            outcome = "counted" if self.counts.add_feedback(record.row()) else "repeat"
            tags = {"use_case": record.use_case, "event": record.event, "outcome": outcome}
            self.metrics.feedback.inc(tags=tags)
        return FeedbackStored(accepted=len(fresh), duplicates=duplicates)

    async def append_served(self, records: list[ServedList]) -> int:
        """Store served lists (sent in batches by the ingresses)."""
        self._start_flusher()
        rows = [record.row() for record in records]
        await asyncio.to_thread(self.store.append, "served", rows)
        for record, row in zip(records, rows, strict=True):
            self.counts.add_served(row)
            self.metrics.served.inc(tags={"use_case": record.use_case})
        return len(records)

    def arm_totals(self, use_case: str, node: str) -> dict[str, ArmTotals]:
        """Requests, impressions and clicks of each arm of an experiment node."""
        return self.counts.arm_totals(use_case, node)

    def interleaving(self, use_case: str, teams: list[str]) -> InterleavingWins:
        """Requests each team won (more clicked items), and ties."""
        wins, ties = self.counts.interleaving(use_case, teams)
        return InterleavingWins(wins, ties)

    def online_snapshot(self) -> OnlineSnapshot:
        """Decayed impressions and clicks of the most seen items (online learning)."""
        return self.online.snapshot()

    def checkpoint(self) -> str:
        """Save the online state to the artifact store now; its version."""
        return self.online.checkpoint()

    def traffic(self) -> JsonObject:
        """Served lists per second, latency percentiles, degraded share: last minute."""
        return self.counts.traffic()

    async def check_health(self) -> None:
        """Serve's probe; also restarts the flusher if it ever stopped."""
        self._start_flusher()
