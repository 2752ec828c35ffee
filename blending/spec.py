"""The use-case DAG declared in config, validated when it loads.

A use case is a small DAG of named nodes. Every reference, weight and cycle is
checked here, so a broken config fails at deploy time with a message naming the
node, never on the first request::

    nodes:
      mf:      {kind: source, model: mf, candidates: 200}
      pop:     {kind: source, model: popularity}
      blended: {kind: blend, weights: {mf: 0.7, pop: 0.3}, normalize: minmax}
      picks:   {kind: source, model: staff_picks}
      pinned:  {kind: slots, input: blended, curated: picks, positions: [1, 4]}
      final:   {kind: filter, input: pinned}
    output: final
"""

from __future__ import annotations

import graphlib
import math
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.errors import ConfigError

__all__ = [
    "BlendNodeSpec",
    "FilterNodeSpec",
    "NodeSpec",
    "SlotsNodeSpec",
    "SourceNodeSpec",
    "UseCaseSpec",
]

NodeName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")]


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def inputs(self) -> list[str]:
        """Names of the nodes this node reads from."""
        return []


class SourceNodeSpec(_Node):
    """A hosted model producing scored candidates for the request's user."""

    kind: Literal["source"]
    model: str = Field(description="Name of a model under the app's `models`.")
    candidates: int = Field(
        100, ge=1, le=10_000, description="How many candidates to ask the model for."
    )


class BlendNodeSpec(_Node):
    """Weighted sum of its inputs' scores after per-input normalisation."""

    kind: Literal["blend"]
    weights: dict[str, float] = Field(
        description="Input node name -> non-negative weight; at least one above zero.",
        min_length=1,
    )
    normalize: Literal["minmax", "zscore", "rank", "none"] = Field(
        "minmax", description="How each input's scores are put on one scale before weighting."
    )

    def inputs(self) -> list[str]:
        """The weighted nodes."""
        return list(self.weights)


class SlotsNodeSpec(_Node):
    """Curated items pinned at fixed positions of its input's list."""

    kind: Literal["slots"]
    input: str = Field(description="The ranked list to pin items into.")
    curated: str = Field(description="The node whose items are pinned, in its order.")
    positions: list[Annotated[int, Field(ge=1, le=1000)]] = Field(
        min_length=1, description="1-based positions, one curated item each."
    )

    def inputs(self) -> list[str]:
        """The ranked list, then the curated list."""
        return [self.input, self.curated]


class FilterNodeSpec(_Node):
    """Drops the request's excluded items and duplicates."""

    kind: Literal["filter"]
    input: str = Field(description="The list to filter.")

    def inputs(self) -> list[str]:
        """The filtered node."""
        return [self.input]


NodeSpec = Annotated[
    SourceNodeSpec | BlendNodeSpec | SlotsNodeSpec | FilterNodeSpec,
    Field(discriminator="kind"),
]


class UseCaseSpec(BaseModel):
    """One use case: its nodes by name and the node whose list is returned."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nodes: dict[NodeName, NodeSpec] = Field(min_length=1, description="Nodes by name.")
    output: str = Field(description="The node whose list the endpoint returns (then top-k).")

    @model_validator(mode="after")
    def _check_graph(self) -> UseCaseSpec:
        for name, node in self.nodes.items():
            for ref in node.inputs():
                if ref not in self.nodes:
                    raise ValueError(f"node {name!r} reads unknown node {ref!r}")
            if isinstance(node, BlendNodeSpec):
                _check_weights(name, node.weights)
            if isinstance(node, SlotsNodeSpec) and len(set(node.positions)) != len(node.positions):
                raise ValueError(f"node {name!r}: positions {node.positions} repeat a position")
        if self.output not in self.nodes:
            raise ValueError(f"output names unknown node {self.output!r}")
        self.topological_order()  # raises naming the cycle, if any
        unused = sorted(set(self.nodes) - self._reachable_from_output())
        if unused:
            raise ValueError(f"nodes {unused} do not feed the output {self.output!r}")
        return self

    def topological_order(self) -> list[str]:
        """Node names, each after every node it reads; raises naming a cycle."""
        sorter = graphlib.TopologicalSorter({n: node.inputs() for n, node in self.nodes.items()})
        try:
            return list(sorter.static_order())
        except graphlib.CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise ValueError(f"nodes form a cycle: {cycle}") from exc

    def _reachable_from_output(self) -> set[str]:
        seen: set[str] = set()
        stack = [self.output]
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.add(name)
                stack.extend(self.nodes[name].inputs())
        return seen

    def sources(self) -> dict[str, SourceNodeSpec]:
        """The source nodes by name."""
        return {n: s for n, s in self.nodes.items() if isinstance(s, SourceNodeSpec)}

    def check_models(self, use_case: str, known_models: Iterable[str]) -> None:
        """Raise ``ConfigError`` naming the node when a source uses an unknown model."""
        known = set(known_models)
        for name, node in self.sources().items():
            if node.model not in known:
                raise ConfigError(
                    f"use case {use_case!r}, node {name!r}: unknown model {node.model!r} "
                    f"(expected one of {sorted(known)})"
                )


def _check_weights(node: str, weights: dict[str, float]) -> None:
    negative = {k: w for k, w in weights.items() if not (w >= 0 and math.isfinite(w))}
    if negative:
        raise ValueError(f"node {node!r}: weights must be finite and >= 0, got {negative}")
    if not any(w > 0 for w in weights.values()):
        raise ValueError(f"node {node!r}: all weights are zero; at least one must be > 0")
