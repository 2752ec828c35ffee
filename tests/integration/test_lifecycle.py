"""Model lifecycle against a real local Ray Serve: live version swaps through
``serve deploy``, versions that must not take traffic, canaries, shadows, automatic
rollback, each under constant load (code updates: ``test_code_updates.py``).

They change the ``lifecycle`` app only (``serving_cluster._lifecycle``): mf, a
TorchScript model in two replicas of its own deployment, and popularity, inline in
two ingress replicas, both with their versions in ``user_config``.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from lifecycle_support import by_role, deploy, lifecycle_load, live_is, until_every_replica
from load import Sample
from serving_cluster import LIFECYCLE_PREFIX, Deployed

from models.registry import load_model
from models.store import ArtifactStore

pytestmark = pytest.mark.integration


def _mf_version(sample: Sample) -> str | None:
    return sample.body.get("model_versions", {}).get("mf")


def _mf_versions(samples: list[Sample]) -> set[str]:
    """The mf versions that answered ``samples``. A degraded answer (mf missed its budget
    on a busy machine) names none; at most 5% may be such."""
    versions = [_mf_version(sample) for sample in samples]
    assert versions.count(None) <= 0.05 * len(versions), f"{versions.count(None)} degraded"
    return {version for version in versions if version is not None}


def _trained_top_items(serve_home: Path, version: str, users: list[str]) -> list[list[str]]:
    """What ``version`` of mf, loaded here from the artifact store, ranks first per user."""
    adapter = load_model(ArtifactStore(serve_home / "artifacts"), "mf", version)
    return [prediction["items"] for prediction in adapter.predict(users)]


def _served_top_items(client: httpx.Client, users: list[str]) -> tuple[str, list[list[str]]]:
    """The version the lifecycle app's mf answers with, and its top items per user."""
    response = client.post(f"{LIFECYCLE_PREFIX}/v1/predict/mf", json={"instances": users})
    assert response.status_code == 200, response.text
    body = response.json()
    return body["version"], [prediction["items"] for prediction in body["predictions"]]


def test_a_torch_version_swaps_live_under_load_without_a_failed_request(
    client: httpx.Client, lifecycle: Deployed, serve_home: Path
) -> None:
    users = [f"swap{n}" for n in range(300)]
    probes = json.loads((serve_home / "artifacts" / "mf" / "1" / "ids.json").read_text())["users"]
    probes = [str(user) for user in probes[:8]]
    version_1, version_2 = (_trained_top_items(serve_home, v, probes) for v in ("1", "2"))
    assert version_1 != version_2, "version 2 was trained differently"
    deploy(lifecycle, mf={"version": "1"})
    until_every_replica(client, "mf", live_is("1"))
    assert _served_top_items(client, probes) == ("1", version_1)
    with lifecycle_load(client, users) as load:
        time.sleep(5)
        # Serve may swap before `serve deploy` returns: only answers finished before
        # the command started must all be version 1.
        deploying_at = time.monotonic()
        deployed_at = deploy(lifecycle, mf={"version": "2"})
        time.sleep(15)
    samples = sorted(load.samples, key=lambda s: s.done)
    assert load.statuses() == {200: len(samples)}, [s for s in samples if s.status != 200][:3]
    assert len(samples) >= 30 * 20
    all_served = [(s.done, _mf_version(s)) for s in samples]
    # A degraded answer (mf missed its budget on a busy machine) names no mf version;
    # how many there may be is asserted below.
    served = [(t, v) for t, v in all_served if v is not None]
    assert {v for t, v in served if t < deploying_at} == {"1"}
    last_old = max(t for t, v in served if v == "1")
    assert last_old - deployed_at <= 10, "responses flipped to version 2 within 10 s"
    assert {v for t, v in served if t > last_old} == {"2"}
    answered_by_mf = len(served) / len(all_served)
    assert answered_by_mf >= 0.95, f"mf answered only {answered_by_mf:.1%} (degraded)"
    print(
        f"swap: {len(samples)} requests, all 200, the last from version 1 "
        f"{last_old - deployed_at:.1f} s after serve deploy returned; mf answered "
        f"{answered_by_mf:.1%}"
    )
    statuses = until_every_replica(client, "mf", live_is("2"))
    # Both replicas now answer with version 2's own outputs, not version 1's.
    for _ in range(4):
        assert _served_top_items(client, probes) == ("2", version_2)
    for status in statuses.values():
        (live,) = status["versions"]
        assert live["traffic_percent"] == 100 and live["status"] == "serving"
        assert live["load_ms"] > 0 and live["loaded_at"]
        assert "version 2 serves live traffic (was 1)" in status["events"][-1]["message"]


