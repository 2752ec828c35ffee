"""The one core both clients share, without I/O: each API call as a :class:`Call`
(method, path, body, whether resending is safe, how to read the answer), and the
mapping of error answers to exceptions. ``Client`` and ``AsyncClient`` only send.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from blendserve_client._catalog import (
    UNSET,
    CatalogChange,
    CatalogItem,
    CatalogStatus,
    PublishedAt,
    Unset,
    item_json,
    published_json,
)
from blendserve_client._errors import (
    BlendserveError,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
)
from blendserve_client._json import MalformedAnswer, Reader
from blendserve_client._reports import ExperimentReport, Models, Readiness
from blendserve_client._results import (
    FeedbackEvent,
    FeedbackResult,
    Prediction,
    Recommendation,
    as_event,
    rejected_events,
)

__all__ = ["Call", "error_from_response", "finish", "retry_after_s"]

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call, ready to send as often as the retry policy allows."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    body: Any = None
    idempotent: bool = True
    """Safe to resend when the service may have acted on it (a timeout after sending)."""
    retry: bool = True
    """False: one attempt only (a probe answers now)."""
    answers: frozenset[int] = frozenset()
    """Statuses besides 2xx whose body is an answer, not an error."""

    @property
    def target(self) -> str:
        """``POST /v1/feedback``: for messages."""
        return f"{self.method} {self.path}"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        snippet = response.text[:200]
        raise MalformedAnswer(f"body: expected JSON, got {snippet!r}") from None


def _read(parse: Callable[[Reader], T]) -> Callable[[httpx.Response], T]:
    return lambda response: parse(Reader(_json(response)))


def _segment(value: str, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}: expected a non-empty string, got {value!r}")
    return quote(value, safe="")


def finish(call: Call[T], response: httpx.Response, attempts: int) -> T:
    """The call's result from its final answer; the mapped error for an error answer."""
    status = response.status_code
    if 200 <= status < 300 or status in call.answers:
        try:
            return call.parse(response)
        except MalformedAnswer as exc:
            raise BlendserveError(
                f"{call.target}: unexpected answer: {exc}",
                status=status,
                code="unexpected_answer",
                attempts=attempts,
            ) from exc
    raise error_from_response(response, attempts)


