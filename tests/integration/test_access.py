"""Access to the real service: every route's keys and scopes, CORS, per-key rate
limits, and bodies and fields past their bounds.

All traffic is on 127.0.0.1, bounded in count and time.
"""

from collections import Counter
from typing import Any

import httpx
import pytest
from serving_cluster import (
    ADMIN_ONLY_KEY,
    ALLOWED_ORIGIN,
    INFER_ONLY_KEY,
    LIMITED_BURST,
    LIMITED_KEY,
    Deployed,
    app_config,
    deployment,
)

pytestmark = pytest.mark.integration

OIP_BODY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0.4, 5, 3, 20]}]}
PROBES = {"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/dashboard", "/demo"}
"""Open routes: health probes, and the dashboard and storefront pages (they ask for a key)."""
OPEN_FILES = {"/demo/client/{name}": "/demo/client/index.js"}
"""Open static files: the JavaScript client the storefront imports."""
# Every API route: the scope it needs, its path parameters and a valid body. A route
# added without an entry here fails the audit below.
ROUTES: dict[tuple[str, str], tuple[str, dict[str, str], Any]] = {
    ("post", "/v1/recommend/{use_case}"): ("infer", {"use_case": "home"}, {"user_id": "u1"}),
    ("post", "/v1/predict/{model}"): (
        "infer",
        {"model": "click_model"},
        {"instances": [[0.4, 5.0, 3.0, 20.0]]},
    ),
    ("post", "/v2/models/{model}/infer"): ("infer", {"model": "click_model"}, OIP_BODY),
    ("post", "/v2/models/{model}/versions/{version}/infer"): (
        "infer",
        {"model": "click_model", "version": "1"},
        OIP_BODY,
    ),
    ("get", "/v1/models"): ("admin", {}, None),
    ("get", "/v2/models/{model}"): ("infer", {"model": "click_model"}, None),
    ("get", "/v2/models/{model}/ready"): ("infer", {"model": "click_model"}, None),
    ("get", "/v2/models/{model}/versions/{version}"): (
        "infer",
        {"model": "click_model", "version": "1"},
        None,
    ),
    ("get", "/v2/models/{model}/versions/{version}/ready"): (
        "infer",
        {"model": "click_model", "version": "1"},
        None,
    ),
    ("post", "/v1/feedback"): ("infer", {}, lambda http: _impression(http)),
    ("get", "/v1/experiments"): ("admin", {}, None),
    ("get", "/v1/experiments/{name}"): ("admin", {"name": "discover.ab"}, None),
    ("get", "/v1/dashboard"): ("admin", {}, None),
    ("put", "/v1/catalog/items/{item_id}"): ("admin", {"item_id": "audit"}, {"title": "a"}),
    ("patch", "/v1/catalog/items/{item_id}"): ("admin", {"item_id": "audit"}, {"title": "b"}),
    ("get", "/v1/catalog/items/{item_id}"): ("admin", {"item_id": "audit"}, None),
    ("delete", "/v1/catalog/items/{item_id}"): ("admin", {"item_id": "audit"}, None),
    ("post", "/v1/catalog/items:batch"): ("admin", {}, {"items": [{"item_id": "audit-2"}]}),
    ("get", "/v1/catalog"): ("admin", {}, None),
    ("get", "/v1/online"): ("admin", {}, None),
}
"""A body may be a function of an authorised client (one that needs a live result id)."""


