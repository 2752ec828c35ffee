"""The edge of the API in process: keys and scopes, rate limit, body size, CORS.

A small FastAPI app gets the same middleware, dependency and error handlers as the
ingress; the live service is tested in tests/integration/test_hardening.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from builders import api_keys_document
from fastapi import FastAPI
from fastapi.testclient import TestClient

from deployments.api.edge import EdgeMiddleware, Gatekeeper, require
from deployments.api.errors import install_error_handlers
from deployments.api.keys import KeyRing
from deployments.config.ingress import CorsConfig, IngressConfig, RateLimitConfig

INFER_KEY = "infer-only-key-0123456789"
ADMIN_KEY = "admin-only-key-0123456789"
SLOW_KEY = "slow-key-0123456789abcdef"
KEYS = api_keys_document(INFER_KEY, ADMIN_KEY, SLOW_KEY, requests_per_s=0.5, burst=2)
SHOP = "https://shop.example.com"


def _app(config: IngressConfig) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(EdgeMiddleware)
    app.state.gate = Gatekeeper(config, KeyRing(KEYS))

    @app.post("/infer", dependencies=[require("infer")])
    async def infer(body: dict[str, Any]) -> dict[str, Any]:
        return {"echo": body}

    @app.get("/admin", dependencies=[require("admin")])
    async def admin() -> dict[str, str]:
        return {"ok": "admin"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    config = IngressConfig(
        max_body_bytes=2048,
        cors=CorsConfig(allow_origins=(SHOP,)),
        rate_limit=RateLimitConfig(requests_per_s=1000, burst=1000),
    )
    with TestClient(_app(config)) as http:
        yield http


def test_no_key_is_401_with_a_challenge(client: TestClient) -> None:
    response = client.post("/infer", json={})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthenticated"


def test_an_unknown_key_is_401(client: TestClient) -> None:
    response = client.post("/infer", json={}, headers={"Authorization": "Bearer nope-nope-nope"})
    assert response.status_code == 401 and "invalid" in response.json()["error"]["message"]


def test_the_wrong_scope_is_403_naming_it(client: TestClient) -> None:
    response = client.post("/infer", json={}, headers={"X-API-Key": ADMIN_KEY})
    assert response.status_code == 403
    assert "'infer'" in response.json()["error"]["message"]
    response = client.get("/admin", headers={"X-API-Key": INFER_KEY})
    assert response.status_code == 403


def test_the_right_key_passes_by_either_header(client: TestClient) -> None:
    assert client.post("/infer", json={"a": 1}, headers={"X-API-Key": INFER_KEY}).json() == {
        "echo": {"a": 1}
    }
    bearer = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert client.get("/admin", headers=bearer).status_code == 200


def test_health_needs_no_key(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200


def test_over_the_rate_limit_is_429_with_retry_after(client: TestClient) -> None:
    headers = {"X-API-Key": SLOW_KEY}
    assert [client.post("/infer", json={}, headers=headers).status_code for _ in range(2)] == [
        200,
        200,
    ]
    refused = client.post("/infer", json={}, headers=headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    other = client.post("/infer", json={}, headers={"X-API-Key": INFER_KEY})
    assert other.status_code == 200, "one key's limit held back another key"


def test_a_body_over_the_limit_is_413_declared_or_streamed(client: TestClient) -> None:
    headers = {"X-API-Key": INFER_KEY, "Content-Type": "application/json"}
    big = b'{"x": "' + b"a" * 4096 + b'"}'
    response = client.post("/infer", content=big, headers=headers)
    assert response.status_code == 413 and response.json()["error"]["field"] == "body"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield big[:1000]
        yield big[1000:]

    response = client.post("/infer", content=chunks(), headers=headers)
    assert response.status_code == 413
    small = client.post("/infer", json={"x": "a" * 100}, headers=headers)
    assert small.status_code == 200


def test_cors_preflight_from_an_allowed_origin_passes_without_a_key(client: TestClient) -> None:
    preflight = {
        "Origin": SHOP,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    response = client.options("/infer", headers=preflight)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SHOP
    assert "access-control-allow-credentials" not in response.headers


def test_cors_preflight_from_another_origin_is_refused(client: TestClient) -> None:
    preflight = {"Origin": "https://evil.example.net", "Access-Control-Request-Method": "POST"}
    response = client.options("/infer", headers=preflight)
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    simple = client.post(
        "/infer", json={}, headers={"Origin": "https://evil.example.net", "X-API-Key": INFER_KEY}
    )
    assert "access-control-allow-origin" not in simple.headers


def test_a_wildcard_origin_with_credentials_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="list the origins"):
        CorsConfig(allow_origins=("*",), allow_credentials=True)


def test_keys_can_be_switched_off_for_a_gateway_that_authenticates() -> None:
    with TestClient(_app(IngressConfig(require_api_key=False))) as http:
        assert http.post("/infer", json={}).status_code == 200


def test_a_browser_page_may_read_retry_after(client: TestClient) -> None:
    answer = client.post("/infer", json={}, headers={"Origin": SHOP, "X-API-Key": INFER_KEY})
    assert answer.headers["access-control-allow-origin"] == SHOP
    assert "retry-after" in answer.headers["access-control-expose-headers"].lower()
