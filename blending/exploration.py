"""Exploration in the served list, and the propensity of every item shown.

Counterfactual evaluation (how would another blend have done, from the log alone)
needs, for each position of each served list, the probability that the serving
policy would have shown that item there. A deterministic blend gives 1 for its own
items and 0 for any other, so no other blend can be evaluated where it differs. A
use case's ``explore`` setting makes the probabilities non-zero at a bounded cost:
with probability ``epsilon``, a request's list is a uniformly random ordering of
the blend's own items and the ``pool`` items it ranked just below them (positions
above ``keep_top`` and pinned slots stay as they are).

The propensities are then exact and simple: a random ordering of T items puts any
one of them at any one position with probability 1/T, so the item the blend put at
a position is shown there with probability ``1 - epsilon + epsilon / T``, and any
other of the T items with ``epsilon / T``. Every list made of the same T items in
any order has support, so a candidate blend that reorders them, or promotes items
from just below the top k, can be evaluated; one that brings items from further
down cannot. The draws are seeded by the request id: a replay draws the same.

When the blend's own list is itself a random draw (an interleaved list), the chance
of each item at each position under that draw (``blending/draft_odds.py``) takes the
place of "1 for the blend's item": :func:`explored_chances` mixes the two.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from blending.ranked import Ranked

__all__ = ["ExploreSpec", "Explored", "explore", "explore_rng", "explored_chances"]


class ExploreSpec(BaseModel):
    """A use case's exploration (``explore:`` in its config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epsilon: float = Field(
        gt=0,
        le=0.5,
        description="The share of requests whose list is a random ordering of the blend's "
        "top k and the pool below it.",
    )
    pool: int = Field(
        10,
        ge=0,
        le=500,
        description="How many of the blend's items just below the top k an explored "
        "list draws from, beside the top k.",
    )
    keep_top: int = Field(0, ge=0, le=100, description="Positions at the top that never explore.")


class Explored:
    """The served rows, each position's propensity, which positions show an item
    other than the blend's own there, and the draw's reach: the positions that may
    explore and the blend's positions their items are drawn from (both empty when
    nothing can explore)."""

    __slots__ = ("drawn_from", "explored", "may", "propensities", "ranked")

    def __init__(
        self,
        ranked: Ranked,
        propensities: np.ndarray,
        explored: np.ndarray,
        may: np.ndarray | None = None,
        drawn_from: np.ndarray | None = None,
    ) -> None:
        self.ranked = ranked
        self.propensities = propensities
        self.explored = explored
        self.may = np.zeros(0, dtype=np.int64) if may is None else may
        self.drawn_from = np.zeros(0, dtype=np.int64) if drawn_from is None else drawn_from


def explore_rng(request_id: str, use_case: str) -> np.random.Generator:
    """The request's exploration draws, the same on a replay."""
    digest = hashlib.sha256(f"explore:{use_case}:{request_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def explore(ranked: Ranked, k: int, spec: ExploreSpec, rng: np.random.Generator) -> Explored:
    """The top ``k`` of ``ranked`` with ``spec``'s exploration, drawn from ``rng``;
    ``ranked`` holds the pool below its top ``k``."""
    shown = min(k, len(ranked))
    rows = np.arange(shown, dtype=np.int64)
    propensities = np.ones(shown, dtype=np.float64)
    explored = np.zeros(shown, dtype=bool)
    may = np.arange(min(spec.keep_top, shown), shown, dtype=np.int64)
    if ranked.pinned is not None:
        may = may[~ranked.pinned[may]]
    drawn_from = np.concatenate(
        [may, np.arange(shown, min(len(ranked), shown + spec.pool), dtype=np.int64)]
    )
    if len(may) == 0 or len(drawn_from) < 2:
        return Explored(ranked.take(rows), propensities, explored)
    share = spec.epsilon / len(drawn_from)
    propensities[may] = 1.0 - spec.epsilon + share
    if rng.random() < spec.epsilon:
        rows[may] = rng.permutation(drawn_from)[: len(may)]
        moved = rows[may] != may
        propensities[may[moved]] = share
        explored[may[moved]] = True
    return Explored(ranked.take(rows), propensities, explored, may, drawn_from)


def explored_chances(
    served: Sequence[int], explored: Explored, base: Sequence[Mapping[int, float]], epsilon: float
) -> list[float]:
    """Each served position's propensity when the blend's own list is a random draw
    whose chances are ``base`` (per position of the blend's list: item -> chance).

    A position that may explore shows item ``x`` with ``(1 - epsilon) * base[p][x]
    + epsilon * P(x among the drawn-from positions) / T``; any other shows the
    blend's item with its own chance.
    """
    chances = [base[p].get(item, 0.0) for p, item in enumerate(served)]
    if not len(explored.may):
        return chances
    drawn = explored.drawn_from.tolist()
    for p in explored.may.tolist():
        item = served[p]
        among = sum(base[q].get(item, 0.0) for q in drawn)
        chances[p] = (1.0 - epsilon) * chances[p] + epsilon * among / len(drawn)
    return chances
