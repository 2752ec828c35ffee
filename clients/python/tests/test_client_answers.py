"""Requests go out as the API documents them; answers come back as typed dataclasses."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest
from fake_service import API_KEY, BASE_URL, Script, reply
from recorded_answers import (
    CATALOG_ITEM,
    EXPERIMENT_AB,
    EXPERIMENTS,
    INTERLEAVE,
    MODELS,
    NOT_READY,
    PREDICT_CLICK_MODEL,
    READY,
    RECOMMEND_DISCOVER,
    RECOMMEND_HOME,
    RESULT_ID_1,
)

from blendserve_client import (
    BlendserveError,
    Client,
    Component,
    Readiness,
    RecommendedItem,
)


def test_recommend_reads_items_components_and_provenance(serve):
    client = serve(reply(200, RECOMMEND_HOME))
    rec = client.recommend("home", "u0042", k=2)
    assert rec.request_id == "7849337b30c9406290eccf5669e880fc"
    assert rec.use_case == "home"
    assert [item.item_id for item in rec.items] == ["a01806", "a01753"]
    first = rec.items[0]
    assert first == RecommendedItem(
        item_id="a01806",
        result_id=RESULT_ID_1,
        score=1.0,
        pinned=True,
        team=None,
        components=first.components,
    )
    assert first.components[1] == Component(
        source="picks",
        model="staff_picks",
        version="1",
        weight=None,
        score=1.0,
        raw_score=1.0,
        slot=1,
        curated=True,
    )
    assert rec.items[1].components[0].raw_score == 451.0  # an integer in JSON
    assert rec.model_versions == {"mf": "1", "popularity": "1", "staff_picks": "1"}
    assert rec.variant == {}
    assert rec.degraded is False


def test_recommend_sends_the_documented_body_with_the_key(serve):
    client = serve(reply(200, RECOMMEND_HOME))
    client.recommend("home", "u0042", k=2, context={"device": "ios"}, exclude=("a1", "a2"))
    (request,) = client.script.requests
    assert request.method == "POST"
    assert str(request.url) == f"{BASE_URL}/v1/recommend/home"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("blendserve-client/")
    assert client.script.bodies() == [
        {"user_id": "u0042", "k": 2, "context": {"device": "ios"}, "exclude": ["a1", "a2"]}
    ]


def test_recommend_leaves_out_context_and_exclude_when_not_given(serve):
    client = serve(reply(200, RECOMMEND_HOME))
    client.recommend("home", "u0042")
    assert client.script.bodies() == [{"user_id": "u0042", "k": 10}]


def test_recommend_refuses_a_string_as_exclude_before_sending(serve):
    client = serve()
    with pytest.raises(TypeError, match="exclude"):
        client.recommend("home", "u0042", exclude="a01806")
    assert client.script.requests == []


def test_interleaved_answer_carries_team_variant_and_rerank_role(serve):
    rec = serve(reply(200, RECOMMEND_DISCOVER)).recommend("discover", "u0006", k=1)
    assert rec.variant == {"ab": "interleaved"}
    assert rec.items[0].team == "taste"
    assert rec.items[0].components[0].role == "rerank"
    assert rec.degraded is True


def test_predict_sends_instances_and_reads_predictions(serve):
    client = serve(reply(200, PREDICT_CLICK_MODEL))
    row = {"category_affinity": 0.4, "log_item_popularity": 5.2, "hour_of_day": 20}
    prediction = client.predict("click_model", [row])
    assert client.script.requests[0].url.path == "/v1/predict/click_model"
    assert client.script.bodies() == [{"instances": [row]}]
    assert (prediction.model, prediction.version) == ("click_model", "1")
    assert prediction.predictions == [0.9808552861213684]


def test_models_reads_versions_and_keeps_the_rest_raw(serve):
    models = serve(reply(200, MODELS)).models()
    assert models.replica == "r1a2b3"
    mf = models.models["mf"]
    assert (mf.status, mf.placement, mf.version) == ("serving", "replica", "1")
    canary = mf.versions[1]
    assert (canary.role, canary.status, canary.traffic_percent) == ("canary", "rolled_back", 0.0)
    assert canary.reason is not None and canary.reason.startswith("error rate")
    assert canary.raw["window"] == {"calls": 20, "errors": 20}
    assert mf.raw["format"] == "torchscript"
    broken = models.models["broken"]
    assert (broken.status, broken.error, broken.versions) == ("failed", broken.error, [])
    assert broken.error == "TimeoutError: status"


def test_experiment_report_reads_arms_lift_and_verdict(serve):
    client = serve(reply(200, EXPERIMENT_AB))
    report = client.experiment("discover.ab")
    assert client.script.requests[0].url.path == "/v1/experiments/discover.ab"
    assert (report.kind, report.control, report.winner) == ("experiment", "control", "clicky")
    assert list(report.arms) == ["control", "clicky"]
    clicky = report.arms["clicky"]
    assert (clicky.impressions, clicky.clicks, clicky.significant) == (4790, 298, True)
    assert clicky.lift == pytest.approx(0.98)
    assert report.arms["control"].lift is None
    assert report.raw["srm"]["mismatch"] is False
    assert report.verdict.startswith("clicky beats control")


def test_interleaving_report_reads_wins_ties_and_preferred_team(serve):
    report = serve(reply(200, INTERLEAVE)).experiment("discover.head_to_head")
    assert report.kind == "interleave"
    assert report.teams == ["taste", "clicky"]
    assert report.wins == {"taste": 8, "clicky": 20}
    assert (report.ties, report.winner, report.p_value) == (2, "clicky", 0.036)
    assert report.arms == {}


def test_experiments_lists_names(serve):
    assert serve(reply(200, EXPERIMENTS)).experiments() == ["discover.ab", "discover.head_to_head"]


def test_ready_is_truthy_when_every_model_answers(serve):
    client = serve(reply(200, READY))
    readiness = client.ready()
    assert readiness and readiness.models == ["popularity", "staff_picks", "mf"]
    assert client.script.requests[0].url.path == "/readyz"


def test_not_ready_503_is_an_answer_not_an_error(serve):
    readiness = serve(reply(503, NOT_READY, {"Retry-After": "1"})).ready()
    assert not readiness
    assert readiness.not_ready == {"model:mf": "ArtifactNotFoundError: mf/3: no such version"}
    assert readiness.degraded_use_cases == {"home": ["mf"]}


def test_not_ready_from_a_proxy_without_json_is_still_an_answer(serve):
    readiness = serve(reply(503, text="<html>no server available</html>")).ready()
    assert readiness == Readiness(False, not_ready=readiness.not_ready)
    assert "no server available" in readiness.not_ready["service"]


def test_path_segments_are_percent_encoded(serve):
    client = serve(reply(200, RECOMMEND_HOME))
    client.recommend("home page?x=1#y", "u1")
    assert client.script.requests[0].url.raw_path == b"/v1/recommend/home%20page%3Fx%3D1%23y"


def test_a_base_url_path_prefix_is_kept():
    script = Script(reply(200, EXPERIMENTS))
    client = Client("https://gw.example/blend/", api_key="k", transport=httpx.MockTransport(script))
    assert client.base_url == "https://gw.example/blend"
    client.experiments()
    assert str(script.requests[0].url) == "https://gw.example/blend/v1/experiments"


def test_url_and_key_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("BLENDSERVE_URL", "http://from-env:8000")
    monkeypatch.setenv("BLENDSERVE_API_KEY", "bsk_env")
    script = Script(reply(200, EXPERIMENTS))
    client = Client(transport=httpx.MockTransport(script))
    client.experiments()
    assert script.requests[0].url.host == "from-env"
    assert script.requests[0].headers["Authorization"] == "Bearer bsk_env"


def test_without_a_key_no_authorization_header_is_sent():
    script = Script(reply(200, READY))
    Client(BASE_URL, transport=httpx.MockTransport(script)).ready()
    assert "Authorization" not in script.requests[0].headers


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"base_url": None}, "base_url: expected an http(s) URL"),
        ({"base_url": "blendserve:8000"}, "base_url: expected an http:// or https:// URL"),
        ({"timeout_s": 0}, "timeout_s: expected a number > 0, got 0"),
        ({"retries": -1}, "retries: expected an integer >= 0, got -1"),
        ({"backoff_s": float("nan")}, "backoff_s: expected a number >= 0"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(options, message):
    settings = {"base_url": BASE_URL, "api_key": "k", **options}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Client(**settings)


def test_the_key_never_shows_in_repr():
    client = Client(BASE_URL, api_key="bsk_secret")
    assert "bsk_secret" not in repr(client) + repr(client._settings)


def test_an_answer_of_the_wrong_shape_names_the_field(serve):
    broken = {**RECOMMEND_HOME, "items": [{**RECOMMEND_HOME["items"][0], "score": "high"}]}
    with pytest.raises(BlendserveError) as caught:
        serve(reply(200, broken)).recommend("home", "u0042")
    assert caught.value.code == "unexpected_answer"
    assert "items.0.score: expected a number, got str" in str(caught.value)


def test_an_answer_that_is_not_json_is_an_unexpected_answer(serve):
    with pytest.raises(BlendserveError, match="expected JSON") as caught:
        serve(reply(200, text="<html>")).models()
    assert caught.value.code == "unexpected_answer"


def test_published_times_with_z_read_as_aware_datetimes(serve):
    item = serve(reply(200, CATALOG_ITEM)).get_item("a09999")
    assert item.published_at == datetime(2026, 11, 28, 23, 0, tzinfo=timezone.utc)
