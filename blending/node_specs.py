"""The node kinds a use case's DAG is made of, each a pydantic model that checks
its own parameters (``kind`` is the discriminator); :mod:`blending.spec` checks how
they connect."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from blending.experiment_specs import (
    ArmSpec,
    ExperimentNodeSpec,
    InterleaveNodeSpec,
    PruneStageSpec,
)
from blending.node_base import NodeBase, NodeName, check_weights

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
    "NodeName",
    "NodeSpec",
    "PruneStageSpec",
    "RerankNodeSpec",
    "SlotsNodeSpec",
    "SourceNodeSpec",
    "StackNodeSpec",
]

Normalization = Literal["minmax", "zscore", "rank", "none"]
FilterRule = Literal["excluded", "duplicates", "unavailable"]
_ALL_FILTER_RULES: tuple[FilterRule, ...] = ("excluded", "duplicates", "unavailable")
_EXPLORE_POOL = 4
"""A ``fresh`` node draws its exploration among this many times its ``candidates``."""


class SourceNodeSpec(NodeBase):
    """A hosted model producing scored candidates for the request's user."""

    kind: Literal["source"]
    model: str = Field(description="Name of a model under the app's `models`.")
    candidates: int = Field(
        100, ge=1, le=10_000, description="How many candidates to ask the model for."
    )
    fallback_model: str | None = Field(
        None,
        description="A model asked, on request, when `model` has no items for the user "
        "(a `precomputed` table that lacks a new user).",
    )

    def models(self) -> list[str]:
        """The recommender (and its fallback)."""
        return [self.model] + ([self.fallback_model] if self.fallback_model else [])


class FreshNodeSpec(NodeBase):
    """Newly published items from the live catalogue, newest first.

    Each scores ``0.5 ** (age_hours / half_life_hours)``. A share of the list is kept
    for items nobody has seen yet (no feedback in the request's online snapshot), so
    new items get the impressions that let the other sources learn about them.
    """

    kind: Literal["fresh"]
    candidates: int = Field(50, ge=1, le=10_000, description="How many items to return.")
    half_life_hours: float = Field(
        24, gt=0, le=100_000, description="Age at which an item's freshness score halves."
    )
    max_age_hours: float = Field(
        168, gt=0, le=100_000, description="Items published longer ago are left out."
    )
    explore_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description=(
            "Share of `candidates` (rounded down, at least one when > 0) reserved for fresh "
            "items without feedback yet, drawn per request among the newest "
            f"{_EXPLORE_POOL} x `candidates`."
        ),
    )

    def pool(self) -> int:
        """How many of the newest items to ask the catalogue for: the exploration
        draws among more than the list returns."""
        if self.explore_share == 0:
            return self.candidates
        return min(self.candidates * _EXPLORE_POOL, 10_000)


class BanditNodeSpec(NodeBase):
    """Thompson sampling over the items of the request's online snapshot.

    Each item draws a click rate from ``Beta(prior_clicks + clicks, prior_impressions -
    prior_clicks + impressions - clicks)`` (decayed counts); the best draws win. The
    prior is a pseudo-history: ``prior_clicks`` clicks in ``prior_impressions``
    impressions, so an item needs real evidence to beat the typical click rate.
    """

    kind: Literal["bandit"]
    candidates: int = Field(100, ge=1, le=10_000, description="How many items to return.")
    prior_clicks: float = Field(
        1, gt=0, le=1e6, description="Pseudo-clicks every item starts with (> 0)."
    )
    prior_impressions: float = Field(
        20,
        gt=0,
        le=1e7,
        description="Pseudo-impressions every item starts with (> `prior_clicks`).",
    )

    def check(self, name: str) -> None:
        """A prior click rate strictly between 0 and 1."""
        if not self.prior_impressions > self.prior_clicks:
            raise ValueError(
                f"node {name!r}: prior_impressions must be > prior_clicks "
                f"({self.prior_clicks:g}), got {self.prior_impressions:g}"
            )

    def prior(self) -> tuple[float, float]:
        """The Beta prior: ``(prior_clicks, prior_impressions - prior_clicks)``."""
        return self.prior_clicks, self.prior_impressions - self.prior_clicks


LiveSourceSpec = FreshNodeSpec | BanditNodeSpec
"""Sources computed in process from live state, without a model call."""


class BlendNodeSpec(NodeBase):
    """Weighted sum of its inputs' normalised scores, or reciprocal-rank fusion."""

    kind: Literal["blend"]
    weights: dict[str, float] = Field(
        description="Input node name -> non-negative weight; at least one above zero.",
        min_length=1,
    )
    method: Literal["weighted", "rrf"] = Field(
        "weighted",
        description=(
            "`weighted`: sum of weight * normalised score; `rrf`: reciprocal-rank fusion, "
            "sum of weight / (rrf_k + rank)."
        ),
    )
    normalize: Normalization = Field(
        "minmax", description="How each input's scores are put on one scale (weighted only)."
    )
    rrf_k: int = Field(60, ge=0, le=10_000, description="RRF's rank offset (rrf only).")

    def reads(self) -> list[str]:
        """The weighted nodes."""
        return list(self.weights)

    def check(self, name: str) -> None:
        """Weights must be finite, non-negative and not all zero."""
        check_weights(name, self.weights)


