"""The event log's state in one process, without Ray: the durable store (WAL and
Parquet), the ids stored recently, the totals experiments read and online learning.

``deployments/serve/event_log.py`` hosts one of these per application. Each append
is acknowledged only once its events are in the write-ahead log (fsync'ed), and
stored once: feedback by ``event_id``, served lists by ``request_id``, so a batch
resent after a failed call (the answer lost, the replica killed after writing) or a
client's retry does not count twice. The ids of the last ``ids_days`` days are read
back on start, the write-ahead log a killed predecessor left included.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from blending.evaluation.stages import PruneState
from blending.evaluation.stats import ArmTotals
from blending.experiment_specs import PruneStageSpec
from blending.online import OnlineSnapshot
from deployments.config import EventsConfig
from deployments.events.counts import EventCounts
from deployments.events.online_state import OnlineState
from deployments.events.recent_ids import RecentIds
from deployments.events.records import (
    FeedbackRecord,
    FeedbackStored,
    InterleavingWins,
    ServedList,
)
from deployments.events.seen_feed import SeenFeed, SeenPage
from deployments.events.store import EventStore
from deployments.json_types import JsonObject
from models.store import ArtifactStore

__all__ = ["EventJournal", "Observers"]

_Record = TypeVar("_Record", FeedbackRecord, ServedList)

logger = logging.getLogger("ray.serve")

IDS_KEPT = 1_000_000
"""Feedback event ids, and served lists' request ids, remembered for de-duplication
(about 15 MB each, allocated at start; at 500 served lists a second, the last half
hour's)."""


@dataclass(frozen=True)
class Observers:
    """Who hears of each stored event (the deployment's metrics); no-ops by default."""

    feedback: Callable[[FeedbackRecord, str], None] = lambda record, outcome: None
    served: Callable[[ServedList], None] = lambda record: None
    online: Callable[[int, int], None] = lambda items, forgotten: None
    """The online state's size after bounding it, and how many items that forgot."""


class EventJournal:
    """Stores events once and durably, and keeps what they add up to."""

    def __init__(
        self,
        events: EventsConfig,
        artifacts: ArtifactStore,
        app: str,
        observers: Observers | None = None,
        ids_days: int = 2,
    ) -> None:
        # One dataset and one WAL per application: two apps never recover each
        # other's segments or mix their use cases.
        self.store = EventStore(
            events.dataset_uri(app),
            events.wal_path(app),
            events.flush_interval_s,
            events.flush_max_events,
        )
        self.observers = observers or Observers()
        self.recovered = self.store.recover()
        # The totals need only these columns of the served lists; de-duplication only
        # the request ids of the last days (their partitions alone are read).
        served = self.store.read("served", ["use_case", "variant"])
        feedback = self.store.read("feedback")
        self.counts = EventCounts.rebuild(served, feedback)
        since = _day(ids_days)
        recent_feedback = feedback.filter(pc.field("date") >= since)
        self._event_ids = _remembered(recent_feedback["event_id"])
        recent = self.store.read("served", ["date", "request_id"], since)
        self._request_ids = _remembered(recent["request_id"])
        self._writes: dict[str, asyncio.Future[None]] = {}
        """Ids whose write is in flight, and that write."""
        self._survivors: dict[tuple[str, str, tuple[str, ...], PruneStageSpec], PruneState] = {}
        """Staged experiments' first stages decided so far (``prune_state``)."""
        self.online = OnlineState(events.online, artifacts, app)
        self.online.restore(feedback)
        self._seen_config = events.seen
        self.seen: SeenFeed | None = None
        """What users saw and did, for ingresses to follow: kept only from the first
        follower on (a use case with ``seen:``), since it costs up to
        ``seen.feed_events`` events of memory (~150 bytes each)."""
        logger.info(
            "event log %s: %d served lists and %d feedback events so far (%d recovered)",
            self.store.uri,
            served.num_rows,
            feedback.num_rows,
            self.recovered,
        )

    async def append_feedback(self, records: list[FeedbackRecord]) -> FeedbackStored:
        """Store feedback events durably; return only once they are in the WAL.

        Events whose ``event_id`` was stored before are dropped as duplicates."""

        def account(fresh: list[FeedbackRecord]) -> None:
            for record in fresh:
                self.online.observe(record.item_id, record.event, record.ts)
                if self.seen is not None:
                    self.seen.feedback(record)
                outcome = "counted" if self.counts.add_feedback(record.row()) else "repeat"
                self.observers.feedback(record, outcome)

        ids = [record.event_id for record in records]
        fresh = await self._store_once("feedback", records, ids, self._event_ids, account)
        return FeedbackStored(accepted=len(fresh), duplicates=len(records) - len(fresh))

    async def append_served(self, records: list[ServedList]) -> int:
        """Store served lists durably; a list whose ``request_id`` was stored before
        is dropped as a duplicate. Returns how many were new."""

        def account(fresh: list[ServedList]) -> None:
            for record in fresh:
                self.counts.add_served(record.row())
                if self.seen is not None:
                    self.seen.served(record)
                self.observers.served(record)

        ids = [record.request_id for record in records]
        fresh = await self._store_once("served", records, ids, self._request_ids, account)
        return len(fresh)

    async def _store_once(
        self,
        kind: str,
        records: Sequence[_Record],
        ids: list[str],
        seen: RecentIds,
        account: Callable[[list[_Record]], None],
    ) -> list[_Record]:
        """Write the records whose ids are new to the WAL, once; return them.

        A sender that gave up on a call (its timeout, a dead replica's handle) sends
        the batch again while the first write may still be going on: the retry waits
        for that write, and fails if it failed (its ids are then free again, for the
        next retry), so an id is never both skipped as a duplicate and lost."""
        waiting = {self._writes[i] for i in ids if i in self._writes}
        if waiting:
            await asyncio.gather(*map(asyncio.shield, waiting))
        news = seen.reserve(ids)  # before writing: a concurrent retry is a duplicate
        fresh = [record for record, new in zip(records, news, strict=True) if new]
        fresh_ids = [i for i, new in zip(ids, news, strict=True) if new]
        if not fresh:
            return []
        write = asyncio.ensure_future(self._write(kind, fresh, fresh_ids, seen, account))
        write.add_done_callback(_retrieve)
        for event_id in fresh_ids:
            self._writes[event_id] = write
        # Shielded: a cancelled caller does not stop a write its thread has begun (the
        # events may be in the WAL already; their ids must stay taken).
        await asyncio.shield(write)
        return fresh

    async def _write(
        self,
        kind: str,
        fresh: list[_Record],
        ids: list[str],
        seen: RecentIds,
        account: Callable[[list[_Record]], None],
    ) -> None:
        try:
            await asyncio.to_thread(self.store.append, kind, [r.row() for r in fresh])
        except BaseException:
            seen.release(ids)
            raise
        finally:
            for event_id in ids:
                self._writes.pop(event_id, None)
        account(fresh)

    async def housekeeping(self) -> None:
        """Flush the WAL to Parquet and checkpoint the online state when due; a
        failure (a full disk, a lost bucket) keeps the WAL and is retried next time."""
        if self.store.flush_due():
            try:
                await asyncio.to_thread(self.store.flush)
            except Exception:
                logger.exception("event log: flush to %s failed; retrying", self.store.uri)
        if self.online.checkpoint_due():
            # On the event loop, not in the checkpoint's thread: feedback arriving
            # meanwhile changes the same dictionary.
            forgotten = self.online.bound(time.time())
            self.observers.online(len(self.online.counts), forgotten)
            try:
                await self.checkpoint_online()
            except Exception:  # the store is unwritable: the WAL still has it all
                logger.exception("online state: checkpoint failed; retrying")

    def arm_totals(self, use_case: str, node: str) -> dict[str, ArmTotals]:
        """Requests, impressions and clicks of each arm of an experiment node."""
        return self.counts.arm_totals(use_case, node)

    def interleaving(self, use_case: str, teams: list[str]) -> InterleavingWins:
        """Requests each team won (more clicked items), and ties."""
        return self.counts.interleaving(use_case, teams)

    async def checkpoint_online(self) -> str:
        """Save the online state now; its version. Copied on the event loop, where
        feedback changes it, and written in a thread."""
        data = self.online.checkpoint_data()
        return await asyncio.to_thread(self.online.write_checkpoint, data)

    def prune_state(
        self, use_case: str, node: str, candidates: list[str], spec: PruneStageSpec
    ) -> PruneState:
        """Where staged experiment ``node``'s first stage stands; once a candidate has
        survived, the same answer for as long as this process lives (a restart decides
        again from the same counts), so every ingress replica splits users alike."""
        key = (use_case, node, tuple(candidates), spec)
        decided = self._survivors.get(key)
        if decided is not None:
            return decided
        state = self.counts.first_stage(use_case, candidates, spec)
        if state.survivor is not None:
            self._survivors[key] = state
        return state

    def online_snapshot(self) -> OnlineSnapshot:
        """Decayed impressions and clicks of the most seen items (online learning)."""
        return self.online.snapshot()

    def traffic(self) -> JsonObject:
        """Served lists per second, latency percentiles, degraded share: last minute."""
        return self.counts.traffic()

    def seen_since(self, epoch: str, cursor: int) -> SeenPage:
        """Per-user events after ``cursor`` (what users were shown and acted on); the
        first call starts the feed, from the dataset's last ``seen.restore_days``."""
        if self.seen is None:
            self.seen = self._start_seen_feed()
        return self.seen.since(epoch, cursor)

    def _start_seen_feed(self) -> SeenFeed:
        feed = SeenFeed(self._seen_config.feed_events)
        days = self._seen_config.restore_days
        if days > 0:
            try:
                self.store.flush()  # so the read below sees the last second's events
            except OSError as exc:  # a full disk: the WAL keeps them; start without
                logger.warning("seen feed: the last events are not flushed yet: %s", exc)
            since = _day(days)
            served = self.store.read("served", ["ts", "request_id", "user", "items"], since)
            feedback = self.store.read("feedback", ["ts", "event", "request_id", "item_id"], since)
            feed.restore(served, feedback)
        logger.info("seen feed started: %d events from the last %g days", len(feed), days)
        return feed

    def close(self) -> None:
        """Flush what is pending and close the WAL."""
        self.store.close()


def _retrieve(write: asyncio.Future[None]) -> None:
    """Mark a write's failure as seen (its caller may have gone; the failure was
    handled by freeing its ids)."""
    if not write.cancelled():
        write.exception()


def _day(days_ago: float) -> str:
    """The date partition (``YYYY-MM-DD``) ``days_ago`` days back."""
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%d")


def _remembered(ids: pa.ChunkedArray) -> RecentIds:
    """The non-empty ids of a column, remembered in the order read."""
    remembered = RecentIds(IDS_KEPT)
    remembered.reserve(value for value in ids.to_pylist() if value)
    return remembered
