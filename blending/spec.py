"""The use-case DAG declared in config, validated when it loads.

A use case is a small DAG of named nodes with a latency budget. Every reference,
weight and cycle is checked here, so a broken config fails at deploy time with a
message naming the node, never on the first request::

    budget_ms: 150
    nodes:
      cf:      {kind: source, model: mf, candidates: 200}
      pop:     {kind: source, model: popularity}
      blended: {kind: blend, weights: {cf: 0.7, pop: 0.3}, normalize: minmax}
      picks:   {kind: source, model: staff_picks}
      pinned:  {kind: slots, input: blended, curated: picks, positions: [1, 4]}
      final:   {kind: filter, input: pinned}
    output: final

A use case may also carry standing ``rules`` (filters and boosts over catalogue
attributes, :mod:`blending.rules`) and a ``seen`` policy (:mod:`blending.seen`).

Node kinds: ``source``, ``blend``, ``rerank``, ``stack``, ``slots``, ``filter``,
``diversify``, ``experiment``, ``interleave`` and ``fallback``; ``fresh`` and
``bandit`` are sources computed in process from the live catalogue and the online
click counts, without a model.
"""

from __future__ import annotations

import graphlib
import math
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from blending.evaluation.objective import DEFAULT_OBJECTIVE, OUTCOMES
from blending.exploration import ExploreSpec
from blending.node_specs import (
    ArmSpec,
    BanditNodeSpec,
    BlendNodeSpec,
    DiversifyNodeSpec,
    ExperimentNodeSpec,
    FallbackNodeSpec,
    FilterNodeSpec,
    FreshNodeSpec,
    InterleaveNodeSpec,
    LiveSourceSpec,
    NodeName,
    NodeSpec,
    PruneStageSpec,
    RerankNodeSpec,
    SlotsNodeSpec,
    SourceNodeSpec,
    StackNodeSpec,
)
from blending.rules import RulesSpec
from blending.seen import SeenSpec
from models.errors import ConfigError

# The node kinds are re-exported: a use case and its nodes are one public spec.
__all__ = [
    "ArmSpec",
    "BanditNodeSpec",
    "BlendNodeSpec",
    "DiversifyNodeSpec",
    "ExperimentNodeSpec",
    "FallbackNodeSpec",
    "FilterNodeSpec",
    "FreshNodeSpec",
    "InterleaveNodeSpec",
    "LiveSourceSpec",
    "NodeSpec",
    "PruneStageSpec",
    "RerankNodeSpec",
    "SlotsNodeSpec",
    "SourceNodeSpec",
    "StackNodeSpec",
    "UseCaseSpec",
]


class UseCaseSpec(BaseModel):
    """One use case: its nodes by name, the node whose list is returned, its budget."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nodes: dict[NodeName, NodeSpec] = Field(min_length=1, description="Nodes by name.")
    output: str = Field(description="The node whose list the endpoint returns (then top-k).")
    budget_ms: float = Field(
        250,
        gt=0,
        le=60_000,
        description="Latency budget: the answer is built from whatever arrived by then.",
    )
    rules: RulesSpec | None = Field(
        None,
        description="Standing filters (on every source's list) and boosts (on the output) "
        "over the catalogue's attributes, before each request's own.",
    )
    seen: SeenSpec | None = Field(
        None,
        description="Hide what each user clicked or converted on, and demote what they "
        "were shown often without a click, from the event log.",
    )
    objective: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_OBJECTIVE),
        description="What each outcome of a served item is worth (`click`, `add_to_cart`, "
        "`conversion`, `purchase`, `dwell` seconds); reports show every outcome and this "
        "weighted sum per impression.",
    )
    explore: ExploreSpec | None = Field(
        None,
        description="Show an item from just below the top k at a share of positions, so "
        "the log can evaluate other blends offline (every position's propensity is "
        "recorded).",
    )

    @field_validator("objective")
    @classmethod
    def _some_weight(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(OUTCOMES))
        if unknown:
            raise ValueError(f"{unknown} are not outcomes; use {list(OUTCOMES)}")
        if not value or not all(math.isfinite(w) for w in value.values()):
            raise ValueError("needs at least one outcome, with finite weights")
        if not any(value.values()):
            raise ValueError("every weight is 0: nothing to optimise")
        return value

    @model_validator(mode="after")
    def _check_graph(self) -> UseCaseSpec:
        for name, node in self.nodes.items():
            for ref in node.reads():
                if ref not in self.nodes:
                    raise ValueError(f"node {name!r} reads unknown node {ref!r}")
            node.check(name)
        if self.output not in self.nodes:
            raise ValueError(f"output names unknown node {self.output!r}")
        self.topological_order()  # raises naming the cycle, if any
        unused = sorted(set(self.nodes) - self.reachable(self.output))
        if unused:
            raise ValueError(f"nodes {unused} do not feed the output {self.output!r}")
        return self

    def topological_order(self) -> list[str]:
        """Node names, each after every node it reads; raises naming a cycle."""
        sorter = graphlib.TopologicalSorter({n: node.reads() for n, node in self.nodes.items()})
        try:
            return list(sorter.static_order())
        except graphlib.CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise ValueError(f"nodes form a cycle: {cycle}") from exc

    def reachable(self, start: str) -> set[str]:
        """``start`` and every node it reads, directly or not."""
        seen: set[str] = set()
        stack = [start]
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.add(name)
                stack.extend(self.nodes[name].reads())
        return seen

    def sources(self) -> dict[str, SourceNodeSpec]:
        """The source nodes that call a model, by name."""
        return {n: s for n, s in self.nodes.items() if isinstance(s, SourceNodeSpec)}

    def live_sources(self) -> dict[str, LiveSourceSpec]:
        """The sources computed in process (``fresh``, ``bandit``), by name."""
        return {
            n: s for n, s in self.nodes.items() if isinstance(s, FreshNodeSpec | BanditNodeSpec)
        }

    def models(self) -> set[str]:
        """Every hosted model some node calls."""
        return {model for node in self.nodes.values() for model in node.models()}

    def check_models(self, use_case: str, known_models: Iterable[str]) -> None:
        """Raise ``ConfigError`` naming the node when it calls an unknown model."""
        known = set(known_models)
        for name, node in self.nodes.items():
            for model in node.models():
                if model not in known:
                    raise ConfigError(
                        f"use case {use_case!r}, node {name!r}: unknown model {model!r} "
                        f"(expected one of {sorted(known)})"
                    )
