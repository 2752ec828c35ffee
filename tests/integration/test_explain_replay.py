"""Debugging a served list (issue 22): the explanation inline for an admin, `blendserve
explain` from the event log, `blendserve replay` reproducing the list exactly, and a
replay under another config showing the difference and why."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from serving_cluster import INFER_ONLY_KEY, Deployed, app_config, deployment, until

from deployments.cli.main import main

pytestmark = pytest.mark.integration

EXPLAIN = {"X-Blendserve-Explain": "1"}


def _recommend(
    client: httpx.Client, use_case: str, user: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    response = client.post(
        f"/v1/recommend/{use_case}", json={"user_id": user, "k": 8}, headers=headers or {}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_an_admin_gets_the_explanation_inline_and_others_do_not(
    client: httpx.Client, deployed: Deployed, known_user: str
) -> None:
    body = _recommend(client, "home", known_user, EXPLAIN)
    report = body["explain"]
    assert report["request_id"] == body["request_id"]
    assert report["model_versions"] == body["model_versions"]
    assert [i["item_id"] for i in report["items"]] == [i["item_id"] for i in body["items"]]
    nodes = {node["node"]: node for node in report["nodes"]}
    assert nodes["cf"]["ran"] and nodes["cf"]["items"] > 0 and nodes["cf"]["ms"] >= 0
    assert report["catalog_version"] >= 1 and len(report["plan_version"]) == 12
    infer_only = {"Authorization": f"Bearer {INFER_ONLY_KEY}", **EXPLAIN}
    plain = httpx.post(
        f"{deployed.url}/v1/recommend/home", json={"user_id": known_user}, headers=infer_only
    )
    assert plain.status_code == 200 and "explain" not in plain.json()


def test_a_degraded_node_says_so_in_the_explanation(client: httpx.Client) -> None:
    # The flaky app's `cf` source is a model that raises on every call.
    body = client.post(
        "/flaky/v1/recommend/home", json={"user_id": "u0001", "k": 5}, headers=EXPLAIN
    ).json()
    assert body["degraded"]
    (failed,) = [n for n in body["explain"]["nodes"] if "failed" in n]
    assert failed["node"] == "cf" and failed["failed"]
    # It fails at once, unless the machine is so busy the budget ran out first.
    assert failed["late"] or "Error" in failed["failed"], failed


def test_explain_and_replay_reproduce_a_logged_list(
    client: httpx.Client,
    deployed: Deployed,
    known_user: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    body = _recommend(client, "discover", known_user)
    request_id = body["request_id"]
    where = ["--deployment", str(deployed.config_path)]
    # The list reaches the event dataset within the flush interval.
    code, out = until(
        lambda: (result := _cli(capsys, "explain", request_id, *where))[0] == 0 and result,
        30,
        "the served list in the event log",
    )
    assert f"request {request_id}: use case discover" in out
    assert f"experiment arms: {body['variant']}" in out or not body["variant"]
    for model, version in body["model_versions"].items():
        assert f"{model} {version}" in out
    code, out = _cli(capsys, "replay", request_id, "--user", known_user, *where)
    assert code == 0, out
    assert f"same list: {len(body['items'])} items" in out

    # `latest` draws from the catalogue's newest items and online clicks, both changing:
    # its fresh and bandit lists were recorded, and the replay uses them.
    latest = _recommend(client, "latest", known_user)
    until(
        lambda: _cli(capsys, "explain", latest["request_id"], *where)[0] == 0,
        30,
        "the latest list in the event log",
    )
    code, out = _cli(capsys, "replay", latest["request_id"], "--user", known_user, *where)
    assert code == 0 and f"same list: {len(latest['items'])} items" in out, out

    # Another user is refused: the record's pseudonym is checked.
    code, out = _cli(capsys, "replay", request_id, "--user", "someone-else", *where)
    assert code == 2 and "is not the user" in out

    # Under another config (a different plan for the same use case) the list differs,
    # and the replay says the plan changed.
    other = copy.deepcopy(deployed.config)
    main_app = app_config(other, "blendserve")
    cases = deployment(main_app)["user_config"]["use_cases"]
    cases["discover"] = {
        "output": "pop",
        "nodes": {"pop": {"kind": "source", "model": "popularity", "candidates": 50}},
    }
    changed = tmp_path / "other.yaml"
    changed.write_text(yaml.safe_dump(other))
    code, out = _cli(
        capsys, "replay", request_id, "--user", known_user, *where, "--config", str(changed)
    )
    assert code == 1 and "DIFFERENT" in out and "why: plan" in out, out


def test_each_recommendation_writes_one_json_line_and_the_model_replica_names_it(
    client: httpx.Client, deployed: Deployed, known_user: str
) -> None:
    body = _recommend(client, "home", known_user)
    request_id = body["request_id"]
    logs = Path(deployed.cluster.temp_dir) / "session_latest" / "logs" / "serve"

    def line() -> dict[str, Any] | None:
        for path in logs.glob("replica_blendserve_Ingress_*.log"):
            for text in path.read_text(errors="replace").splitlines():
                if f'"request_id":"{request_id}"' in text:
                    # Serve's own fields come first, its request id among them: the
                    # same id as the answer's, so every line of the request shares it.
                    prefix, _, message = text.partition(" -- ")
                    assert request_id in prefix, text
                    return dict(json.loads(message))
        return None

    found = until(line, 30, "the request's line in an ingress replica's log")
    assert found["use_case"] == "home" and found["status"] == 200
    assert found["model_versions"] == body["model_versions"]
    assert found["node_items"]["cf"] > 0 and "cf" in found["node_ms"]
    assert known_user not in json.dumps(found), "the user id is pseudonymised"

    # mf runs in its own replicas (a pool and its CPU overflow): the line of the batch
    # that served the request names it, whichever requests shared the batch.
    def model_line() -> dict[str, Any] | None:
        for path in logs.glob("replica_blendserve_model-mf*.log"):
            for text in path.read_text(errors="replace").splitlines():
                _, _, message = text.partition(" -- ")
                if message.startswith("{") and request_id in message:
                    return dict(json.loads(message))
        return None

    batch = until(model_line, 30, "the request's id in mf's replica log")
    assert batch["event"] == "model_recommend" and request_id in batch["request_ids"]
    assert batch["versions"] == [body["model_versions"]["mf"]] and batch["failed"] == 0
