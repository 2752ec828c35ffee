"""The plain data a blend passes between nodes, with provenance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

if TYPE_CHECKING:
    from blending.catalog import ItemCatalog
    from blending.items import ItemTable
    from blending.online import OnlineSnapshot
    from blending.rules import CompiledRules
    from blending.seen import SeenItems
    from blending.spans import NodeSpans

__all__ = [
    "BlendContext",
    "Candidate",
    "Component",
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


class Candidate:
    """One item of a returned list: its id, score, pin, interleaving team and
    provenance (the components that explain its score).

    The engine works on arrays (:class:`blending.ranked.Ranked`) and builds these
    only for the k items it returns.
    """

    __slots__ = ("components", "item_id", "pinned", "score", "team")

    def __init__(
        self,
        item_id: str,
        score: float,
        components: tuple[Component, ...] = (),
        pinned: bool = False,
        team: str | None = None,
    ) -> None:
        self.item_id = item_id
        self.score = score
        self.components = components
        self.pinned = pinned
        self.team = team
        """The interleaving team (ranker node) credited with this item, if any."""

    def __repr__(self) -> str:
        return (
            f"Candidate({self.item_id!r}, {self.score!r}, pinned={self.pinned}, team={self.team!r})"
        )


@dataclass(frozen=True)
class SourceResult:
    """What one source model answered: its version and its items, best first, as
    columns (ids and scores), so it crosses a deployment handle as two buffers."""

    model: str
    version: str
    item_ids: Sequence[str] | np.ndarray
    """The items, best first (a list or a numpy array of strings)."""
    scores: np.ndarray
    """One score per item, in the same order."""
    curated: bool = False
    """Whether the list is human-curated (staff picks) rather than learned."""

    @classmethod
    def from_pairs(
        cls, model: str, version: str, items: Sequence[tuple[str, float]], curated: bool = False
    ) -> SourceResult:
        """A result from ``(item_id, score)`` pairs."""
        ids = [item for item, _ in items]
        scores = np.array([score for _, score in items], dtype=np.float64)
        return cls(model, version, ids, scores, curated)

    def id_list(self) -> list[str]:
        """The ids as a list of Python strings."""
        ids = self.item_ids
        return ids.tolist() if isinstance(ids, np.ndarray) else list(ids)

    @property
    def items(self) -> list[tuple[str, float]]:
        """The answer as ``(item_id, score)`` pairs (for tests and comparisons)."""
        return list(zip(self.id_list(), self.scores.tolist(), strict=True))


@dataclass(frozen=True)
class ScoreResult:
    """What a scoring model answered: its version and one score per item asked."""

    model: str
    version: str
    scores: Sequence[float] | np.ndarray


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
    table: ItemTable | None = None
    """The item id table the blend works in; ``None``: the catalogue's (or, without
    a catalogue, a new one for this request)."""
    rules: CompiledRules | None = None
    """The use case's and the request's filters (applied to every source's list)
    and boosts (applied to the output)."""
    seen: SeenItems | None = None
    """What the user has acted on (hidden) and ignored (demoted), by the use case's
    ``seen`` config."""
    recorded: Mapping[str, tuple[Sequence[str], Sequence[float]]] | None = None
    """For a replay: the lists ``fresh`` and ``bandit`` nodes answered when the request
    was served (they depend on the catalogue and online state of that moment), by
    node, used instead of computing them again."""
    spans: NodeSpans | None = None
    """Opens a trace span around each node (``blending/spans.py``); ``None``: none."""
