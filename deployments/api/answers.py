"""The one way in and out of the hot routes: a body parsed once, straight from its
bytes, into its typed request; an answer built as typed structs for the k items
returned and serialised once, with no second validation.

``schemas.py`` documents the same shapes for OpenAPI; a test keeps the two in step.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
import numpy as np
from fastapi import Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from blending.candidates import Candidate, Component
from blending.result_ids import ResultIdCodec, ResultRef
from deployments.json_types import JsonObject

__all__ = [
    "ItemAnswer",
    "PredictAnswer",
    "RecommendAnswer",
    "item_answer",
    "json_response",
    "parse_bytes",
]

_Body = TypeVar("_Body", bound=BaseModel)


def parse_bytes(raw: bytes, model: type[_Body]) -> _Body:
    """A request body as ``model``, validated from its bytes in one pass; a 422
    naming the field (the same answer FastAPI gives) when it does not fit."""
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


class ItemAnswer(msgspec.Struct, omit_defaults=True):
    """A returned item with its provenance (``schemas.ItemOut``)."""

    item_id: str
    result_id: str
    score: float
    pinned: bool
    components: tuple[Component, ...]
    team: str | None = None


class RecommendAnswer(msgspec.Struct, omit_defaults=True, kw_only=True):
    """The answer of ``POST /v1/recommend/{use_case}`` (``schemas.RecommendResponse``)."""

    request_id: str
    use_case: str
    items: list[ItemAnswer]
    model_versions: dict[str, str]
    variant: dict[str, str] | None = None
    degraded: bool
    explain: dict[str, Any] | None = None


class PredictAnswer(msgspec.Struct):
    """The answer of ``POST /v1/predict/{model}`` (``schemas.PredictResponse``)."""

    model: str
    version: str
    predictions: list[Any]


def item_answer(
    codec: ResultIdCodec, request: ResultRef, position: int, candidate: Candidate
) -> ItemAnswer:
    """One returned item; its result id extends the ``request``'s with the item's facts."""
    components = candidate.components
    ref = ResultRef(
        request.request_id,
        request.use_case,
        position,
        candidate.item_id,
        request.served_at,
        request.variant,
        candidate.team,
        {c.model: c.version for c in components},
        request.unit,
    )
    return ItemAnswer(
        item_id=candidate.item_id,
        result_id=codec.encode(ref),
        score=float(candidate.score),
        pinned=candidate.pinned,
        components=components,
        team=candidate.team,
    )


def _numpy_scalar(value: object) -> object:
    """numpy scores (``np.float32``...) as Python numbers; msgspec knows only those."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


_encoder = msgspec.json.Encoder(enc_hook=_numpy_scalar)


def json_response(answer: msgspec.Struct | JsonObject, status_code: int = 200) -> Response:
    """The answer serialised once (msgspec), as the route's response."""
    return Response(_encoder.encode(answer), status_code, media_type="application/json")
