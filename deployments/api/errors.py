"""Where HTTP status codes are decided: one JSON error shape, naming the field."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from deployments.api.edge import ApiError, is_oip_path
from deployments.catalog.items import CatalogUnavailableError
from deployments.events.client import EventLogUnavailable
from deployments.json_types import JsonObject
from models.errors import ArtifactNotFoundError, InputError, ModelError, ModelOverloadedError

__all__ = ["NotFound", "error_body", "install_error_handlers"]


class NotFound(LookupError):
    """An unknown use case or model; becomes 404."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        super().__init__(f"unknown {kind} {name!r}; expected one of {known}")
        self.field = kind.replace(" ", "_")


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> JsonObject:
    """The error shape every 4xx/5xx answer uses."""
    error: JsonObject = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    error.update(extra)
    return {"error": error}


def _field_path(location: tuple[Any, ...]) -> str:
    parts = list(location)
    if parts and parts[0] in ("body", "path", "query"):
        parts = parts[1:] if parts[0] == "body" else parts
    return ".".join(str(p) for p in parts) or "body"


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": _field_path(tuple(e["loc"])), "message": e["msg"], "type": e["type"]}
        for e in exc.errors()
    ]
    first = problems[0] if problems else {"field": "body", "message": "invalid request"}
    body = error_body(
        "invalid_request",
        f"{first['field']}: {first['message']}",
        first["field"],
        problems=problems,
    )
    return JSONResponse(body, status_code=422)


async def _on_input_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InputError)
    return JSONResponse(error_body("invalid_input", str(exc), exc.field), status_code=422)


async def _on_not_found(_: Request, exc: Exception) -> JSONResponse:
    field = getattr(exc, "field", None)
    return JSONResponse(error_body("not_found", str(exc), field), status_code=404)


async def _on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        error_body("http_error", str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    route = getattr(request.scope.get("route"), "path", "")
    body = {"error": str(exc)} if is_oip_path(route) else error_body(exc.code, str(exc))
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def _retry_later(code: str) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """A handler answering 503 ``code`` with ``Retry-After: 1``: a server-side
    condition the client may retry (a model that cannot answer, a full model queue,
    the catalogue or event log unreachable; nothing of the request was acknowledged)."""

    async def handler(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            error_body(code, str(exc)), status_code=503, headers={"Retry-After": "1"}
        )

    return handler


async def _on_timeout(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(error_body("model_timeout", str(exc)), status_code=504)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that map blendserve errors to HTTP answers."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(InputError, _on_input_error)
    app.add_exception_handler(NotFound, _on_not_found)
    app.add_exception_handler(ArtifactNotFoundError, _on_not_found)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(ModelError, _retry_later("model_unavailable"))
    app.add_exception_handler(TimeoutError, _on_timeout)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(ModelOverloadedError, _retry_later("overloaded"))
    app.add_exception_handler(CatalogUnavailableError, _retry_later("catalog_unavailable"))
    app.add_exception_handler(EventLogUnavailable, _retry_later("event_log_unavailable"))