@pytest.mark.parametrize(
    ("version", "why"),
    [("3", "checksum mismatch for file 'model.pt'"), ("4", "failed its smoke test: recommend")],
    ids=["bad-checksum", "predict-raises"],
)
def test_a_version_that_fails_to_load_or_predict_never_takes_traffic(
    client: httpx.Client, lifecycle: Deployed, version: str, why: str
) -> None:
    deploy(lifecycle, mf={"version": "2"})
    until_every_replica(client, "mf", live_is("2"))
    with lifecycle_load(client, [f"bad{n}" for n in range(50)], rate=20) as load:
        deploy(lifecycle, mf={"version": version})

        def refused(status: dict[str, Any]) -> bool:
            return by_role(status).get(f"live:{version}", {}).get("status") == "failed"

        statuses = until_every_replica(client, "mf", refused)
        time.sleep(1)
    assert load.statuses() == {200: len(load.samples)}
    assert _mf_versions(load.samples) == {"2"}
    for status in statuses.values():
        versions = by_role(status)
        assert why in versions[f"live:{version}"]["reason"]
        assert versions[f"live:{version}"]["traffic_percent"] == 0
        assert versions["live:2"]["status"] == "serving"
        assert versions["live:2"]["traffic_percent"] == 100
        assert status["version"] == "2"
        assert f"version {version} was not swapped in" in status["events"][-1]["message"]


def _recommend_all(client: httpx.Client, users: list[str]) -> dict[str, str | None]:
    """The mf version that answered each user, sent 16 at a time."""

    async def run() -> dict[str, str | None]:
        limit = asyncio.Semaphore(16)
        async with httpx.AsyncClient(
            base_url=str(client.base_url), headers=client.headers, timeout=30
        ) as http:

            async def one(user: str) -> tuple[str, str | None]:
                async with limit:
                    response = await http.post(
                        f"{LIFECYCLE_PREFIX}/v1/recommend/home", json={"user_id": user, "k": 5}
                    )
                assert response.status_code == 200, response.text
                return user, response.json()["model_versions"].get("mf")

            return dict(await asyncio.gather(*(one(u) for u in users)))

    return asyncio.run(run())


def test_a_canary_serves_its_share_of_users_and_each_user_keeps_a_version(
    client: httpx.Client, lifecycle: Deployed
) -> None:
    deploy(lifecycle, mf={"version": "1", "canary": {"version": "2", "percent": 20}})

    def canary_serving(status: dict[str, Any]) -> bool:
        return by_role(status).get("canary:2", {}).get("status") == "serving"

    for status in until_every_replica(client, "mf", canary_serving).values():
        versions = by_role(status)
        assert (versions["live:1"]["traffic_percent"], versions["canary:2"]["traffic_percent"]) == (
            80,
            20,
        )
    users = [f"canary-user-{n}" for n in range(2000)]
    first = _recommend_all(client, users)
    degraded = sum(v is None for v in first.values())
    assert degraded <= 0.05 * len(users), f"{degraded} answers without mf (degraded)"
    answered = {user: version for user, version in first.items() if version is not None}
    share = sum(v == "2" for v in answered.values()) / len(answered)
    assert 0.17 <= share <= 0.23, f"the canary served {share:.1%} of users"
    again = _recommend_all(client, users[:400] * 2)
    changed = [u for u in users[:400] if None not in (again[u], first[u]) and again[u] != first[u]]
    assert not changed, f"users changed version: {changed[:5]}"


