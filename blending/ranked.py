"""A node's output as columns: item indices, scores, pins and teams, best first.

Nodes pass :class:`Ranked` lists between them; no Python object per item exists
until the final k. Provenance is a small chain of objects, one per node (not per
item), that can explain any row on demand: :meth:`Ranked.components` walks back
through the nodes that made the row and builds its :class:`Component` tuple. It
is called only for the rows returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec
import numpy as np

from blending.candidates import Candidate, Component
from blending.items import ItemTable

__all__ = [
    "Boosted",
    "Gathered",
    "Listed",
    "Provenance",
    "Ranked",
    "Rescored",
    "Slotted",
    "Sourced",
    "Summed",
    "empty_ranked",
]

_NO_ROWS = np.zeros(0, dtype=np.int64)


class Provenance(Protocol):
    """Explains where each row of one node's output got its score."""

    def components(self, row: int) -> tuple[Component, ...]:
        """The components of the output's row ``row``."""
        ...


class Ranked:
    """A candidate list as arrays, best first; each item appears once.

    ``items`` are indices into the request's :class:`ItemTable`; ``scores`` are
    float64. ``pinned`` (bool) and ``team`` (object: a team name or ``None``) are
    ``None`` when no row is pinned or credited to a team. Treat as immutable.
    """

    __slots__ = ("items", "pinned", "scores", "team", "why")

    def __init__(
        self,
        items: np.ndarray,
        scores: np.ndarray,
        why: Provenance,
        pinned: np.ndarray | None = None,
        team: np.ndarray | None = None,
    ) -> None:
        self.items = items
        self.scores = scores
        self.why = why
        self.pinned = pinned
        self.team = team

    def __len__(self) -> int:
        return len(self.items)

    def components(self, row: int) -> tuple[Component, ...]:
        """Where row ``row``'s score came from."""
        return self.why.components(row)

    def take(self, rows: np.ndarray) -> Ranked:
        """The rows ``rows`` (indices into this list), in that order."""
        why = self.why
        # A take of a take points straight at the first list: one step per row, not two.
        if isinstance(why, Gathered) and why.which is None:
            origin = Gathered(why.parents, None, why.rows[rows])
        else:
            origin = Gathered((self,), None, rows)
        return Ranked(
            self.items[rows],
            self.scores[rows],
            origin,
            None if self.pinned is None else self.pinned[rows],
            None if self.team is None else self.team[rows],
        )

    def pinned_at(self, row: int) -> bool:
        """Whether row ``row`` is pinned to its slot."""
        return self.pinned is not None and bool(self.pinned[row])

    def team_at(self, row: int) -> str | None:
        """The team credited with row ``row``, if any."""
        return None if self.team is None else self.team[row]

    def candidates(self, table: ItemTable, limit: int | None = None) -> list[Candidate]:
        """The first ``limit`` rows (all by default) as :class:`Candidate` objects."""
        n = len(self) if limit is None else min(limit, len(self))
        ids = table.ids_of(self.items[:n])
        scores = self.scores[:n].tolist()
        pinned = [False] * n if self.pinned is None else self.pinned[:n].tolist()
        teams = [None] * n if self.team is None else self.team[:n].tolist()
        explain = self.why.components
        return [Candidate(ids[r], scores[r], explain(r), pinned[r], teams[r]) for r in range(n)]

    @classmethod
    def from_candidates(cls, table: ItemTable, candidates: Sequence[Candidate]) -> Ranked:
        """A list of candidates made elsewhere (another process) as columns again,
        keeping their provenance as it was."""
        items = table.indices([c.item_id for c in candidates])
        scores = np.array([c.score for c in candidates], dtype=np.float64)
        pinned = np.array([c.pinned for c in candidates], dtype=bool)
        team = np.array([c.team for c in candidates], dtype=object)
        listed = Listed([c.components for c in candidates])
        return cls(items, scores, listed, pinned if pinned.any() else None, team)


class Listed:
    """Rows whose components were built before (candidates from another process)."""

    def __init__(self, components: Sequence[tuple[Component, ...]]) -> None:
        self.rows = components

    def components(self, row: int) -> tuple[Component, ...]:
        """The row's components, as given."""
        return self.rows[row]


class _Nothing:
    def components(self, row: int) -> tuple[Component, ...]:
        raise IndexError(f"row {row} of an empty list")


def empty_ranked() -> Ranked:
    """A list without items (a failed source)."""
    return Ranked(_NO_ROWS, np.zeros(0), _Nothing())


class Sourced:
    """Rows straight from a source: one component each, at weight 1.

    ``models`` optionally names the model per row (a ``fresh`` node marks the items
    it explored); else every row names ``model``.
    """

    def __init__(
        self,
        source: str,
        model: str,
        version: str,
        scores: np.ndarray,
        curated: bool = False,
        models: Sequence[str] | None = None,
    ) -> None:
        self.source, self.model, self.version = source, model, version
        self.scores, self.curated, self.models = scores, curated, models

    def components(self, row: int) -> tuple[Component, ...]:
        """The source's one component for this row."""
        score = float(self.scores[row])
        model = self.model if self.models is None else self.models[row]
        return (Component(self.source, model, self.version, 1.0, score, score, None, self.curated),)


