"""End to end against a real local Ray Serve: recommend, predict, errors, readiness."""

from __future__ import annotations

import copy
import time

import httpx
import pytest
from serving_cluster import FLAKY_MAX_K, Deployed, app_config, whole_answer

from deployments.local.cluster import wait_ready

pytestmark = pytest.mark.integration


def _recommend(client: httpx.Client, user: str, prefix: str = "", **body: object) -> httpx.Response:
    return client.post(f"{prefix}/v1/recommend/home", json={"user_id": user, **body})


def test_recommend_returns_k_items_with_provenance(client: httpx.Client, known_user: str) -> None:
    body = whole_answer(client, "/v1/recommend/home", {"user_id": known_user, "k": 10})
    items = body["items"]
    assert len(items) == 10
    assert len({i["item_id"] for i in items}) == 10
    assert body["use_case"] == "home" and body["request_id"] and body["degraded"] is False
    sources = {c["source"] for i in items for c in i["components"]}
    assert {"cf", "popular", "picks"} <= sources
    assert set(body["model_versions"]) == {"mf", "popularity", "staff_picks"}
    for item in items:
        assert item["components"], item
        for component in item["components"]:
            assert component["version"] == body["model_versions"][component["model"]]


def test_staff_picks_are_pinned_at_configured_positions(
    client: httpx.Client, known_user: str
) -> None:
    items = _recommend(client, known_user, k=10).json()["items"]
    pinned = [index + 1 for index, item in enumerate(items) if item["pinned"]]
    assert pinned == [1, 5]
    for position in pinned:
        slots = [c["slot"] for c in items[position - 1]["components"] if c.get("slot")]
        assert slots == [position]


def test_different_users_get_personalised_lists(client: httpx.Client, deployed: Deployed) -> None:
    import json
    from pathlib import Path

    store = Path(deployed.cluster.home) / "artifacts" / "mf" / "1" / "ids.json"
    users = json.loads(store.read_text())["users"][:8]
    lists = {tuple(i["item_id"] for i in _recommend(client, u).json()["items"]) for u in users}
    assert len(lists) > 1


def test_excluded_items_never_come_back(client: httpx.Client, known_user: str) -> None:
    first = [i["item_id"] for i in _recommend(client, known_user, k=10).json()["items"]]
    again = _recommend(client, known_user, k=10, exclude=first[:5]).json()["items"]
    assert len(again) == 10
    assert not {i["item_id"] for i in again} & set(first[:5])


