"""Ids the event log has stored recently, so that a resent batch or a client's retry
is stored once: feedback by ``event_id``, served lists by ``request_id``."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

__all__ = ["RecentIds"]


class RecentIds:
    """An insertion-ordered set of at most ``capacity`` ids; the oldest leave first.

    Ids are reserved before their events are written (a concurrent retry of the same
    batch is then a duplicate, not a second write) and released if the write fails.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        """Remember ``event_id`` (forgetting the oldest beyond the capacity)."""
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def reserve(self, event_ids: Iterable[str]) -> list[bool]:
        """For each id, whether it is new; the new ones are remembered at once (an id
        twice in one batch is new only the first time)."""
        fresh = []
        for event_id in event_ids:
            is_new = event_id not in self._ids
            if is_new:
                self.add(event_id)
            fresh.append(is_new)
        return fresh

    def release(self, event_ids: Iterable[str]) -> None:
        """Forget ids whose write failed, so that their retry is stored."""
        for event_id in event_ids:
            self._ids.pop(event_id, None)
