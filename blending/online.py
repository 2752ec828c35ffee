"""Online learning state: time-decayed impression and click counts, and Thompson sampling.

Feedback arrives as events; :class:`DecayedCounts` keeps, per item, impressions and
clicks that lose half their weight every ``half_life_s``, so yesterday's hit fades
and today's rises. Decay is lazy: each item stores its values and the time they
were last brought up to date, and is decayed only when read or updated, so an
event costs O(1) however many items are tracked.

Requests do not read the counts directly: the process that owns them publishes an
:class:`OnlineSnapshot` (the most-shown items' counts at one instant), which reaches
the ``bandit`` and ``fresh`` nodes through ``BlendContext.online``. A snapshot is
plain JSON, so it can travel between processes.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np

__all__ = [
    "DecayedCounts",
    "Event",
    "OnlineSnapshot",
    "posterior",
    "thompson_draws",
    "thompson_scores",
]

Event = Literal["impression", "click"]


def _decay(half_life_s: float, elapsed_s: float) -> float:
    """The factor a count keeps after ``elapsed_s`` (never grows: a read before the
    latest event sees the counts as of that event)."""
    return math.pow(0.5, max(elapsed_s, 0.0) / half_life_s)


@dataclass(frozen=True)
class OnlineSnapshot:
    """Decayed impressions and clicks of the most-shown items, as of ``at``.

    An item absent from the snapshot has had no feedback as far as the snapshot
    knows (it may have had a little, below the snapshot's cut).
    """

    at: float
    """Seconds since the epoch the counts were decayed to."""
    impressions: dict[str, float] = field(default_factory=dict)
    """Item id -> decayed impressions."""
    clicks: dict[str, float] = field(default_factory=dict)
    """Item id -> decayed clicks."""

    def has_feedback(self, item_id: str) -> bool:
        """Whether the item has been shown or clicked, as far as the snapshot knows."""
        return self.impressions.get(item_id, 0.0) > 0.0 or self.clicks.get(item_id, 0.0) > 0.0

    @cached_property
    def items(self) -> tuple[str, ...]:
        """Every item the snapshot has counts for, sorted, so draws over them are
        reproducible whatever order the counts arrived in."""
        return tuple(sorted(self.impressions.keys() | self.clicks.keys()))

    @cached_property
    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(impressions, clicks)`` of :attr:`items`, in that order, computed once per
        snapshot rather than once per request."""
        return self._arrays(self.items)

    def _arrays(self, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        n = len(item_ids)
        shown = np.fromiter((self.impressions.get(i, 0.0) for i in item_ids), np.float64, n)
        clicks = np.fromiter((self.clicks.get(i, 0.0) for i in item_ids), np.float64, n)
        return shown, clicks

    def __len__(self) -> int:
        return len(self.items)

    def to_json(self) -> dict[str, Any]:
        """``{"at": ..., "impressions": {...}, "clicks": {...}}``."""
        return {"at": self.at, "impressions": dict(self.impressions), "clicks": dict(self.clicks)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OnlineSnapshot:
        """The snapshot :meth:`to_json` wrote; raises ``ValueError`` naming a bad field."""
        return cls(
            at=_number(data, "at", "snapshot"),
            impressions=_counts(data.get("impressions", {}), "snapshot.impressions"),
            clicks=_counts(data.get("clicks", {}), "snapshot.clicks"),
        )


class DecayedCounts:
    """Per item, impressions and clicks that halve every ``half_life_s`` seconds."""

    def __init__(self, half_life_s: float) -> None:
        if not (half_life_s > 0 and math.isfinite(half_life_s)):
            raise ValueError(f"half_life_s: expected a finite number > 0, got {half_life_s!r}")
        self.half_life_s = float(half_life_s)
        # item -> [impressions, clicks, time both were last decayed to]
        self._items: dict[str, list[float]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def observe(self, item_id: str, event: Event, at: float) -> None:
        """Count one impression or click of ``item_id`` that happened at ``at``.

        Events may arrive out of order: a late one is decayed forward to the item's
        latest time, so the counts are the same whatever the arrival order.
        """
        if event == "impression":
            index = 0
        elif event == "click":
            index = 1
        else:
            raise ValueError(f"event: expected 'impression' or 'click', got {event!r}")
        state = self._items.get(item_id)
        if state is None:
            state = self._items[item_id] = [0.0, 0.0, at]
        if at >= state[2]:
            factor = _decay(self.half_life_s, at - state[2])
            state[0] *= factor
            state[1] *= factor
            state[2] = at
            state[index] += 1.0
        else:
            state[index] += _decay(self.half_life_s, state[2] - at)

    def counts(self, item_id: str, now: float) -> tuple[float, float]:
        """``(impressions, clicks)`` of the item decayed to ``now``; zeros if unseen."""
        state = self._items.get(item_id)
        if state is None:
            return 0.0, 0.0
        factor = _decay(self.half_life_s, now - state[2])
        return state[0] * factor, state[1] * factor

    def top(self, now: float, limit: int) -> list[tuple[str, float]]:
        """The ``limit`` items with the most decayed clicks at ``now``, best first, with
        those clicks; ties go to more impressions, then to the smaller id."""
        decayed = ((item, *self.counts(item, now)) for item in self._items)
        best = heapq.nsmallest(limit, decayed, key=lambda r: (-r[2], -r[1], r[0]))
        return [(item, clicks) for item, _, clicks in best]

    def snapshot(self, now: float, limit: int) -> OnlineSnapshot:
        """The ``limit`` items with the most decayed impressions at ``now`` (ties: more
        clicks, then the smaller id), with their counts."""
        decayed = ((item, *self.counts(item, now)) for item in self._items)
        best = heapq.nsmallest(limit, decayed, key=lambda r: (-r[1], -r[2], r[0]))
        return OnlineSnapshot(
            at=now,
            impressions={item: imp for item, imp, _ in best},
            clicks={item: clicks for item, _, clicks in best},
        )

    def prune(self, now: float, below: float) -> int:
        """Forget items whose decayed impressions and clicks are both under ``below``
        at ``now`` (they would weigh nothing anyway); returns how many went."""
        gone = [
            item for item in self._items if all(value < below for value in self.counts(item, now))
        ]
        for item in gone:
            del self._items[item]
        return len(gone)

    def trim(self, now: float, max_items: int) -> int:
        """Keep the ``max_items`` items with the most decayed impressions at ``now``
        (ties: more clicks, then the smaller id), forget the rest; returns how many went."""
        if len(self._items) <= max_items:
            return 0
        decayed = ((item, *self.counts(item, now)) for item in self._items)
        kept = heapq.nsmallest(max_items, decayed, key=lambda r: (-r[1], -r[2], r[0]))
        before = len(self._items)
        self._items = {item: self._items[item] for item, _, _ in kept}
        return before - len(self._items)

    def to_json(self) -> dict[str, Any]:
        """A checkpoint: every item's counts decayed to one reference time ``at``, the
        latest time any item was updated (so nothing is decayed backwards)."""
        at = max((state[2] for state in self._items.values()), default=0.0)
        items: dict[str, list[float]] = {}
        for item in self._items:
            impressions, clicks = self.counts(item, at)
            items[item] = [impressions, clicks]
        return {"half_life_s": self.half_life_s, "at": at, "items": items}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DecayedCounts:
        """The counts :meth:`to_json` wrote; raises ``ValueError`` naming a bad field."""
        counts = cls(_number(data, "half_life_s", "checkpoint"))
        at = _number(data, "at", "checkpoint")
        items = data.get("items")
        if not isinstance(items, Mapping):
            raise ValueError(f"checkpoint.items: expected an object, got {type(items).__name__}")
        for item, pair in items.items():
            valid = (
                isinstance(pair, Sequence) and len(pair) == 2 and all(_is_count(v) for v in pair)
            )
            if not valid:
                raise ValueError(
                    f"checkpoint.items.{item}: expected [impressions, clicks] >= 0, got {pair!r}"
                )
            counts._items[str(item)] = [float(pair[0]), float(pair[1]), at]
        return counts


def thompson_scores(
    snapshot: OnlineSnapshot,
    item_ids: Sequence[str],
    rng: np.random.Generator,
    prior: tuple[float, float] = (1.0, 1.0),
) -> list[float]:
    """One Thompson draw of each item's click rate, in ``item_ids`` order.

    Item ``i`` draws from ``Beta(prior[0] + clicks_i, prior[1] + max(impressions_i -
    clicks_i, 0))``; an item absent from the snapshot draws from the prior.
    """
    return [float(x) for x in thompson_draws(snapshot, item_ids, rng, prior)]


def thompson_draws(
    snapshot: OnlineSnapshot,
    item_ids: Sequence[str],
    rng: np.random.Generator,
    prior: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """:func:`thompson_scores` as a numpy array; fastest for ``snapshot.items``, whose
    counts the snapshot keeps as arrays."""
    return rng.beta(*posterior(snapshot, item_ids, prior))


def posterior(
    snapshot: OnlineSnapshot, item_ids: Sequence[str], prior: tuple[float, float] = (1.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """The two parameters of each item's Beta posterior of its click rate, in
    ``item_ids`` order: what :func:`thompson_draws` draws from."""
    a0, b0 = prior
    if not (a0 > 0 and b0 > 0 and math.isfinite(a0) and math.isfinite(b0)):
        raise ValueError(f"prior: expected two finite numbers > 0, got {prior!r}")
    if item_ids is snapshot.items:
        shown, clicks = snapshot.arrays
    else:
        shown, clicks = snapshot._arrays(item_ids)
    return a0 + clicks, b0 + np.maximum(shown - clicks, 0.0)


def _is_count(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _number(data: Mapping[str, Any], key: str, where: str) -> float:
    value = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{where}.{key}: expected a finite number, got {value!r}")
    return float(value)


def _counts(data: object, where: str) -> dict[str, float]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
    bad = {k: v for k, v in data.items() if not _is_count(v)}
    if bad:
        raise ValueError(f"{where}: expected counts >= 0, got {bad}")
    return {str(k): float(v) for k, v in data.items()}