class RerankNodeSpec(NodeBase):
    """A scoring model (e.g. click probability) re-orders the top of its input."""

    kind: Literal["rerank"]
    input: str = Field(description="The list to re-rank.")
    model: str = Field(description="A model that scores items for a user (a `Scorer`).")
    depth: int = Field(
        100, ge=1, le=10_000, description="How many of the input's top items are re-scored."
    )

    def reads(self) -> list[str]:
        """The re-ranked node."""
        return [self.input]

    def models(self) -> list[str]:
        """The scorer."""
        return [self.model]


class StackNodeSpec(NodeBase):
    """A learned combiner: a model maps each item's input scores to one score.

    Its features are the inputs' normalised scores, in ``inputs`` order (0 where an
    input lacks the item); ``blendserve train-stack`` fits and publishes the model.
    """

    kind: Literal["stack"]
    inputs: list[str] = Field(min_length=2, description="The combined nodes, in feature order.")
    model: str = Field(description="A model whose features are the inputs' names.")
    normalize: Normalization = Field(
        "minmax", description="How each input's scores are scaled into features."
    )

    def reads(self) -> list[str]:
        """The combined nodes."""
        return list(self.inputs)

    def models(self) -> list[str]:
        """The combiner."""
        return [self.model]

    def check(self, name: str) -> None:
        """Each input once."""
        if len(set(self.inputs)) != len(self.inputs):
            raise ValueError(f"node {name!r}: inputs {self.inputs} repeat a node")


class SlotsNodeSpec(NodeBase):
    """Curated items pinned at fixed positions, or spread over a share of the list."""

    kind: Literal["slots"]
    input: str = Field(description="The ranked list to pin items into.")
    curated: str = Field(description="The node whose items are pinned, in its order.")
    positions: list[Annotated[int, Field(ge=1, le=1000)]] | None = Field(
        None, min_length=1, description="1-based positions, one curated item each."
    )
    share: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Instead of positions: this share of the top k, spread evenly from 1.",
    )

    def reads(self) -> list[str]:
        """The ranked list, then the curated list."""
        return [self.input, self.curated]

    def check(self, name: str) -> None:
        """Exactly one of ``positions`` and ``share``; no position twice."""
        if (self.positions is None) == (self.share is None):
            raise ValueError(f"node {name!r}: set exactly one of `positions` and `share`")
        if self.positions is not None and len(set(self.positions)) != len(self.positions):
            raise ValueError(f"node {name!r}: positions {self.positions} repeat a position")


class FilterNodeSpec(NodeBase):
    """Drops the request's excluded items, repeats, and items the catalogue rules out."""

    kind: Literal["filter"]
    input: str = Field(description="The list to filter.")
    drop: list[FilterRule] = Field(
        default_factory=lambda: list(_ALL_FILTER_RULES),
        description="Which rules apply: request exclusions, repeats, unavailable items.",
    )
    drop_unknown: bool = Field(
        False, description="Also drop items the catalogue does not know (when it has one)."
    )

    def reads(self) -> list[str]:
        """The filtered node."""
        return [self.input]


class DiversifyNodeSpec(NodeBase):
    """At most ``max_per_category`` items of one category in the top of the list."""

    kind: Literal["diversify"]
    input: str = Field(description="The list to diversify.")
    max_per_category: int = Field(ge=1, le=1000, description="Cap per category in the top.")
    top: int | None = Field(
        None, ge=1, le=10_000, description="How many positions the cap covers; default `k`."
    )

    def reads(self) -> list[str]:
        """The diversified node."""
        return [self.input]


class FallbackNodeSpec(NodeBase):
    """``primary``'s list, unless a source or model under it failed or was late."""

    kind: Literal["fallback"]
    primary: str = Field(description="The preferred branch.")
    fallback: str = Field(description="Used when the primary branch is incomplete.")
    min_items: int = Field(
        1, ge=0, le=10_000, description="Fewer items than this also counts as a failure."
    )

    def reads(self) -> list[str]:
        """Primary, then fallback."""
        return [self.primary, self.fallback]

    def check(self, name: str) -> None:
        """Two different branches."""
        if self.primary == self.fallback:
            raise ValueError(f"node {name!r}: primary and fallback are both {self.primary!r}")


NodeSpec = Annotated[
    SourceNodeSpec
    | FreshNodeSpec
    | BanditNodeSpec
    | BlendNodeSpec
    | RerankNodeSpec
    | StackNodeSpec
    | SlotsNodeSpec
    | FilterNodeSpec
    | DiversifyNodeSpec
    | ExperimentNodeSpec
    | InterleaveNodeSpec
    | FallbackNodeSpec,
    Field(discriminator="kind"),
]
