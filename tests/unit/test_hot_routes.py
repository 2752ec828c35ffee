"""Which requests the edge answers itself, and how it reads the API key."""

from __future__ import annotations

from typing import Any

import pytest

from deployments.api.hot_routes import _presented_key, hot_route


def _scope(method: str, path: str, root: str = "", **headers: str) -> dict[str, Any]:
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return {"method": method, "path": path, "root_path": root, "headers": raw}


@pytest.mark.parametrize(
    ("path", "kind", "name", "template"),
    [
        ("/v1/recommend/home", "recommend", "home", "/v1/recommend/{use_case}"),
        ("/v1/predict/click_model", "predict", "click_model", "/v1/predict/{model}"),
        ("/v2/models/mf/infer", "infer", "mf", "/v2/models/{model}/infer"),
    ],
)
def test_the_hot_routes_are_recognised_with_their_template(
    path: str, kind: str, name: str, template: str
) -> None:
    route = hot_route(_scope("POST", path))
    assert route is not None and (route.kind, route.name, route.path) == (kind, name, template)
    prefixed = hot_route(_scope("POST", f"/shop{path}", root="/shop"))
    assert prefixed is not None and prefixed.name == name


@pytest.mark.parametrize(
    "scope",
    [
        _scope("GET", "/v1/recommend/home"),
        _scope("POST", "/v1/recommend/home/extra"),
        _scope("POST", "/v1/recommend/"),
        _scope("POST", "/v2/models/mf/versions/1/infer"),
        _scope("POST", "/v1/feedback"),
        _scope("POST", "/v1/recommend/home", origin="https://shop.example"),
    ],
)
def test_everything_else_goes_through_fastapi(scope: dict[str, Any]) -> None:
    assert hot_route(scope) is None


def test_the_key_is_read_like_the_routes_read_it() -> None:
    assert _presented_key([(b"authorization", b"Bearer k1")]) == "k1"
    assert _presented_key([(b"authorization", b"bearer k1")]) == "k1"
    assert _presented_key([(b"x-api-key", b"k2")]) == "k2"
    # A non-bearer Authorization falls back to X-API-Key, as HTTPBearer(auto_error=False).
    assert _presented_key([(b"authorization", b"Basic abc"), (b"x-api-key", b"k3")]) == "k3"
    assert _presented_key([]) is None
