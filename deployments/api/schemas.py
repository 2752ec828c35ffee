"""Request and response bodies of the HTTP API (pydantic; also the OpenAPI docs)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from blending.rules import MAX_RULES, BoostRule, FilterRule
from deployments.events.feedback import FEEDBACK_MAX_EVENTS, FeedbackEvent, Rejected

__all__ = [
    "FEEDBACK_BODY",
    "ComponentOut",
    "ErrorDetail",
    "ErrorResponse",
    "FeedbackRefused",
    "FeedbackResponse",
    "ItemOut",
    "OipErrorResponse",
    "PredictRequest",
    "PredictResponse",
    "RecommendRequest",
    "RecommendResponse",
]


MAX_CONTEXT_KEYS = 32
MAX_CONTEXT_VALUE_CHARS = 256


def _integer_as_text(value: Any) -> Any:
    """Ids are text, but an application whose ids are integers may send them as JSON
    numbers: ``1`` means the id ``"1"``, as the models were trained on (no prefix)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


ExternalId = Annotated[
    str,
    BeforeValidator(_integer_as_text, json_schema_input_type=str | int),
    StringConstraints(min_length=1, max_length=256),
]
"""A user or item id as the application knows it: a string, or an integer sent as one."""
ItemId = ExternalId


class RecommendRequest(BaseModel):
    """Who to recommend for, how many items, and what to leave out."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "user_id": "u0042",
                    "k": 10,
                    "context": {"device": "mobile"},
                    "exclude": ["a00017"],
                }
            ]
        },
    )

    user_id: ExternalId = Field(
        description="The end user's id, as the models were trained on it (a string, or an "
        "integer for integer ids)."
    )
    k: int = Field(
        10,
        ge=1,
        description="How many items to return: at most the ingress's `max_k` (100 by default).",
    )
    context: dict[Annotated[str, StringConstraints(max_length=64)], Any] = Field(
        default_factory=dict,
        max_length=MAX_CONTEXT_KEYS,
        description=(
            f"Request context features (device, time, page...): at most {MAX_CONTEXT_KEYS} "
            f"keys, each value a number, boolean, null or a string of at most "
            f"{MAX_CONTEXT_VALUE_CHARS} characters."
        ),
    )
    exclude: list[ItemId] = Field(
        default_factory=list,
        description=(
            "Item ids that must not be returned: at most the ingress's `max_exclude` "
            "(1,000 by default)."
        ),
    )

    filters: list[FilterRule] = Field(
        default_factory=list,
        max_length=MAX_RULES,
        description=(
            "Keep only items whose catalogue attributes pass every filter, e.g. "
            '`{"attribute": "price", "max": 50}`, `{"attribute": "category", "in": '
            '["sport"]}`: one of `equals`, `in`, `min`/`max`, `max_age_s` (times), and '
            f"`negate`; at most {MAX_RULES}, after the use case's own."
        ),
    )
    boosts: list[BoostRule] = Field(
        default_factory=list,
        max_length=MAX_RULES,
        description=(
            "Multiply the score of items whose attributes pass a condition, e.g. "
            '`{"attribute": "brand", "equals": "acme", "multiply": 1.5}`; pinned items '
            f"keep their slot; at most {MAX_RULES}, after the use case's own."
        ),
    )

    @field_validator("context")
    @classmethod
    def _flat_small_values(cls, context: dict[str, Any]) -> dict[str, Any]:
        for key, value in context.items():
            if isinstance(value, str) and len(value) > MAX_CONTEXT_VALUE_CHARS:
                raise ValueError(f"context.{key}: longer than {MAX_CONTEXT_VALUE_CHARS} characters")
            if not isinstance(value, str | int | float | bool | None):
                raise ValueError(f"context.{key}: expected a number, boolean, null or string")
        return context


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

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "7849337b30c9406290eccf5669e880fc",
                    "use_case": "home",
                    "items": [
                        {
                            "item_id": "a01806",
                            "result_id": "eyJpIjoiYTAxODA2In0.hGR379mwIxyE0WXX",
                            "score": 1.0,
                            "pinned": True,
                            "components": [
                                {
                                    "source": "picks",
                                    "model": "staff_picks",
                                    "version": "1",
                                    "score": 1.0,
                                    "weight": 0.15,
                                    "curated": True,
                                }
                            ],
                        }
                    ],
                    "model_versions": {"mf": "1", "popularity": "1", "staff_picks": "1"},
                    "variant": None,
                    "degraded": False,
                }
            ]
        }
    )

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
    explain: dict[str, Any] | None = Field(
        None,
        description="What produced the list (plan, arm, versions, catalogue version, each "
        "node's items and time, failures), as `blendserve explain --json` prints it; only "
        "when a key with the `admin` scope sent `X-Blendserve-Explain: 1`.",
        exclude_if=lambda value: value is None,
    )


class PredictRequest(BaseModel):
    """A batch of instances for one model."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"instances": [[0.4, 5.2, 3.0, 20.0]]}]}
    )

    instances: list[Any] = Field(
        min_length=1,
        description="Model inputs: at most the ingress's `max_instances` (1,000 by default).",
    )


class PredictResponse(BaseModel):
    """One prediction per instance, and the version that made them."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"model": "click_model", "version": "1", "predictions": [0.98]}]
        }
    )

    model: str
    version: str
    predictions: list[Any]


class ErrorDetail(BaseModel):
    """What went wrong, and where."""

    code: str = Field(description="Machine-readable: `unauthenticated`, `invalid_request`...")
    message: str = Field(description="Human-readable, naming the field or the model.")
    field: str | None = Field(None, description="The request field at fault, when one is.")

    model_config = ConfigDict(extra="allow")


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx answer of the ``/v1`` API."""

    error: ErrorDetail


class OipErrorResponse(BaseModel):
    """The Open Inference Protocol's error body, used by every ``/v2`` route."""

    error: str = Field(description="What went wrong.")


class FeedbackResponse(BaseModel):
    """What happened to each event of a feedback request."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"accepted": 2, "duplicates": 0, "rejected": []}]}
    )

    accepted: int = Field(description="Events stored (durably: in the write-ahead log).")
    duplicates: int = Field(description="Events whose `event_id` was stored before.")
    rejected: list[Rejected] = Field(description="Entries refused, each with its field.")


class FeedbackRefused(BaseModel):
    """A 422 of ``POST /v1/feedback``: the first refused entry in ``error``, every one
    in ``rejected``; ``accepted`` entries were stored all the same. A body that is not
    an event or a batch at all has ``error`` only."""

    error: ErrorDetail
    accepted: int = Field(0, description="Events stored all the same.")
    duplicates: int = Field(0, description="Events whose `event_id` was stored before.")
    rejected: list[Rejected] = Field(default_factory=list, description="Entries refused.")


def _feedback_body() -> dict[str, Any]:
    """The OpenAPI request body of ``POST /v1/feedback``: one event or ``{"events"}``."""
    event = FeedbackEvent.model_json_schema()
    batch = {
        "type": "object",
        "additionalProperties": False,
        "required": ["events"],
        "properties": {
            "events": {
                "type": "array",
                "minItems": 1,
                "maxItems": FEEDBACK_MAX_EVENTS,
                "items": event,
            }
        },
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"anyOf": [event, batch]}}},
        }
    }


FEEDBACK_BODY = _feedback_body()
"""``openapi_extra`` of the feedback route: its body is read by hand, entry by entry."""
