"""Model lifecycle against a real local Ray Serve: live version swaps through
``serve deploy``, versions that must not take traffic, canaries, shadows, automatic
rollback and code updates, each under constant load.

They change the ``lifecycle`` app only (``serving_cluster._lifecycle``): mf, a
TorchScript model in two replicas of its own deployment, and popularity, inline in
two ingress replicas, both with their versions in ``user_config``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from load import ConstantLoad, Sample
from serving_cluster import LIFECYCLE_PREFIX, Deployed, app_config, deployment

from models.registry import load_model
from models.store import ArtifactStore

pytestmark = pytest.mark.integration

RATE = 40
"""Requests per second of the constant load (the issue asks for at least 30)."""


@pytest.fixture(scope="module")
def lifecycle(deployed: Deployed) -> Iterator[Deployed]:
    """The cluster; the lifecycle app's first config is restored afterwards."""
    original = copy.deepcopy(deployed.config)
    yield deployed
    deployed.redeploy(original)


def _deploy(
    deployed: Deployed,
    mf: dict[str, Any] | None = None,
    popularity: dict[str, Any] | None = None,
    build: str | None = None,
) -> float:
    """Edit the lifecycle app's config as a data scientist would, `serve deploy` it, and
    return when the command returned."""
    config = copy.deepcopy(deployed.config)
    app = app_config(config, "lifecycle")
    if mf is not None:
        deployment(app, "model-mf")["user_config"] = mf
    if popularity is not None:
        deployment(app)["user_config"]["models"]["popularity"] = popularity
    if build is not None:
        app["runtime_env"]["env_vars"]["BLENDSERVE_BUILD"] = build
    deployed.redeploy(config)
    return time.monotonic()


