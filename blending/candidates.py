"""The plain data a blend passes between nodes, with provenance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from blending.catalog import ItemCatalog
    from blending.online import OnlineSnapshot

__all__ = [
    "BlendContext",
    "Candidate",
    "Component",
    "ComponentsBuilder",
    "ScoreResult",
    "SourceResult",
]


class Component(msgspec.Struct, frozen=True, omit_defaults=True):
    """One source's contribution to an item's score.

    ``score`` is the source's score after normalisation and ``weight`` its weight
    (the product of weights along the path through nested blends), so an item's
    blended score is the sum of ``weight * score`` over its blend components.
    Pinned items carry a component with ``weight`` ``None`` and their ``slot``;
    components from a curated list say ``curated``. A ``rerank`` or ``stack`` node
    adds a component with that ``role``: the model's score, which replaced the
    item's score.

    A msgspec struct, so the API serialises it as is: fields at their default
    (``slot``, ``curated``, ``role``) are left out of the JSON.
    """

    source: str
    model: str
    version: str
    weight: float | None
    score: float
    raw_score: float
    slot: int | None = None
    curated: bool = False
    role: str | None = None


ComponentsBuilder = Callable[[], tuple[Component, ...]]
"""Builds an item's components when they are first read."""

_KEEP: Any = object()


class Candidate:
    """An item on its way through the DAG, with where its score came from.

    Every blend creates a candidate for each of hundreds of items, but only the top
    k reach the response, so provenance is lazy: pass ``components`` or a
    ``build`` function that makes them on first read. Treat candidates as
    immutable; :meth:`evolve` makes a changed copy.
    """

    __slots__ = ("_build", "_components", "item_id", "pinned", "score", "team")

    def __init__(
        self,
        item_id: str,
        score: float,
        components: tuple[Component, ...] = (),
        pinned: bool = False,
        team: str | None = None,
        *,
        build: ComponentsBuilder | None = None,
    ) -> None:
        self.item_id = item_id
        self.score = score
        self.pinned = pinned
        self.team = team
        """The interleaving team (ranker node) credited with this item, if any."""
        self._components: tuple[Component, ...] | None = None if build else components
        self._build = build

    @property
    def components(self) -> tuple[Component, ...]:
        """Where the score came from (built now if it was deferred)."""
        if self._components is None:
            assert self._build is not None
            self._components, self._build = self._build(), None
        return self._components

    def evolve(
        self,
        *,
        score: float = _KEEP,
        pinned: bool = _KEEP,
        team: str | None = _KEEP,
        build: ComponentsBuilder | None = None,
    ) -> Candidate:
        """A copy with the given fields changed; ``build`` replaces the components."""
        copy = Candidate(
            self.item_id,
            self.score if score is _KEEP else score,
            (),
            self.pinned if pinned is _KEEP else pinned,
            self.team if team is _KEEP else team,
        )
        if build is not None:
            copy._components, copy._build = None, build
        else:
            copy._components, copy._build = self._components, self._build
        return copy

    def __repr__(self) -> str:
        return (
            f"Candidate({self.item_id!r}, {self.score!r}, pinned={self.pinned}, team={self.team!r})"
        )


@dataclass(frozen=True)
class SourceResult:
    """What one source model answered: its version and its items, best first."""

    model: str
    version: str
    items: list[tuple[str, float]]
    curated: bool = False
    """Whether the list is human-curated (staff picks) rather than learned."""


@dataclass(frozen=True)
class ScoreResult:
    """What a scoring model answered: its version and one score per item asked."""

    model: str
    version: str
    scores: list[float]


@dataclass(frozen=True)
class BlendContext:
    """The per-request inputs every node may read."""

    user_id: str
    k: int
    exclude: frozenset[str] = frozenset()
    context: dict[str, Any] = field(default_factory=dict)
    request_id: str = ""
    """Seeds per-request randomness (interleaving), so a result can be replayed."""
    catalog: ItemCatalog | None = None
    """Item categories and availability, for ``filter`` and ``diversify``; a live
    catalogue's ``recent`` also feeds ``fresh`` nodes."""
    online: OnlineSnapshot | None = None
    """Recent decayed impressions and clicks per item, for ``bandit`` and ``fresh``."""
    now: float | None = None
    """The request's wall-clock time (seconds since the epoch) for ``fresh`` nodes'
    ages; ``None``: the time they run. Set it to replay a request."""
