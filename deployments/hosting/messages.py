"""Typed messages between the ingress and a model's deployment (what crosses a
handle besides the blend's own ``SourceResult`` and ``ScoreResult``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Predictions"]


@dataclass(frozen=True)
class Predictions:
    """A model's own output for each instance, and the version that gave it."""

    version: str
    predictions: list[Any]
    """JSON-able, one per instance: a number, a list, or a recommender's items."""