def test_unknown_user_still_gets_recommendations(client: httpx.Client) -> None:
    response = _recommend(client, "someone-new", k=5)
    assert response.status_code == 200
    assert len(response.json()["items"]) == 5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "u1", "k": 0}, "k"),
        ({"user_id": "u1", "k": 101}, "k"),
        ({"user_id": "u1", "k": "ten"}, "k"),
        ({"k": 5}, "user_id"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": "u1", "exclude": "a1"}, "exclude"),
        ({"user_id": "u1", "colour": "red"}, "colour"),
    ],
)
def test_bad_recommend_input_is_422_naming_the_field(
    client: httpx.Client, body: dict[str, object], field: str
) -> None:
    response = client.post("/v1/recommend/home", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


def test_k_above_the_configured_max_k_is_422_naming_k(client: httpx.Client) -> None:
    response = client.post("/v1/recommend/home", json={"user_id": "u1", "k": 101})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "k" and "100" in error["message"]


def test_a_raised_max_k_serves_longer_lists(client: httpx.Client) -> None:
    # The flaky app sets max_k 300: k=150 is served in full (popularity alone has 200).
    response = client.post("/flaky/v1/recommend/home", json={"user_id": "u1", "k": 150})
    assert response.status_code == 200, response.text
    items = [item["item_id"] for item in response.json()["items"]]
    assert len(items) == 150 == len(set(items))
    too_many = client.post("/flaky/v1/recommend/home", json={"user_id": "u1", "k": FLAKY_MAX_K + 1})
    assert too_many.status_code == 422 and too_many.json()["error"]["field"] == "k"


def test_malformed_json_is_a_4xx_not_a_500(client: httpx.Client) -> None:
    response = client.post(
        "/v1/recommend/home", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def test_unknown_use_case_and_model_are_404(client: httpx.Client) -> None:
    response = client.post("/v1/recommend/nowhere", json={"user_id": "u1"})
    assert response.status_code == 404
    assert "nowhere" in response.json()["error"]["message"]
    response = client.post("/v1/predict/nothing", json={"instances": [[1]]})
    assert response.status_code == 404


def test_predict_serves_the_sklearn_click_model(client: httpx.Client) -> None:
    features = client.get("/v1/models").json()["models"]["click_model"]["feature_names"]
    row = dict.fromkeys(features, 0.5)
    response = client.post("/v1/predict/click_model", json={"instances": [row, row]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "click_model" and body["version"] == "1"
    assert len(body["predictions"]) == 2
    assert all(0.0 <= p <= 1.0 for p in body["predictions"])


def test_predict_reaches_the_torch_deployment(client: httpx.Client, known_user: str) -> None:
    response = client.post("/v1/predict/mf", json={"instances": [{"user_id": known_user}]})
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"][0]["items"]) == 10


def test_bad_predict_instance_is_422_naming_it(client: httpx.Client) -> None:
    response = client.post("/v1/predict/click_model", json={"instances": [[0.1, 0.2]]})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "instances.0"


def test_failed_source_degrades_instead_of_500(client: httpx.Client, known_user: str) -> None:
    response = _recommend(client, known_user, prefix="/flaky", k=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["degraded"] is True
    assert len(body["items"]) == 10
    assert "broken" not in body["model_versions"]
    assert {c["source"] for i in body["items"] for c in i["components"]} == {"popular", "picks"}


def test_failed_source_is_logged_with_its_reason(
    client: httpx.Client, deployed: Deployed, known_user: str
) -> None:
    _recommend(client, known_user, prefix="/flaky")
    logs = deployed.cluster.temp_dir / "session_latest" / "logs" / "serve"

    def logged() -> bool:
        return any(
            "cf left out" in path.read_text(errors="replace")
            and "weights do not match the item catalogue" in path.read_text(errors="replace")
            for path in logs.glob("replica_flaky_Ingress_*.log")
        )

    deadline = time.monotonic() + 10
    while not logged() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert logged()


def test_health_and_docs(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/recommend/{use_case}" in paths and "/v1/predict/{model}" in paths


def test_readiness_flips_to_200_after_deploy(deployed: Deployed, client: httpx.Client) -> None:
    response = client.get("/pending/readyz")
    assert response.status_code == 503
    assert "model:mf" in response.json()["not_ready"]
    fixed = copy.deepcopy(deployed.config)
    app_config(fixed, "pending")["args"]["models"]["mf"]["num_cpus"] = 0.25
    deployed.redeploy(fixed)
    body = wait_ready(f"{deployed.url}/pending/readyz", timeout_s=180)
    assert body["ready"] is True


def test_open_inference_protocol_infer_matches_v1_predict(client: httpx.Client) -> None:
    row = [0.4, 5.2, 3.0, 20.0]
    v1 = client.post("/v1/predict/click_model", json={"instances": [row]}).json()
    body = {"id": "r1", "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": row}]}
    reply = client.post("/v2/models/click_model/infer", json=body)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["model_name"] == "click_model" and answer["id"] == "r1"
    assert answer["outputs"][0]["shape"] == [1]
    assert answer["outputs"][0]["data"] == pytest.approx(v1["predictions"])
    versioned = client.post("/v2/models/click_model/versions/1/infer", json=body)
    assert versioned.status_code == 200
    assert client.post("/v2/models/click_model/versions/9/infer", json=body).status_code == 404
    bad = client.post(
        "/v2/models/click_model/infer", json={"inputs": [{**body["inputs"][0], "shape": [2, 4]}]}
    )
    assert bad.status_code == 400 and "needs 8 values" in bad.json()["error"]
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200


def test_concurrent_requests_share_handle_calls_to_the_model_replica(
    client: httpx.Client,
) -> None:
    import concurrent.futures

    def call(n: int) -> int:
        return _recommend(client, f"together{n}", k=5).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(call, range(96)))
    assert set(statuses) == {200}
    # Whichever ingress replica answers, it took about half of the 96 requests from 16
    # clients, and calls that arrived together shared a handle call.
    info = client.get("/v1/models").json()["models"]["mf"]["coalescing"]
    assert info["requests"] >= 30 and info["handle_calls"] < info["requests"], info


def test_calls_beyond_the_main_pool_spill_to_the_cpu_pool(client: httpx.Client) -> None:
    import concurrent.futures

    def call(n: int) -> int:
        return _recommend(client, f"spill{n}", k=5).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(call, range(64)))
    assert set(statuses) == {200}
    pool_info = client.get("/v1/models").json()["models"]["mf"]["cpu_pool"]
    assert pool_info["spill_above"] == 2 and pool_info["spilled_calls"] > 0
