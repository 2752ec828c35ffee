"""What each user has already seen and done: to hide and to demote per use case.

The event log knows every list served (each item in it *shown* to its user) and
every click or conversion. Ingresses fetch those events as they happen and keep,
per user, a compact window of them (:class:`UserHistory`: three arrays per user,
9 bytes an event). A use case with ``seen:`` in its config then, per request,
excludes the items the user clicked or converted on within the window and
demotes those shown ``demote_after`` times or more without one
(:meth:`UserHistory.seen`), both as arrays of item indices.

Bounded: at most ``max_users`` users (the least recently active forgotten first)
and ``max_events`` events per user (the oldest dropped first), and nothing older
than the longest window any use case asks for.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from blending.items import ItemTable

__all__ = ["EVENT_KINDS", "SeenItems", "SeenSpec", "UserHistory"]

EVENT_KINDS: dict[str, int] = {"shown": 0, "click": 1, "conversion": 2}
"""Event kinds the history keeps, by their code in its arrays."""

Action = Literal["click", "conversion"]
_ACTIONS: tuple[Action, ...] = ("click", "conversion")
_SHOWN = EVENT_KINDS["shown"]
_EMPTY = np.zeros(0, dtype=np.int64)


class SeenSpec(BaseModel):
    """A use case's rule for what its users have seen (``seen:`` in its config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exclude: list[Action] = Field(
        default_factory=lambda: list(_ACTIONS),
        description="Events that hide an item from its user (empty: hide nothing).",
    )
    window_days: float = Field(30, gt=0, le=3650, description="How far back events count, in days.")
    demote_after: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Demote an item shown this many times in the window without a click "
        "or conversion (null: never).",
    )
    demote_factor: float = Field(
        0.5, ge=0, lt=1, description="What a demoted item's score is multiplied by."
    )

    @model_validator(mode="after")
    def _does_something(self) -> SeenSpec:
        if not self.exclude and self.demote_after is None:
            raise ValueError("seen: set `exclude` or `demote_after`, or leave `seen` out")
        return self

    @property
    def window_s(self) -> float:
        """The window in seconds."""
        return self.window_days * 86_400.0


@dataclass(frozen=True)
class SeenItems:
    """One request's user: the items to hide and those to demote (table indices)."""

    excluded: np.ndarray = field(default_factory=lambda: _EMPTY)
    demoted: np.ndarray = field(default_factory=lambda: _EMPTY)
    demote_factor: float = 1.0


class _Events:
    """One user's events, oldest first."""

    __slots__ = ("items", "kinds", "times")

    def __init__(self) -> None:
        self.items = np.zeros(0, dtype=np.int32)
        self.times = np.zeros(0, dtype=np.int32)
        self.kinds = np.zeros(0, dtype=np.int8)


class UserHistory:
    """Recent events per user (by the event log's pseudonym), in item indices of
    ``table``. Not thread-safe: add and read on the ingress's event loop."""

    def __init__(
        self, table: ItemTable, retain_s: float, max_users: int = 100_000, max_events: int = 500
    ) -> None:
        self.table = table
        self.retain_s = retain_s
        self.max_users = max_users
        self.max_events = max_events
        self._users: OrderedDict[str, _Events] = OrderedDict()
        self.forgotten_users = 0
        """Users dropped to stay within ``max_users`` (for a metric)."""

    def __len__(self) -> int:
        return len(self._users)

    def events(self) -> int:
        """How many events the history holds."""
        return sum(len(e.items) for e in self._users.values())

    def add(
        self, users: Sequence[str], items: Sequence[str], times: np.ndarray, kinds: np.ndarray
    ) -> None:
        """Record events (one per position of the four columns; ``kinds`` are
        :data:`EVENT_KINDS` codes, ``times`` unix seconds), in time order per user."""
        if not len(users):
            return
        codes = self.table.indices(items).astype(np.int32)
        names, inverse = np.unique(np.asarray(users, dtype=object), return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(names) + 1))
        times = np.asarray(times, dtype=np.int64)
        oldest = int(times.max()) - self.retain_s
        for at, user in enumerate(names.tolist()):
            rows = order[bounds[at] : bounds[at + 1]]
            mine = self._users.pop(user, None) or _Events()
            self._users[user] = mine  # now the most recently active
            keep = mine.times >= oldest
            mine.items = np.concatenate([mine.items[keep], codes[rows]])[-self.max_events :]
            mine.times = np.concatenate([mine.times[keep], times[rows].astype(np.int32)])[
                -self.max_events :
            ]
            mine.kinds = np.concatenate([mine.kinds[keep], kinds[rows].astype(np.int8)])[
                -self.max_events :
            ]
        while len(self._users) > self.max_users:
            self._users.popitem(last=False)
            self.forgotten_users += 1

    def seen(self, user: str, spec: SeenSpec, now: float) -> SeenItems | None:
        """What ``spec`` hides and demotes for ``user`` (``None``: nothing)."""
        mine = self._users.get(user)
        if mine is None or not len(mine.items):
            return None
        recent = mine.times >= now - spec.window_s
        acted = recent & (mine.kinds != _SHOWN)
        hide = np.isin(mine.kinds, [EVENT_KINDS[e] for e in spec.exclude]) & recent
        excluded = np.unique(mine.items[hide]).astype(np.int64) if hide.any() else _EMPTY
        demoted = _EMPTY
        if spec.demote_after is not None:
            shown, counts = np.unique(mine.items[recent & ~acted], return_counts=True)
            often = shown[counts >= spec.demote_after]
            demoted = often[~np.isin(often, mine.items[acted])].astype(np.int64)
        if not len(excluded) and not len(demoted):
            return None
        return SeenItems(excluded, demoted, spec.demote_factor)
