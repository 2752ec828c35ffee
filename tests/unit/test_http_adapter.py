"""The http format against a real legacy REST service on 127.0.0.1, in a thread."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from format_builders import (
    LEGACY_TOKEN,
    SLOW_ANSWER_S,
    LegacyService,
    closed_port_url,
    legacy_service,
    publish_http_endpoint,
)

from models.base import RecommendQuery
from models.errors import InputError, ModelError
from models.formats.http_adapter import HttpModelAdapter
from models.registry import adapter_class, load_model
from models.smoke import SMOKE_USER, smoke_test
from models.store import ArtifactStore

TOKEN_VARIABLE = "BLENDSERVE_TEST_LEGACY_TOKEN"


@pytest.fixture
def service() -> Iterator[LegacyService]:
    """The legacy service, running for one test."""
    with legacy_service() as running:
        yield running


PublishEndpoint = Callable[..., HttpModelAdapter]
"""``publish(endpoint, options=None, examples=None)``: publish and load model ``legacy``."""


@pytest.fixture
def publish(store: ArtifactStore, scratch: Path) -> Iterator[PublishEndpoint]:
    """Publish ``endpoint`` as model ``legacy`` and load it (with ``options``)."""
    adapters: list[HttpModelAdapter] = []

    def publish_and_load(
        endpoint: dict[str, Any],
        options: dict[str, Any] | None = None,
        examples: list[Any] | None = None,
    ) -> HttpModelAdapter:
        publish_http_endpoint(store, scratch, endpoint, example_instances=examples)
        model = load_model(store, "legacy", "1", options)
        assert isinstance(model, HttpModelAdapter)
        adapters.append(model)
        return model

    yield publish_and_load
    for adapter in adapters:
        adapter.close()


def test_http_format_is_registered_and_blocking() -> None:
    assert adapter_class("http") is HttpModelAdapter and HttpModelAdapter.blocking


def test_v1_round_trip_posts_instances(service: LegacyService, publish: PublishEndpoint) -> None:
    model = publish({"url": service.url("/v1/predict")})
    assert model.predict([[1.0, 2.0], [3.0, 4.5], "abc"]) == [3.0, 7.5, 3]
    path, _, body = service.requests[-1]
    assert path == "/v1/predict" and body == {"instances": [[1.0, 2.0], [3.0, 4.5], "abc"]}


def test_v2_numeric_rows_are_one_fp32_tensor(
    service: LegacyService, publish: PublishEndpoint
) -> None:
    model = publish({"url": service.url("/v2/infer"), "protocol": "v2"})
    assert model.predict([[1, 2], [3, 4.5]]) == [3.0, 7.5]
    (tensor,) = service.requests[-1][2]["inputs"]
    assert tensor == {"name": "input", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4.5]}


def test_v2_strings_are_bytes_and_outputs_split_by_shape(
    service: LegacyService, publish: PublishEndpoint
) -> None:
    model = publish({"url": service.url("/v2/infer"), "protocol": "v2"})
    assert model.predict(["banana", "kiwi"]) == [[6, 3], [4, 0]]
    (tensor,) = service.requests[-1][2]["inputs"]
    assert (tensor["datatype"], tensor["shape"]) == ("BYTES", [2])


@pytest.mark.parametrize(
    ("instances", "field"),
    [(["a", [1.0]], "instances.1"), ([[1.0, 2.0], [1.0]], "instances.1"), ([7], "instances.0")],
)
def test_v2_bad_instances_name_the_field(
    service: LegacyService, publish: PublishEndpoint, instances: list[Any], field: str
) -> None:
    model = publish({"url": service.url("/v2/infer"), "protocol": "v2"})
    with pytest.raises(InputError) as info:
        model.predict(instances)
    assert info.value.field == field
    assert service.requests == []


def test_recommender_gets_users_context_and_n(
    service: LegacyService, publish: PublishEndpoint
) -> None:
    model = publish({"url": service.url("/v1/recommend"), "recommender": True})
    queries = [RecommendQuery("alice"), RecommendQuery("zoe", {"boost": "b"})]
    assert model.recommend(queries, 2) == [[("a", 3.0), ("b", 2.0)], [("b", 3.0), ("c", 2.0)]]
    assert service.requests[-1][2]["instances"][1] == {
        "user_id": "zoe",
        "context": {"boost": "b"},
        "n": 2,
    }
    assert model.predict(["alice"]) == [{"items": ["a", "b", "c"], "scores": [3.0, 2.0, 1.0]}]


def test_non_finite_recommender_scores_are_a_model_error(
    service: LegacyService, publish: PublishEndpoint
) -> None:
    model = publish({"url": service.url("/v1/recommend-nan"), "recommender": True})
    with pytest.raises(ModelError, match=r"'legacy'.*finite scores"):
        model.recommend([RecommendQuery("alice")], 3)


def test_smoke_test_calls_the_service(service: LegacyService, publish: PublishEndpoint) -> None:
    recommender = publish({"url": service.url("/v1/recommend"), "recommender": True})
    assert smoke_test(recommender) == ["recommend (3 items)"]
    assert service.requests[-1][2]["instances"][0]["user_id"] == SMOKE_USER


def test_smoke_test_of_a_predictor_predicts_its_examples(
    store: ArtifactStore, scratch: Path, service: LegacyService
) -> None:
    endpoint = {"url": service.url("/v1/predict")}
    publish_http_endpoint(store, scratch, endpoint, example_instances=[[1.0, 1.0]])
    model = load_model(store, "legacy", "1")
    assert model.describe()["recommender"] is False
    assert smoke_test(model) == ["predict (1 examples)"]


def test_load_does_not_need_the_service_but_calls_do(publish: PublishEndpoint) -> None:
    model = publish({"url": closed_port_url()})
    with pytest.raises(ModelError, match=r"'legacy' at http://127\.0\.0\.1:\d+/v1/predict"):
        model.predict([[1.0]])


def test_timeout_raises_timeout_error_naming_model_and_url(
    service: LegacyService, publish: PublishEndpoint
) -> None:
    model = publish({"url": service.url("/slow"), "timeout_s": 0.1})
    started = time.perf_counter()
    with pytest.raises(TimeoutError, match=r"'legacy' at http://127\.0\.0\.1:\d+/slow"):
        model.predict([[1.0]])
    assert time.perf_counter() - started < SLOW_ANSWER_S


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/broken", r"answered status 500: 'legacy service exploded'"),
        ("/garbage", r"status 200 but the body is not JSON: '<html>"),
        ("/short", r"with 2 entries"),
        ("/nowhere", r"answered status 404"),
    ],
)
def test_bad_answers_are_model_errors_naming_model_url_and_status(
    service: LegacyService, publish: PublishEndpoint, path: str, message: str
) -> None:
    model = publish({"url": service.url(path)})
    with pytest.raises(ModelError, match=rf"'legacy' at http://127\.0\.0\.1:\d+{path}.*{message}"):
        model.predict([[1.0], [2.0]])


def test_headers_come_from_the_environment(
    service: LegacyService, publish: PublishEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, LEGACY_TOKEN)
    endpoint = {
        "url": service.url("/secure/predict"),
        "headers_from_env": {"Authorization": TOKEN_VARIABLE},
    }
    assert publish(endpoint).predict([1]) == ["ok"]
    assert service.requests[-1][1]["Authorization"] == LEGACY_TOKEN


def test_a_missing_header_variable_fails_the_load_naming_it(
    store: ArtifactStore, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    endpoint = {"url": "http://legacy/x", "headers_from_env": {"Authorization": TOKEN_VARIABLE}}
    publish_http_endpoint(store, scratch, endpoint)
    message = f"'Authorization' needs environment variable '{TOKEN_VARIABLE}'"
    with pytest.raises(ModelError, match=message):
        load_model(store, "legacy", "1")


def test_options_override_url_and_timeout(
    store: ArtifactStore, service: LegacyService, publish: PublishEndpoint
) -> None:
    endpoint = {"url": closed_port_url("/v1/predict?token=abc"), "timeout_s": 30}
    model = publish(endpoint, {"url": service.url("/v1/predict")})
    assert model.predict([[2.0, 2.0]]) == [4.0]
    assert model.describe()["url"] == service.url("/v1/predict")
    impatient = load_model(store, "legacy", "1", {"url": service.url("/slow"), "timeout_s": 0.1})
    assert isinstance(impatient, HttpModelAdapter)
    with pytest.raises(TimeoutError, match=r"within 0\.1 s"):
        impatient.predict([[1.0]])
    impatient.close()


def test_describe_shows_url_without_query_string_and_protocol(publish: PublishEndpoint) -> None:
    info = publish(
        {"url": "https://user:pw@legacy.example:8443/v2/infer?token=abc", "protocol": "v2"}
    ).describe()
    assert info["url"] == "https://legacy.example:8443/v2/infer"
    assert (info["protocol"], info["format"], info["recommender"]) == ("v2", "http", False)


@pytest.mark.parametrize(
    ("endpoint", "options", "message"),
    [
        ({"url": "ftp://legacy/x"}, None, r"url: expected an http\(s\) URL"),
        ({"url": "http://[::1/x"}, None, r"url: expected an http\(s\) URL"),
        ({"url": "http://legacy/x", "protocol": "v3"}, None, "protocol"),
        ({"url": "http://legacy/x", "recommender": True, "protocol": "v2"}, None, "'v1'"),
        ({"url": "http://legacy/x", "retries": 3}, None, "retries"),
        ({"url": "http://legacy/x"}, {"timeout_s": 0}, "timeout_s"),
        ({"url": "http://legacy/x"}, {"headers": {}}, r"unknown options \['headers'\]"),
        ({"timeout_s": 1}, None, "url"),
    ],
)
def test_bad_endpoints_fail_the_load(
    store: ArtifactStore,
    scratch: Path,
    endpoint: dict[str, Any],
    options: dict[str, Any] | None,
    message: str,
) -> None:
    publish_http_endpoint(store, scratch, endpoint)
    with pytest.raises(ModelError, match=rf"'legacy'.*{message}"):
        load_model(store, "legacy", "1", options)
