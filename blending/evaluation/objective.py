"""What a use case optimises: several outcomes of a served item, weighed into one
objective (``objective:`` in its config, changeable at run time).

Feedback events carry their outcome: ``click``, ``add_to_cart``, ``conversion``,
``purchase`` (counted once per served item each) and ``dwell`` (seconds spent on
the item, summed). A use case declares how much each is worth, for example
``{click: 1, add_to_cart: 3, purchase: 10, dwell: 0.01}``; reports show every
outcome per impression and the objective, the weighted sum per impression.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypeAlias

__all__ = ["DEFAULT_OBJECTIVE", "OUTCOMES", "Outcome", "objective_per_impression"]

Outcome: TypeAlias = Literal["click", "add_to_cart", "conversion", "purchase", "dwell"]
"""A feedback event that is an outcome (``impression`` is the denominator)."""

OUTCOMES: tuple[Outcome, ...] = ("click", "add_to_cart", "conversion", "purchase", "dwell")

DEFAULT_OBJECTIVE: dict[str, float] = {"click": 1.0}
"""Without ``objective:``, a use case optimises clicks."""


def objective_per_impression(
    outcomes: Mapping[str, float], impressions: int, weights: Mapping[str, float]
) -> float | None:
    """The weighted sum of ``outcomes`` per impression; ``None`` without impressions."""
    if impressions <= 0:
        return None
    return sum(w * outcomes.get(name, 0.0) for name, w in weights.items()) / impressions
