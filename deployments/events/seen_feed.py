"""Per-user events for the ingresses' seen-item histories, in the order stored.

Every item of a served list is *shown* to its (pseudonymised) user; a click or
conversion on a served item is attributed to the user the list was served to. The
event log appends both to this feed as it stores them, and each ingress replica
follows the feed with a cursor (:meth:`SeenFeed.since`, a page of columns per
call, a few calls a second for the whole replica, never one per request) into its
:class:`blending.seen.UserHistory`.

The feed keeps the last ``max_events`` events in memory. The event log starts it
when the first follower asks (an app without a ``seen:`` use case never pays for
it), filled from the Parquet dataset's last ``restore_days``, so a restarted event
log (and an ingress that starts after it) still knows what users saw. A restarted
feed has a new ``epoch``: a follower whose epoch differs starts from the beginning.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict

import msgspec
import pyarrow as pa

from blending.seen import EVENT_KINDS
from deployments.events.records import FeedbackRecord, ServedList

__all__ = ["SeenFeed", "SeenPage"]

_ACTIONS = {
    "click": EVENT_KINDS["click"],
    "conversion": EVENT_KINDS["conversion"],
    "purchase": EVENT_KINDS["conversion"],  # a purchase is the conversion of a shop
}
_SHOWN = EVENT_KINDS["shown"]


class SeenPage(msgspec.Struct, frozen=True):
    """Events after a cursor, as columns (one position per event)."""

    epoch: str
    cursor: int
    """Where the next page starts."""
    users: list[str]
    items: list[str]
    times: list[float]
    kinds: list[int]
    gap: bool = False
    """Events between the cursor asked for and this page were dropped (too old)."""


class SeenFeed:
    """The last ``max_events`` per-user events, with a sequence number each."""

    def __init__(self, max_events: int = 2_000_000, requests_kept: int = 500_000) -> None:
        self.epoch = uuid.uuid4().hex
        self.max_events = max_events
        self._users: list[str] = []
        self._items: list[str] = []
        self._times: list[float] = []
        self._kinds: list[int] = []
        self._base = 0
        """The sequence number of the first event held."""
        self._user_of: OrderedDict[str, str] = OrderedDict()
        """request id -> user, for the served lists of the last ``requests_kept``."""
        self._requests_kept = requests_kept

    def __len__(self) -> int:
        return len(self._users)

    def served(self, record: ServedList) -> None:
        """Every item of a served list was shown to its user."""
        self._remember(record.request_id, record.user)
        self._append([record.user] * len(record.items), record.items, record.ts, _SHOWN)

    def feedback(self, record: FeedbackRecord) -> None:
        """A click or conversion, for the user its list was served to (other events,
        and events on lists served before the feed's memory, are left out)."""
        kind = _ACTIONS.get(record.event)
        user = self._user_of.get(record.request_id)
        if kind is not None and user is not None:
            self._append([user], [record.item_id], record.ts, kind)

    def restore(self, served: pa.Table, feedback: pa.Table) -> None:
        """Refill from stored served lists (``ts``, ``request_id``, ``user``, ``items``)
        and feedback (``ts``, ``event``, ``request_id``, ``item_id``), in time order."""
        rows: list[tuple[float, int, str, str]] = []
        columns = served.select(["ts", "request_id", "user", "items"]).to_pydict()
        for ts, request, user, items in zip(*columns.values(), strict=True):
            self._remember(request, user)
            rows.extend((ts, _SHOWN, user, item) for item in items or ())
        columns = feedback.select(["ts", "event", "request_id", "item_id"]).to_pydict()
        for ts, event, request, item in zip(*columns.values(), strict=True):
            kind, user = _ACTIONS.get(event), self._user_of.get(request)
            if kind is not None and user is not None:
                rows.append((ts, kind, user, item))
        rows.sort(key=lambda row: row[0])
        for ts, kind, user, item in rows[-self.max_events :]:
            self._append([user], [item], ts, kind)

    def since(self, epoch: str, cursor: int, limit: int = 100_000) -> SeenPage:
        """Up to ``limit`` events from ``cursor`` on (from the start when ``epoch`` is
        not this feed's)."""
        gap = False
        if epoch != self.epoch:
            cursor = self._base
        elif cursor < self._base:
            cursor, gap = self._base, True
        start = cursor - self._base
        end = min(len(self._users), start + limit)
        return SeenPage(
            self.epoch,
            self._base + end,
            self._users[start:end],
            self._items[start:end],
            self._times[start:end],
            self._kinds[start:end],
            gap,
        )

    def _remember(self, request_id: str, user: str) -> None:
        self._user_of[request_id] = user
        if len(self._user_of) > self._requests_kept:
            self._user_of.popitem(last=False)

    def _append(self, users: list[str], items: list[str], ts: float, kind: int) -> None:
        n = len(items)
        self._users.extend(users)
        self._items.extend(items)
        self._times.extend([ts] * n)
        self._kinds.extend([kind] * n)
        excess = len(self._users) - self.max_events
        if excess > 0:
            # Drop a quarter at a time: deleting from a list's front moves it all.
            drop = max(excess, self.max_events // 4)
            for column in (self._users, self._items, self._times, self._kinds):
                del column[:drop]
            self._base += drop
