"""The blending DAG: node specs, their validation, and the blend maths (plain Python)."""

from blending.candidates import BlendContext, Candidate, Component, SourceResult
from blending.dag import BlendOutcome, BlendPlan
from blending.spec import (
    BlendNodeSpec,
    FilterNodeSpec,
    NodeSpec,
    SlotsNodeSpec,
    SourceNodeSpec,
    UseCaseSpec,
)

__all__ = [
    "BlendContext",
    "BlendNodeSpec",
    "BlendOutcome",
    "BlendPlan",
    "Candidate",
    "Component",
    "FilterNodeSpec",
    "NodeSpec",
    "SlotsNodeSpec",
    "SourceNodeSpec",
    "SourceResult",
    "UseCaseSpec",
]