class Gathered:
    """Rows taken from one or more lists: row ``r`` is row ``rows[r]`` of
    ``parents[which[r]]`` (``which`` ``None``: the only parent)."""

    def __init__(
        self, parents: Sequence[Ranked], which: np.ndarray | None, rows: np.ndarray
    ) -> None:
        self.parents, self.which, self.rows = parents, which, rows

    def components(self, row: int) -> tuple[Component, ...]:
        """The parent row's components."""
        parent = self.parents[0 if self.which is None else int(self.which[row])]
        return parent.why.components(int(self.rows[row]))


class Summed:
    """Rows whose score sums weighted parts of several inputs.

    For input ``j`` (``weight``, list), ``positions[j][r]`` is the input row of output
    row ``r`` (-1: absent) and ``values[j]`` the score each input row contributed
    (before the weight).
    """

    def __init__(
        self,
        inputs: Sequence[tuple[float, Ranked]],
        positions: Sequence[np.ndarray],
        values: Sequence[np.ndarray],
    ) -> None:
        self.inputs, self.positions, self.values = inputs, positions, values

    def components(self, row: int) -> tuple[Component, ...]:
        """Every input's components of the item, reweighted by the blend."""
        parts: list[Component] = []
        for (weight, ranked), positions, values in zip(
            self.inputs, self.positions, self.values, strict=True
        ):
            at = int(positions[row])
            if at >= 0:
                parts.extend(_reweighted(ranked.why.components(at), weight, float(values[at])))
        return tuple(parts)


def _reweighted(components: tuple[Component, ...], weight: float, score: float) -> list[Component]:
    # A source's single component takes the blend's view of it; components of a
    # nested node keep their own scores and multiply weights along the path.
    if len(components) == 1:
        c = components[0]
        if c.slot is None and c.role is None:
            return [
                Component(c.source, c.model, c.version, weight, score, c.raw_score, None, c.curated)
            ]
    return [
        Component(
            c.source,
            c.model,
            c.version,
            None if c.weight is None else c.weight * weight,
            c.score,
            c.raw_score,
            c.slot,
            c.curated,
            c.role,
        )
        for c in components
    ]


class Rescored:
    """Rows of ``parent`` (``rows[r]``) of which the first ``rescored`` took a model's
    score: they gain a component with ``role`` (``rerank`` or ``stack``)."""

    def __init__(
        self,
        parent: Ranked,
        rows: np.ndarray,
        rescored: int,
        scores: np.ndarray,
        node: str,
        model: str,
        version: str,
        role: str,
    ) -> None:
        self.parent, self.rows, self.rescored, self.scores = parent, rows, rescored, scores
        self.node, self.model, self.version, self.role = node, model, version, role

    def components(self, row: int) -> tuple[Component, ...]:
        """The parent row's components, plus the model's for a rescored row."""
        earlier = self.parent.why.components(int(self.rows[row]))
        if row >= self.rescored:
            return earlier
        score = float(self.scores[row])
        mine = Component(self.node, self.model, self.version, None, score, score, role=self.role)
        return (*earlier, mine)


class Slotted:
    """Rows of ``ranked`` with curated picks pinned at slots.

    ``pick[r]`` is the curated row pinned at output row ``r`` (-1: a row of ``ranked``,
    ``rows[r]``); a pinned row keeps the components the item had in ``ranked``
    (``earlier[r]``, -1 if it was not there) and adds the pick's, marked with ``slot[r]``.
    """

    def __init__(
        self,
        ranked: Ranked,
        curated: Ranked,
        rows: np.ndarray,
        pick: np.ndarray,
        earlier: np.ndarray,
        slot: np.ndarray,
    ) -> None:
        self.ranked, self.curated = ranked, curated
        self.rows, self.pick, self.earlier, self.slot = rows, pick, earlier, slot

    def components(self, row: int) -> tuple[Component, ...]:
        """A ranked row's components, or a pinned pick's with its slot."""
        pick = int(self.pick[row])
        if pick < 0:
            return self.ranked.why.components(int(self.rows[row]))
        earlier = int(self.earlier[row])
        before = self.ranked.why.components(earlier) if earlier >= 0 else ()
        position = int(self.slot[row])
        pinned = tuple(
            msgspec.structs.replace(c, weight=None, slot=position, role=None)
            for c in self.curated.why.components(pick)
        )
        return before + pinned


class Boosted:
    """Rows of ``parent`` (``rows[r]``) whose scores rules multiplied: each boost that
    applied to a row adds a component with role ``boost``, its rule as ``model``, its
    factor as ``weight``, the row's score before (``raw_score``) and after (``score``).

    ``boosts`` are ``(rule, applies, factor)`` with ``applies`` over the parent's rows.
    """

    def __init__(
        self,
        parent: Ranked,
        rows: np.ndarray,
        boosts: Sequence[tuple[str, np.ndarray, float]],
        scores: np.ndarray,
    ) -> None:
        self.parent, self.rows, self.boosts, self.scores = parent, rows, boosts, scores

    def components(self, row: int) -> tuple[Component, ...]:
        """The parent row's components, plus one per boost that applied to it."""
        before = int(self.rows[row])
        earlier = self.parent.why.components(before)
        raw, score = float(self.parent.scores[before]), float(self.scores[row])
        mine = tuple(
            Component("boost", rule, "", factor, score, raw, role="boost")
            for rule, applies, factor in self.boosts
            if applies[before]
        )
        return earlier + mine
