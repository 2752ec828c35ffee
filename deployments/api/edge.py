"""What a request meets before its handler: body size, CORS, API key, scope, rate limit.

:class:`EdgeMiddleware` wraps the whole FastAPI app (every route, errors too): it
refuses oversized bodies with 413, answers CORS (Starlette's middleware, with the
origins the config allows), counts requests in flight and records each request's
status and latency by route template, and, when tracing is on, opens the request's
trace span (``deployments/tracing.py``). The hot routes (recommend, predict, OIP
infer) it answers itself, key check included (``hot_routes.py``).
:func:`require` is the per-route FastAPI dependency that checks the API key and
its scope (401, 403) and the key's rate (429 with ``Retry-After``) on the other
routes; health probes and the API docs do without.

Both find their replica's :class:`Gatekeeper` through the app's state, set on first
use from the Serve replica's ingress object, so one module-level app serves every
replica with that replica's settings.
"""

# No `from __future__ import annotations`: the route dependency below is pickled with
# the app into each replica, and FastAPI must see real annotations there.

import json
import math
import time
from typing import Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.api.hot_routes import answer as answer_hot
from deployments.api.hot_routes import hot_route
from deployments.api.keys import KeyRing, Principal, RateLimiter
from deployments.api.keys import Scope as KeyScope
from deployments.api.state import this_ingress
from deployments.config.ingress import IngressConfig
from deployments.metrics import IngressMetrics
from deployments.tracing import finish_request_span, request_span, tracer

__all__ = ["ApiError", "EdgeMiddleware", "Gatekeeper", "is_oip_path", "require"]


