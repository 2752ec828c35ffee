"""Request and response bodies of the HTTP API (pydantic; also the OpenAPI docs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ComponentOut",
    "ItemOut",
    "PredictRequest",
    "PredictResponse",
    "RecommendRequest",
    "RecommendResponse",
]


class RecommendRequest(BaseModel):
    """Who to recommend for, how many items, and what to leave out."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=256, description="The end user's id.")
    k: int = Field(10, ge=1, le=100, description="How many items to return.")
    context: dict[str, Any] = Field(
        default_factory=dict, description="Request context features (device, time, page...)."
    )
    exclude: list[str] = Field(
        default_factory=list, max_length=1000, description="Item ids that must not be returned."
    )


class ComponentOut(BaseModel):
    """One source's part in an item's score (see ``blending.Component``)."""

    source: str = Field(description="The DAG source node.")
    model: str = Field(description="The model behind the source.")
    version: str = Field(description="The model version that answered.")
    weight: float | None = Field(description="Blend weight; null for a pinned slot.")
    score: float = Field(description="The source's normalised score.")
    raw_score: float = Field(description="The score the model gave.")
    slot: int | None = Field(
        None,
        description="1-based position when a curated slot pinned the item; absent otherwise.",
        exclude_if=lambda value: value is None,
    )
    curated: bool = Field(
        False,
        description="True when the item came from a human-curated list; absent otherwise.",
        exclude_if=lambda value: not value,
    )
    role: str | None = Field(
        None,
        description=(
            "`rerank` or `stack` when a model re-scored the item (its score replaced the "
            "item's); absent for sources."
        ),
        exclude_if=lambda value: value is None,
    )


class ItemOut(BaseModel):
    """A recommended item with its provenance."""

    item_id: str
    result_id: str = Field(
        description=(
            "Signed id of this item in this response; send it back with feedback. It "
            "encodes request, position, variant, team and model versions."
        )
    )
    score: float = Field(description="Blended score; list order is authoritative.")
    pinned: bool = Field(False, description="Whether a curated slot placed this item.")
    team: str | None = Field(
        None,
        description="The interleaving team (ranker node) credited with the item; absent otherwise.",
        exclude_if=lambda value: value is None,
    )
    components: list[ComponentOut]


class RecommendResponse(BaseModel):
    """The answer of ``POST /v1/recommend/{use_case}``."""

    request_id: str
    use_case: str
    items: list[ItemOut]
    model_versions: dict[str, str] = Field(description="Every model that answered -> version.")
    variant: dict[str, str] | None = Field(
        None,
        description="Experiment node -> the arm this user is in; absent outside experiments.",
        exclude_if=lambda value: value is None,
    )
    degraded: bool = Field(
        description="True when a source or model failed or missed the latency budget."
    )


class PredictRequest(BaseModel):
    """A batch of instances for one model."""

    model_config = ConfigDict(extra="forbid")

    instances: list[Any] = Field(min_length=1, max_length=1000, description="Model inputs.")


class PredictResponse(BaseModel):
    """One prediction per instance, and the version that made them."""

    model: str
    version: str
    predictions: list[Any]