def test_a_failing_canary_is_rolled_back_by_itself_and_no_request_fails(
    client: httpx.Client, lifecycle: Deployed
) -> None:
    rollback = {"window_s": 30, "min_calls": 10, "max_error_rate": 0.1}
    canary = {"version": "5", "percent": 50}  # passes its smoke test, then always raises
    deploy(lifecycle, mf={"version": "1", "canary": canary, "rollback": rollback})

    def canary_loaded(status: dict[str, Any]) -> bool:
        state = by_role(status).get("canary:5", {}).get("status")
        return state in ("serving", "rolled_back")

    until_every_replica(client, "mf", canary_loaded)
    started = time.monotonic()
    with lifecycle_load(client, [f"rollback{n}" for n in range(200)], rate=30) as load:

        def rolled_back(status: dict[str, Any]) -> bool:
            return by_role(status).get("canary:5", {}).get("status") == "rolled_back"

        statuses = until_every_replica(client, "mf", rolled_back, timeout_s=30)
        within_s = time.monotonic() - started
        time.sleep(2)
    assert within_s < 30, "rolled back within its window"
    assert load.statuses() == {200: len(load.samples)}
    # Every canary call failed and was answered again by the live version.
    assert _mf_versions(load.samples) == {"1"}
    for status in statuses.values():
        canary_state = by_role(status)["canary:5"]
        assert canary_state["traffic_percent"] == 0
        assert canary_state["reason"].startswith("error rate 100.0% > 10.0%")
        assert by_role(status)["live:1"]["traffic_percent"] == 100
        assert "canary 5 rolled back" in status["events"][-1]["message"]


def test_a_shadow_sees_live_calls_and_never_answers(
    client: httpx.Client, lifecycle: Deployed
) -> None:
    deploy(lifecycle, mf={"version": "1", "shadow": {"version": "2", "k": 10}})

    def mirrored(status: dict[str, Any]) -> bool:
        shadow = by_role(status).get("shadow:2", {})
        return shadow.get("window", {}).get("calls", 0) >= 5

    with lifecycle_load(client, [f"shadow{n}" for n in range(100)], rate=20) as load:
        statuses = until_every_replica(client, "mf", mirrored, timeout_s=60)
    assert load.statuses() == {200: len(load.samples)}
    assert _mf_versions(load.samples) == {"1"}
    for status in statuses.values():
        shadow = by_role(status)["shadow:2"]
        assert shadow["traffic_percent"] == 0 and shadow["window"]["errors"] == 0
        # Version 2 was trained with another seed: its top 10 overlaps version 1's, but
        # not wholly (a copy of version 1 would score 1.0).
        assert 0.0 < shadow["overlap_at_k"] < 1.0, shadow
    # A loaded version can still be asked for by name (Open Inference Protocol).
    body = {"inputs": [{"name": "user_id", "shape": [1], "datatype": "BYTES", "data": ["s1"]}]}
    infer = f"{LIFECYCLE_PREFIX}/v2/models/mf/versions/{{}}/infer"
    answer = client.post(infer.format("2"), json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == "2"
    missing = client.post(infer.format("9"), json=body)
    assert missing.status_code == 404 and "version '9' is not served" in missing.json()["error"]


def test_an_inline_model_version_swaps_in_the_ingress_under_load(
    client: httpx.Client, lifecycle: Deployed
) -> None:
    deploy(lifecycle, mf={"version": "1"}, popularity={"version": "1"})
    until_every_replica(client, "popularity", live_is("1"))
    with lifecycle_load(client, [f"inline{n}" for n in range(100)]) as load:
        time.sleep(3)
        deployed_at = deploy(lifecycle, popularity={"version": "2"})
        until_every_replica(client, "popularity", live_is("2"))
        time.sleep(2)
    assert load.statuses() == {200: len(load.samples)}
    versions = [
        (s.done, s.body["model_versions"]["popularity"])
        for s in sorted(load.samples, key=lambda s: s.done)
    ]
    assert versions[-1][1] == "2"
    assert max(t for t, v in versions if v == "1") - deployed_at <= 10