class ApiError(Exception):
    """A refusal with its status, code and headers (see ``http_errors``)."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = headers or {}


class Gatekeeper:
    """One ingress replica's keys, limits and request metrics."""

    def __init__(
        self, config: IngressConfig, keys: KeyRing, metrics: IngressMetrics | None = None
    ) -> None:
        self.config = config
        self.keys = keys
        self.limiter = RateLimiter(config.rate_limit.requests_per_s, config.rate_limit.burst)
        self.metrics = metrics
        self.in_flight = 0

    @property
    def keys_missing(self) -> bool:
        """Keys are required and none are configured: every API route answers 401."""
        return self.config.require_api_key and len(self.keys) == 0

    def admit(self, scope: KeyScope, presented: str | None) -> Principal | None:
        """The caller behind ``presented``, if it may use ``scope`` now; else ``ApiError``."""
        if not self.config.require_api_key:
            return None
        if not presented:
            raise self._refuse(
                401,
                "unauthenticated",
                "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
                {"WWW-Authenticate": "Bearer"},
            )
        principal = self.keys.authenticate(presented)
        if principal is None:
            raise self._refuse(
                401, "unauthenticated", "invalid API key", {"WWW-Authenticate": "Bearer"}
            )
        if scope not in principal.scopes:
            raise self._refuse(
                403, "forbidden", f"key {principal.name!r} lacks the {scope!r} scope"
            )
        wait_s = self.limiter.acquire(principal)
        if wait_s > 0:
            raise self._refuse(
                429,
                "rate_limited",
                f"key {principal.name!r} is over its rate limit",
                {"Retry-After": str(max(1, math.ceil(wait_s)))},
            )
        return principal

    def _refuse(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> ApiError:
        if self.metrics is not None:
            self.metrics.rejected.inc(tags={"reason": code})
        return ApiError(status, code, message, headers)


def gatekeeper(app: Any) -> Gatekeeper:
    """The replica's gatekeeper: ``app.state.gate``, else the Serve ingress object's."""
    gate: Gatekeeper | None = getattr(app.state, "gate", None)
    if gate is None:
        gate = this_ingress().gate
        app.state.gate = gate
    return gate


_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key.")
_BEARER = Depends(_bearer)
_KEY_HEADER = Depends(_key_header)


def require(scope: KeyScope) -> Any:
    """A route dependency: an API key with ``scope``, within its rate limit."""

    async def check(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = _BEARER,
        header_key: str | None = _KEY_HEADER,
    ) -> Principal | None:
        presented = bearer.credentials if bearer is not None else header_key
        return gatekeeper(request.app).admit(scope, presented)

    check.__name__ = f"require_{scope}"
    return Depends(check)


def is_oip_path(path: str) -> bool:
    """Whether ``path`` (a route template, or a raw path under any route prefix) is an
    Open Inference Protocol route, whose errors are ``{"error": "<message>"}``."""
    return "/v2/" in path


DRAIN_FACTOR = 16
"""An oversized body up to this many times the limit is read and dropped so the
client sees the 413; a bigger one gets the 413 and a closed connection."""


class _BodyTooLarge(Exception):
    def __init__(self, body_read: bool = False) -> None:
        super().__init__()
        self.body_read = body_read
        """Whether the whole body has been received already."""


class EdgeMiddleware:
    """Body-size limit, CORS, in-flight count and request metrics around the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._cors: ASGIApp | None = None

    def _with_cors(self, gate: Gatekeeper) -> ASGIApp:
        if self._cors is None:
            cors = gate.config.cors
            self._cors = CORSMiddleware(
                self.app,
                allow_origins=list(cors.allow_origins),
                allow_credentials=cors.allow_credentials,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=["Authorization", "X-API-Key", "Content-Type"],
                # Browsers hide other response headers from cross-origin pages: the JS
                # client needs Retry-After to back off as the server asks.
                expose_headers=["Retry-After"],
                max_age=cors.max_age_s,
            )
        return self._cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if tracer() is None:
            await self._answer(scope, receive, send)
            return
        with request_span(scope["method"], scope["headers"]) as span:
            status = await self._answer(scope, receive, send)
            finish_request_span(span, scope["method"], _template(scope), status)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Answer one HTTP request; its status."""
        gate = gatekeeper(scope["app"])
        limit = gate.config.max_body_bytes
        started = time.perf_counter()
        status = 500
        response_started = False

        async def sending(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
            await send(message)

        gate.in_flight += 1
        body_stream = receive
        try:
            declared = _declared_length(scope)
            if declared is not None and declared > limit:
                raise _BodyTooLarge
            if declared is None and scope["method"] in ("POST", "PUT", "PATCH"):
                # A streamed body: read it here, bounded, since FastAPI would turn an
                # error raised while it reads into a 400.
                receive = await _buffered(receive, limit)
            hot = hot_route(scope)
            if hot is not None:
                await answer_hot(hot, scope, receive, sending, gate)
            else:
                await self._with_cors(gate)(scope, receive, sending)
        except _BodyTooLarge as refused:
            if gate.metrics is not None:
                gate.metrics.rejected.inc(tags={"reason": "body_too_large"})
            if not response_started:
                message = f"the body is larger than {limit} bytes"
                error: object = (
                    message
                    if is_oip_path(scope["path"])  # not routed yet: decided by the path
                    else {"code": "body_too_large", "message": message, "field": "body"}
                )
                # Read the rest before answering (bounded): most clients, httpx among
                # them, do not read an answer until they have sent their whole body.
                drained = refused.body_read or await _discard(body_stream, DRAIN_FACTOR * limit)
                body = json.dumps({"error": error}).encode()
                await _send_json(sending, 413, body, close=not drained)
        finally:
            gate.in_flight -= 1
            if gate.metrics is not None:
                template = _template(scope)
                gate.metrics.requests.inc(
                    tags={"route": template, "method": scope["method"], "status": str(status)}
                )
                gate.metrics.latency.observe(
                    (time.perf_counter() - started) * 1000.0, tags={"route": template}
                )
        return status


def _template(scope: Scope) -> str:
    """The template of the route that answered (``unmatched`` if none did)."""
    return getattr(scope.get("route"), "path", None) or "unmatched"


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _buffered(receive: Receive, limit: int) -> Receive:
    """Read a whole request body of unknown length, at most ``limit`` bytes; replay it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            raise _BodyTooLarge(body_read=not message.get("more_body", False))
        if not message.get("more_body", False):
            break
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()  # after the body: disconnects
        replayed = True
        return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    return replay


async def _discard(receive: Receive, cap: int) -> bool:
    """Read and drop the rest of a request body; ``False`` if more than ``cap`` bytes
    remained (the connection must then close)."""
    size = 0
    while size <= cap:
        message = await receive()
        if message["type"] != "http.request":
            return False
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


async def _send_json(send: Send, status: int, body: bytes, close: bool) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
