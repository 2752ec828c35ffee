"""What a blend returns: the top-k list and how it was made (``blending/dag.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from blending.candidates import Candidate

__all__ = ["BlendOutcome"]


@dataclass(frozen=True)
class BlendOutcome:
    """The top-k list and how it was made.

    ``failures`` maps each source (``fresh`` and ``bandit`` too), rerank or stack
    node that failed or was late to why; ``late`` names those that missed the
    deadline. ``variant`` maps each experiment node the request passed through to its
    user's arm; ``fallbacks`` names the fallback nodes that used their fallback branch.
    """

    items: list[Candidate]
    degraded: bool
    failures: dict[str, str] = field(default_factory=dict)
    late: frozenset[str] = frozenset()
    model_versions: dict[str, str] = field(default_factory=dict)
    variant: dict[str, str] = field(default_factory=dict)
    fallbacks: tuple[str, ...] = ()
    """Fallback nodes that used their fallback branch, and sources whose model had
    nothing for the user and whose ``fallback_model`` answered."""
    answered: int = 0
    """How many sources (model, ``fresh`` and ``bandit`` nodes) answered in time."""
    node_ms: dict[str, float] = field(default_factory=dict)
    """Milliseconds each node that ran took (a late source: until it was given up)."""
    live_lists: dict[str, tuple[list[str], list[float]]] = field(default_factory=dict)
    """What each ``fresh`` and ``bandit`` node answered (ids, scores), for a replay."""
    sizes: dict[str, int] = field(default_factory=dict)
    """How many items each node that ran produced."""
    propensities: list[float] = field(default_factory=list)
    """Per position, the probability that this use case's policy shows that item
    there for this request: the arms' probabilities times exploration's draw
    (``blending/exploration.py``)."""
    explored: tuple[int, ...] = ()
    """Positions (from 1) that showed an exploration item."""