def _impression(http: httpx.Client) -> dict[str, Any]:
    served = http.post("/v1/recommend/home", json={"user_id": "u1", "k": 1})
    return {"result_id": served.json()["items"][0]["result_id"], "event": "impression"}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _call(
    http: httpx.Client, method: str, path: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    return http.request(method.upper(), path, json=body, headers=headers)


def test_every_route_answers_401_403_and_200_by_key_and_scope(deployed: Deployed) -> None:
    with httpx.Client(base_url=deployed.url, timeout=30.0) as anonymous:
        spec = anonymous.get("/openapi.json").json()
        operations = {(method, path) for path, item in spec["paths"].items() for method in item}
        open_routes = {("get", p) for p in {*PROBES, *OPEN_FILES}}
        assert operations - open_routes == set(ROUTES), "audit ROUTES"
        for probe in [*PROBES, *OPEN_FILES.values()]:
            assert anonymous.get(probe).status_code == 200, probe
        wrong_key = {"infer": ADMIN_ONLY_KEY, "admin": INFER_ONLY_KEY}
        right_key = {"infer": INFER_ONLY_KEY, "admin": ADMIN_ONLY_KEY}
        for (method, template), (scope, params, body) in ROUTES.items():
            path = template.format(**params)
            if callable(body):
                with httpx.Client(
                    base_url=deployed.url, headers=deployed.cluster.auth_headers()
                ) as dev:
                    body = body(dev)
            no_key = _call(anonymous, method, path, body, {})
            assert no_key.status_code == 401, (path, no_key.text)
            error = no_key.json()["error"]
            if path.startswith("/v2/"):  # the Open Inference Protocol's error shape
                assert isinstance(error, str) and "API key" in error
            else:
                assert error["code"] == "unauthenticated"
            bad_key = _call(anonymous, method, path, body, _bearer("not-a-key-at-all-12345"))
            assert bad_key.status_code == 401, path
            wrong = _call(anonymous, method, path, body, {"X-API-Key": wrong_key[scope]})
            assert wrong.status_code == 403, (path, wrong.text)
            right = _call(anonymous, method, path, body, _bearer(right_key[scope]))
            assert right.status_code == (202 if path == "/v1/feedback" else 200), (path, right.text)


def test_cors_allows_the_configured_origin_only(client: httpx.Client) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    allowed = client.options("/v1/recommend/home", headers={**preflight, "Origin": ALLOWED_ORIGIN})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    refused = client.options(
        "/v1/recommend/home", headers={**preflight, "Origin": "http://evil.example.net"}
    )
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


def test_a_key_over_its_rate_gets_429_with_retry_after(deployed: Deployed) -> None:
    replicas = deployment(app_config(deployed.config, "blendserve"))["num_replicas"]
    with httpx.Client(base_url=deployed.url, timeout=30.0, headers=_bearer(LIMITED_KEY)) as http:
        answers = [
            http.post("/v1/recommend/home", json={"user_id": "u1", "k": 3})
            for _ in range(3 * replicas * LIMITED_BURST)
        ]
    codes = Counter(r.status_code for r in answers)
    assert set(codes) == {200, 429}, codes
    # Each ingress replica grants the key its own burst (the limit is per replica).
    assert LIMITED_BURST <= codes[200] <= replicas * LIMITED_BURST, codes
    assert [r.status_code for r in answers[:LIMITED_BURST]] == [200] * LIMITED_BURST
    refused = next(r for r in answers if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited"


def test_bodies_and_fields_past_their_bounds_are_4xx_naming_them(client: httpx.Client) -> None:
    huge = client.post(
        "/v1/recommend/home",
        content=b'{"user_id": "' + b"x" * 2_000_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert huge.status_code == 413 and huge.json()["error"]["field"] == "body"
    cases = [
        ({"user_id": "u" * 300}, "user_id"),
        ({"user_id": "u1", "context": {f"k{i}": 1 for i in range(40)}}, "context"),
        ({"user_id": "u1", "context": {"page": "p" * 1000}}, "context"),
        ({"user_id": "u1", "context": {"nested": {"a": 1}}}, "context"),
        ({"user_id": "u1", "exclude": ["x" * 300]}, "exclude.0"),
        ({"user_id": "u1", "exclude": ["i"] * 1001}, "exclude"),
    ]
    for body, field in cases:
        response = client.post("/v1/recommend/home", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["field"] == field, response.text
