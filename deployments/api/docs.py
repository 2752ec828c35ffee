"""The OpenAPI entries routes share: error answers, success examples, and request
bodies that a route reads itself (straight from bytes) but documents all the same."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from deployments.api.schemas import ErrorResponse, OipErrorResponse

__all__ = [
    "INFER_ERRORS",
    "OIP_ERRORS",
    "error_responses",
    "json_body",
    "model_body",
    "ok_example",
]

OpenApiResponses = dict[int | str, dict[str, Any]]
"""FastAPI's ``responses=`` argument: status -> OpenAPI response object."""


def ok_example(example: object, status: int = 200) -> OpenApiResponses:
    """The OpenAPI entry of a route's success answer, with an example of it."""
    return {status: {"content": {"application/json": {"example": example}}}}


def json_body(schema: dict[str, Any], example: object) -> dict[str, Any]:
    """``openapi_extra`` documenting the JSON body of a route that parses it itself."""
    content = {"application/json": {"schema": schema, "example": example}}
    return {"requestBody": {"required": True, "content": content}}


def model_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a body that is ``model``, with its first example."""
    schema = model.model_json_schema()
    return json_body(schema, schema["examples"][0])


def error_responses(*statuses: int, oip: bool = False) -> OpenApiResponses:
    """OpenAPI entries for the error answers a route can give."""
    described = {
        400: "The body is not valid JSON (or, for `/v2`, not a valid inference request).",
        401: "No API key, or an unknown one.",
        403: "The key lacks the route's scope.",
        404: "Unknown use case or model.",
        413: "The body is larger than the ingress allows.",
        422: "A field is invalid; `error.field` names it.",
        429: "The key is over its rate limit; retry after `Retry-After` seconds.",
        503: "Overloaded, or no model could answer; retry after `Retry-After` seconds.",
        504: "A model did not answer in time.",
    }
    model = OipErrorResponse if oip else ErrorResponse
    return {status: {"model": model, "description": described[status]} for status in statuses}


INFER_ERRORS = error_responses(400, 401, 403, 404, 413, 422, 429, 503, 504)
OIP_ERRORS = error_responses(400, 401, 403, 404, 413, 429, 503, 504, oip=True)
