"""The blending DAG: node specs, their validation, and the blend maths (plain Python)."""

from blending.candidates import BlendContext, Candidate, Component, ScoreResult, SourceResult
from blending.catalog import ItemCatalog, ItemInfo, StaticCatalog
from blending.dag import BlendOutcome, BlendPlan, DeadlineExceeded
from blending.gateway import LocalModels, ModelGateway
from blending.result_ids import ResultIdCodec, ResultRef
from blending.spec import NodeSpec, UseCaseSpec

__all__ = [
    "BlendContext",
    "BlendOutcome",
    "BlendPlan",
    "Candidate",
    "Component",
    "DeadlineExceeded",
    "ItemCatalog",
    "ItemInfo",
    "LocalModels",
    "ModelGateway",
    "NodeSpec",
    "ResultIdCodec",
    "ResultRef",
    "ScoreResult",
    "SourceResult",
    "StaticCatalog",
    "UseCaseSpec",
]