def _status(client: httpx.Client) -> dict[str, Any]:
    response = client.get(f"{LIFECYCLE_PREFIX}/v1/models")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _versions(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{v['role']}:{v['version']}": v for v in model.get("versions", [])}


def _until_every_replica(
    client: httpx.Client,
    model: str,
    done: Callable[[dict[str, Any]], bool],
    replicas: int = 2,
    timeout_s: float = 90,
) -> dict[str, dict[str, Any]]:
    """Poll ``/v1/models`` until each of ``replicas`` replicas hosting ``model`` (its own
    deployment's, or the ingress's for an inline model) reports a status ``done`` holds
    for; return the last status of each."""
    latest: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = _status(client)
        status = body["models"][model]
        latest[status.get("replica", body["replica"])] = status
        if len(latest) >= replicas and all(done(s) for s in latest.values()):
            return latest
        time.sleep(0.2)
    pytest.fail(f"{model}: not every replica got there in {timeout_s} s: {latest}")


def _live_is(version: str) -> Callable[[dict[str, Any]], bool]:
    return lambda status: (
        status.get("version") == version
        and not any(v["status"] == "loading" for v in status["versions"])
    )


def _load(
    client: httpx.Client, users: list[str], rate: float = RATE, timeout_s: float = 10.0
) -> ConstantLoad:
    return ConstantLoad(
        f"{client.base_url}{LIFECYCLE_PREFIX}/v1/recommend/home",
        client.headers,
        rate,
        lambda n: {"user_id": users[n % len(users)], "k": 10},
        timeout_s=timeout_s,
    )


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
    _deploy(lifecycle, mf={"version": "1"})
    _until_every_replica(client, "mf", _live_is("1"))
    assert _served_top_items(client, probes) == ("1", version_1)
    with _load(client, users) as load:
        time.sleep(5)
        # Serve may swap before `serve deploy` returns: only answers finished before
        # the command started must all be version 1.
        deploying_at = time.monotonic()
        deployed_at = _deploy(lifecycle, mf={"version": "2"})
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
    statuses = _until_every_replica(client, "mf", _live_is("2"))
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
    _deploy(lifecycle, mf={"version": "2"})
    _until_every_replica(client, "mf", _live_is("2"))
    with _load(client, [f"bad{n}" for n in range(50)], rate=20) as load:
        _deploy(lifecycle, mf={"version": version})

        def refused(status: dict[str, Any]) -> bool:
            return _versions(status).get(f"live:{version}", {}).get("status") == "failed"

        statuses = _until_every_replica(client, "mf", refused)
        time.sleep(1)
    assert load.statuses() == {200: len(load.samples)}
    assert _mf_versions(load.samples) == {"2"}
    for status in statuses.values():
        versions = _versions(status)
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
    _deploy(lifecycle, mf={"version": "1", "canary": {"version": "2", "percent": 20}})

    def canary_serving(status: dict[str, Any]) -> bool:
        return _versions(status).get("canary:2", {}).get("status") == "serving"

    for status in _until_every_replica(client, "mf", canary_serving).values():
        versions = _versions(status)
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
    _deploy(lifecycle, mf={"version": "1", "canary": canary, "rollback": rollback})

    def canary_loaded(status: dict[str, Any]) -> bool:
        state = _versions(status).get("canary:5", {}).get("status")
        return state in ("serving", "rolled_back")

    _until_every_replica(client, "mf", canary_loaded)
    started = time.monotonic()
    with _load(client, [f"rollback{n}" for n in range(200)], rate=30) as load:

        def rolled_back(status: dict[str, Any]) -> bool:
            return _versions(status).get("canary:5", {}).get("status") == "rolled_back"

        statuses = _until_every_replica(client, "mf", rolled_back, timeout_s=30)
        within_s = time.monotonic() - started
        time.sleep(2)
    assert within_s < 30, "rolled back within its window"
    assert load.statuses() == {200: len(load.samples)}
    # Every canary call failed and was answered again by the live version.
    assert _mf_versions(load.samples) == {"1"}
    for status in statuses.values():
        canary_state = _versions(status)["canary:5"]
        assert canary_state["traffic_percent"] == 0
        assert canary_state["reason"].startswith("error rate 100.0% > 10.0%")
        assert _versions(status)["live:1"]["traffic_percent"] == 100
        assert "canary 5 rolled back" in status["events"][-1]["message"]


def test_a_shadow_sees_live_calls_and_never_answers(
    client: httpx.Client, lifecycle: Deployed
) -> None:
    _deploy(lifecycle, mf={"version": "1", "shadow": {"version": "2", "k": 10}})

    def mirrored(status: dict[str, Any]) -> bool:
        shadow = _versions(status).get("shadow:2", {})
        return shadow.get("window", {}).get("calls", 0) >= 5

    with _load(client, [f"shadow{n}" for n in range(100)], rate=20) as load:
        statuses = _until_every_replica(client, "mf", mirrored, timeout_s=60)
    assert load.statuses() == {200: len(load.samples)}
    assert _mf_versions(load.samples) == {"1"}
    for status in statuses.values():
        shadow = _versions(status)["shadow:2"]
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
    _deploy(lifecycle, mf={"version": "1"}, popularity={"version": "1"})
    _until_every_replica(client, "popularity", _live_is("1"))
    with _load(client, [f"inline{n}" for n in range(100)]) as load:
        time.sleep(3)
        deployed_at = _deploy(lifecycle, popularity={"version": "2"})
        _until_every_replica(client, "popularity", _live_is("2"))
        time.sleep(2)
    assert load.statuses() == {200: len(load.samples)}
    versions = [
        (s.done, s.body["model_versions"]["popularity"])
        for s in sorted(load.samples, key=lambda s: s.done)
    ]
    assert versions[-1][1] == "2"
    assert max(t for t, v in versions if v == "1") - deployed_at <= 10


def _replica_ids(client: httpx.Client, model: str) -> set[str]:
    return set(_until_every_replica(client, model, lambda status: True, timeout_s=60))


def test_a_code_update_restarts_every_replica_without_a_failed_request(
    client: httpx.Client, lifecycle: Deployed
) -> None:
    _deploy(lifecycle, mf={"version": "1"}, popularity={"version": "1"})
    before = _replica_ids(client, "mf")
    # Every replica restarts at once (ten Python processes importing torch on two
    # cores): a slow machine may take many seconds to answer, which a client with a
    # short timeout would count as failed; Serve failing a request is what this checks.
    users = [f"code{n}" for n in range(100)]
    with _load(client, users, rate=20, timeout_s=60) as load:
        time.sleep(2)
        _deploy(lifecycle, build="2")  # a new runtime_env: Serve replaces every replica
        lifecycle.cluster.wait_running(["lifecycle"], timeout_s=180)
        deadline = time.monotonic() + 120
        while _replica_ids(client, "mf") & before and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(2)
    assert not _replica_ids(client, "mf") & before, "every mf replica was replaced"
    assert load.statuses() == {200: len(load.samples)}, [
        s for s in load.samples if s.status != 200
    ][:3]
    degraded = sum(bool(s.body.get("degraded")) for s in load.samples) / len(load.samples)
    print(f"code update: {len(load.samples)} requests, {degraded:.1%} degraded")
    # Measured here: 0.4%. Surge replicas take over before the old ones stop.
    assert degraded <= 0.05, f"{degraded:.1%} of answers degraded during the code update"


@pytest.mark.slow
@pytest.mark.parametrize("surge", [0, 100], ids=["stop-then-start", "max-surge-100"])
def test_with_one_replica_a_code_update_holds_requests_then_recovers(
    client: httpx.Client, lifecycle: Deployed, surge: int
) -> None:
    """Measures what README 'Code updates' documents (opt in: ``-m slow``)."""
    config = copy.deepcopy(lifecycle.config)
    app = app_config(config, "lifecycle")
    app["args"]["models"]["mf"]["num_replicas"] = 1
    for name in ("Ingress", "model-mf"):
        deployment(app, name)["max_surge_percent"] = surge
    deployment(app)["num_replicas"] = 1
    deployment(app, "model-mf")["user_config"] = {"version": "1"}
    lifecycle.redeploy(config)
    before = set(_until_every_replica(client, "mf", _live_is("1"), replicas=1))
    with _load(client, [f"gap{n}" for n in range(100)], rate=30) as load:
        time.sleep(3)
        started = time.monotonic()
        _deploy(lifecycle, build=f"one-replica-{surge}")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = set(_until_every_replica(client, "mf", lambda s: True, replicas=1))
            if not now & before:
                break
            time.sleep(1)
        time.sleep(3)
    assert not now & before, "the mf replica was replaced"
    window = [s for s in load.samples if s.sent >= started]
    failed = [s for s in window if s.status != 200]
    degraded = [s for s in window if s.body.get("degraded")]
    slowest = max(s.done - s.sent for s in window)
    assert window[-1].status == 200, "the service recovered by itself"
    print(
        f"one replica, max_surge_percent {surge}, code update: {len(failed)} failed "
        f"({sorted({s.status for s in failed})}), {len(degraded)} degraded of {len(window)} "
        f"requests; slowest answer {slowest:.2f} s"
    )
