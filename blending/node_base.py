"""What every DAG node kind shares: its name's pattern, its base model, the weights
check (``blending/node_specs.py`` and ``blending/experiment_specs.py`` build on it)."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["NodeBase", "NodeName", "check_weights"]

NodeName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")]


class NodeBase(BaseModel):
    """A node of a use case's DAG: frozen, no unknown settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def reads(self) -> list[str]:
        """Names of the nodes this node reads from."""
        return []

    def models(self) -> list[str]:
        """Names of the hosted models this node calls."""
        return []

    def check(self, name: str) -> None:
        """Raise ``ValueError`` naming the node when its settings contradict each other."""


def check_weights(node: str, weights: dict[str, float]) -> None:
    """Raise ``ValueError`` naming ``node`` unless every weight is finite, >= 0, and
    one is > 0."""
    negative = {k: w for k, w in weights.items() if not (w >= 0 and math.isfinite(w))}
    if negative:
        raise ValueError(f"node {node!r}: weights must be finite and >= 0, got {negative}")
    if not any(w > 0 for w in weights.values()):
        raise ValueError(f"node {node!r}: all weights are zero; at least one must be > 0")
