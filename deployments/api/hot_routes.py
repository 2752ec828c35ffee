"""The hot routes, answered straight from the ASGI edge.

``POST /v1/recommend/{use_case}``, ``POST /v1/predict/{model}`` and
``POST /v2/models/{model}/infer`` are most of the traffic. For them the edge
checks the API key and its rate, reads the body and calls the ingress's
``*_bytes`` method itself: no routing table walk, no dependency injection, no
``Request`` object, one parse of the body and one serialisation of the answer.
Errors go through the app's own exception handlers, so every answer, error or
not, is the one the FastAPI route gives (the routes stay, for OpenAPI and for
cross-origin requests, which the CORS middleware must see).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from deployments.api.state import IngressState, this_ingress

__all__ = ["EXPLAIN_HEADER", "HotRoute", "answer", "hot_route"]

EXPLAIN_HEADER = b"x-blendserve-explain"
"""``X-Blendserve-Explain: 1`` from a key with the ``admin`` scope: the answer carries
its explanation (``blendserve explain``'s report)."""

_ROUTES = (
    ("recommend", re.compile(r"/v1/recommend/([^/]+)"), "/v1/recommend/{use_case}"),
    ("predict", re.compile(r"/v1/predict/([^/]+)"), "/v1/predict/{model}"),
    ("infer", re.compile(r"/v2/models/([^/]+)/infer"), "/v2/models/{model}/infer"),
)


@dataclass(frozen=True)
class HotRoute:
    """A matched hot route: which, its path parameter, and its template (``path``, as
    a Starlette route has, for the request metrics)."""

    kind: str
    name: str
    path: str


def hot_route(scope: Scope) -> HotRoute | None:
    """The hot route a request is for, or ``None`` (FastAPI's router takes it).

    Cross-origin requests go the long way: the CORS middleware answers them.
    """
    if scope["method"] != "POST":
        return None
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    for kind, pattern, template in _ROUTES:
        match = pattern.fullmatch(path)
        if match:
            if any(name == b"origin" for name, _ in scope["headers"]):
                return None
            return HotRoute(kind, match.group(1), template)
    return None


def _presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The API key: ``Authorization: Bearer <key>``, else ``X-API-Key`` (as the routes'
    ``require`` dependency reads them)."""
    header_key = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials:
                return credentials
        elif name == b"x-api-key":
            header_key = value.decode("latin-1")
    return header_key


def _header(headers: list[tuple[bytes, bytes]], wanted: bytes) -> str | None:
    for name, value in headers:
        if name == wanted:
            return value.decode("latin-1")
    return None


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def answer(route: HotRoute, scope: Scope, receive: Receive, send: Send, gate: Any) -> None:
    """Answer one hot request, errors through the app's exception handlers."""
    from deployments.api.routes.oip import infer_bytes  # the router module imports the edge

    started = time.monotonic()
    scope["route"] = route
    headers = scope["headers"]
    try:
        principal = gate.admit("infer", _presented_key(headers))
        body = await _body(receive)
        ingress = _ingress(scope["app"])
        response: Response
        if route.kind == "recommend":
            # An admin may ask for the explanation inline; anyone else's header is ignored.
            asked = (_header(headers, EXPLAIN_HEADER) or "").lower() in ("1", "true", "yes")
            explain = asked and principal is not None and "admin" in principal.scopes
            response = await ingress.recommend_bytes(route.name, body, started, explain)
        elif route.kind == "predict":
            response = await ingress.predict_bytes(route.name, body)
        else:
            length = _header(headers, b"inference-header-content-length")
            response = await infer_bytes(ingress, route.name, None, body, length)
    except Exception as exc:
        handler = _handler(scope["app"], exc)
        if handler is None:
            raise
        response = await handler(Request(scope, receive), exc)
    await response(scope, receive, send)


def _ingress(app: Any) -> IngressState:
    """The replica's ingress, looked up once and kept in the app's state (as the edge
    keeps its gatekeeper)."""
    ingress: IngressState | None = getattr(app.state, "ingress", None)
    if ingress is None:
        ingress = app.state.ingress = this_ingress()
    return ingress


def _handler(app: Any, exc: Exception) -> Any:
    """The app's handler for ``exc``, looked up by class as Starlette does."""
    handlers = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