def retry_after_s(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (a number, or an HTTP date), if usable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


_ERROR_CLASSES: dict[int, type[BlendserveError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    408: Unavailable,
    413: InvalidRequest,
    422: InvalidRequest,
    429: RateLimited,
    503: Unavailable,
    504: Unavailable,
}
"""Statuses with a class of their own; other 5xx are ``ServerError``."""


def _error_class(status: int) -> type[BlendserveError]:
    default = ServerError if status >= 500 else BlendserveError
    return _ERROR_CLASSES.get(status, default)


def error_from_response(response: httpx.Response, attempts: int = 1) -> BlendserveError:
    """The exception for an error answer: ``{"error": {"code", "message", "field"}}``,
    or whatever a proxy in front sent instead."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    details: dict[str, Any] = error if isinstance(error, dict) else {}
    message = details.get("message") or (error if isinstance(error, str) else None)
    if not message:
        message = response.text[:200].strip() or response.reason_phrase or "no message"
    field = details.get("field")
    kwargs: dict[str, Any] = {
        "status": status,
        "code": str(details.get("code") or f"http_{status}"),
        "field": None if field is None else str(field),
        "retry_after_s": retry_after_s(response),
        "attempts": attempts,
        "details": details,
    }
    cls = _error_class(status)
    if cls is InvalidRequest and isinstance(body, dict) and "accepted" in body:
        # A feedback batch partly stored: say what was, and what was refused.
        try:
            data = Reader(body)
            return InvalidRequest(
                str(message),
                accepted=data.integer("accepted", 0),
                duplicates=data.integer("duplicates", 0),
                rejected=rejected_events(data),
                **kwargs,
            )
        except MalformedAnswer:
            pass
    return cls(str(message), **kwargs)


# -- the calls -----------------------------------------------------------------


def recommend(
    use_case: str,
    user_id: str | int,
    k: int,
    context: Mapping[str, Any] | None,
    exclude: Iterable[str] | None,
    filters: Iterable[Mapping[str, Any]] | None = None,
    boosts: Iterable[Mapping[str, Any]] | None = None,
) -> Call[Recommendation]:
    """``POST /v1/recommend/{use_case}``."""
    if isinstance(exclude, str):
        raise TypeError(f"exclude: expected a list of item ids, got the string {exclude!r}")
    body: dict[str, Any] = {"user_id": user_id, "k": k}
    if context is not None:
        body["context"] = dict(context)
    if exclude is not None:
        body["exclude"] = list(exclude)
    if filters is not None:
        body["filters"] = [dict(rule) for rule in filters]
    if boosts is not None:
        body["boosts"] = [dict(rule) for rule in boosts]
    path = f"/v1/recommend/{_segment(use_case, 'use_case')}"
    return Call("POST", path, _read(Recommendation._from_json), body)


def predict(model: str, instances: Sequence[Any]) -> Call[Prediction]:
    """``POST /v1/predict/{model}``."""
    if isinstance(instances, str | bytes) or not isinstance(instances, Sequence):
        raise TypeError(f"instances: expected a list, got {type(instances).__name__}")
    path = f"/v1/predict/{_segment(model, 'model')}"
    return Call("POST", path, _read(Prediction._from_json), {"instances": list(instances)})


def feedback(
    events: FeedbackEvent | Mapping[str, Any] | Iterable[FeedbackEvent | Mapping[str, Any]],
) -> Call[FeedbackResult]:
    """``POST /v1/feedback``. Each event without an ``event_id`` gets one here, once,
    before the first attempt: a retry resends the same ids, so the service stores
    each event once however often it arrives."""
    entries = [events] if isinstance(events, FeedbackEvent | Mapping) else list(events)
    sent = [as_event(entry) for entry in entries]
    if not sent:
        raise ValueError("events: expected at least one event, got none")
    ids = [event.event_id or uuid.uuid4().hex for event in sent]
    body = {"events": [event._to_json(i) for event, i in zip(sent, ids, strict=True)]}
    return Call("POST", "/v1/feedback", _read(lambda r: FeedbackResult._from_json(r, ids)), body)


def models() -> Call[Models]:
    """``GET /v1/models``."""
    return Call("GET", "/v1/models", _read(Models._from_json))


def _names(data: Reader) -> list[str]:
    names = data.array("experiments")
    if not all(isinstance(name, str) for name in names):
        raise MalformedAnswer("experiments: expected a list of strings")
    return [str(name) for name in names]


def experiments() -> Call[list[str]]:
    """``GET /v1/experiments``."""
    return Call("GET", "/v1/experiments", _read(_names))


def experiment(name: str) -> Call[ExperimentReport]:
    """``GET /v1/experiments/{name}``."""
    path = f"/v1/experiments/{_segment(name, 'name')}"
    return Call("GET", path, _read(ExperimentReport._from_json))


def _item_path(item_id: str) -> str:
    return f"/v1/catalog/items/{_segment(item_id, 'item_id')}"


def put_item(
    item_id: str,
    title: str,
    category: str | None,
    published_at: PublishedAt | None,
    available: bool,
    attributes: Mapping[str, Any] | None,
) -> Call[CatalogChange]:
    """``PUT /v1/catalog/items/{item_id}``: create or replace."""
    body = {
        "title": title,
        "category": category,
        "published_at": published_json(published_at),
        "available": available,
        "attributes": dict(attributes or {}),
    }
    return Call("PUT", _item_path(item_id), _read(CatalogChange._from_json), body)


def patch_item(
    item_id: str,
    *,
    title: str | Unset,
    category: str | Unset | None,
    published_at: PublishedAt | Unset | None,
    available: bool | Unset,
    attributes: Mapping[str, Any] | Unset,
) -> Call[CatalogChange]:
    """``PATCH /v1/catalog/items/{item_id}``: only the fields given (not ``UNSET``)."""
    changes: dict[str, Any] = {
        "title": title,
        "category": category,
        "published_at": published_at,
        "available": available,
        "attributes": attributes,
    }
    body = {name: value for name, value in changes.items() if value is not UNSET}
    if "published_at" in body:
        body["published_at"] = published_json(body["published_at"])
    if isinstance(body.get("attributes"), Mapping):
        body["attributes"] = dict(body["attributes"])
    return Call("PATCH", _item_path(item_id), _read(CatalogChange._from_json), body)


def delete_item(item_id: str) -> Call[CatalogChange]:
    """``DELETE /v1/catalog/items/{item_id}``. Not resent after a timeout: had the
    first attempt landed, the second would answer 404."""
    path = _item_path(item_id)
    return Call("DELETE", path, _read(CatalogChange._from_json), idempotent=False)


def get_item(item_id: str) -> Call[CatalogItem]:
    """``GET /v1/catalog/items/{item_id}``."""
    return Call("GET", _item_path(item_id), _read(CatalogItem._from_json))


def upsert_items(items: Iterable[CatalogItem | Mapping[str, Any]]) -> Call[CatalogChange]:
    """``POST /v1/catalog/items:batch``: all of them, or none."""
    body = {"items": [item_json(item) for item in items]}
    return Call("POST", "/v1/catalog/items:batch", _read(CatalogChange._from_json), body)


def catalog_status() -> Call[CatalogStatus]:
    """``GET /v1/catalog``."""
    return Call("GET", "/v1/catalog", _read(CatalogStatus._from_json))


def _readiness(response: httpx.Response) -> Readiness:
    try:
        return Readiness._from_json(Reader(_json(response)))
    except MalformedAnswer:
        if response.status_code == 200:
            raise
        # Not the ingress's own answer (a proxy's 503 while no replica runs).
        return Readiness(False, not_ready={"service": f"HTTP 503: {response.text[:200]}"})


def ready() -> Call[Readiness]:
    """``GET /readyz``: a probe, so one attempt, and a 503 is an answer."""
    return Call("GET", "/readyz", _readiness, retry=False, answers=frozenset({503}))
