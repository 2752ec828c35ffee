"""The old engine's candidate: one Python object per item, provenance built lazily.

Kept only as the golden reference for the columnar engine (``tests/unit/test_golden_engine.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from blending.candidates import Component

__all__ = ["Candidate", "ComponentsBuilder"]


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
