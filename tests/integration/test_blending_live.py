"""The blending DAG in the running service: every node kind, deadlines, experiments
that change live, interleaving teams and result ids."""

from __future__ import annotations

import copy
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from serving_cluster import (
    SLOW_BUDGET_MS,
    Deployed,
    alive_replicas,
    app_config,
    use_cases,
    whole_answer,
)

from blending.dag import BlendPlan
from blending.result_ids import ResultIdCodec
from blending.spec import ExperimentNodeSpec

pytestmark = pytest.mark.integration

_MARGIN_S = 0.25
"""What a request may take beyond its budget: HTTP, validation, blending, a busy 2-core box."""


def _discover(client: httpx.Client, user: str, prefix: str = "", k: int = 10) -> dict[str, Any]:
    response = client.post(f"{prefix}/v1/recommend/discover", json={"user_id": user, "k": k})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _arm_of(deployed: Deployed, user: str) -> str:
    """The arm the served config puts ``user`` in, computed here from the same rule."""
    node = use_cases(app_config(deployed.config, "blendserve"))["discover"]["nodes"]["ab"]
    return BlendPlan.arm_for("ab", ExperimentNodeSpec.model_validate(node), user)


def _users_by_arm(deployed: Deployed, n: int = 200) -> dict[str, list[str]]:
    users: dict[str, list[str]] = {}
    for i in range(n):
        user = f"u{i:04d}"
        users.setdefault(_arm_of(deployed, user), []).append(user)
    return users


def test_a_source_past_its_budget_does_not_delay_the_answer(client: httpx.Client) -> None:
    for _ in range(3):  # the sleepy replica is still busy with earlier calls: still on time
        started = time.monotonic()
        response = client.post("/flaky/v1/recommend/slow", json={"user_id": "u1", "k": 5})
        elapsed = time.monotonic() - started
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["degraded"] is True
        assert elapsed < SLOW_BUDGET_MS / 1000 + _MARGIN_S, f"took {elapsed:.3f}s"
        assert {c["source"] for i in body["items"] for c in i["components"]} == {"popular"}


def test_experiment_arms_are_sticky_and_follow_the_config(
    client: httpx.Client, deployed: Deployed
) -> None:
    by_arm = _users_by_arm(deployed)
    assert set(by_arm) == {"taste", "clicky", "interleaved"}
    for arm, users in by_arm.items():
        for user in users[:3]:
            first = whole_answer(client, "/v1/recommend/discover", {"user_id": user, "k": 10})
            assert first["variant"] == {"ab": arm}
            assert _discover(client, user)["variant"] == {"ab": arm}


def test_the_arm_is_in_the_replica_log(client: httpx.Client, deployed: Deployed) -> None:
    user = _users_by_arm(deployed)["interleaved"][0]
    request_id = _discover(client, user)["request_id"]
    logs = deployed.cluster.temp_dir / "session_latest" / "logs" / "serve"
    # The request's JSON line (deployments/serve/personal.py, log_request).
    wanted = (f'"request_id":"{request_id}"', '"variant":{"ab":"interleaved"}')

    def logged() -> bool:
        return any(
            all(part in line for part in wanted)
            for path in logs.glob("replica_blendserve_Ingress_*.log")
            for line in path.read_text(errors="replace").splitlines()
        )

    deadline = time.monotonic() + 10
    while not logged() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert logged(), f"no log line with {wanted!r}"


def test_each_arm_serves_its_blend_with_provenance(
    client: httpx.Client, deployed: Deployed
) -> None:
    by_arm = _users_by_arm(deployed)
    clicky = _discover(client, by_arm["clicky"][0])
    roles = {c.get("role") for item in clicky["items"] for c in item["components"]}
    assert {"stack", "rerank"} <= roles
    assert {"discover_stack", "click_model"} <= set(clicky["model_versions"])

    taste = _discover(client, by_arm["taste"][0])
    assert not {c.get("role") for i in taste["items"] for c in i["components"]} - {None}

    interleaved = _discover(client, by_arm["interleaved"][0])
    teams = Counter(item.get("team") for item in interleaved["items"] if not item["pinned"])
    assert set(teams) == {"taste", "clicky"}, teams
    assert abs(teams["taste"] - teams["clicky"]) <= 2  # diversify may move one or two


def test_staff_picks_take_their_share_and_say_they_are_curated(
    client: httpx.Client, known_user: str
) -> None:
    items = _discover(client, known_user, k=10)["items"]
    assert [item["pinned"] for item in items].count(True) == 1  # share 0.1 of 10
    assert items[0]["pinned"]
    assert any(c.get("curated") for c in items[0]["components"])


def test_diversify_caps_categories_in_the_top(client: httpx.Client, deployed: Deployed) -> None:
    items = pq.read_table(deployed.cluster.home / "data" / "items.parquet").to_pylist()
    category = {row["item_id"]: row["category"] for row in items}
    for user in list(_users_by_arm(deployed)["taste"])[:5]:
        served = _discover(client, user, k=10)["items"]
        unpinned = [category[i["item_id"]] for i in served if not i["pinned"]]
        assert max(Counter(unpinned).values()) <= 3, Counter(unpinned)


def test_fallback_serves_the_backup_when_a_branch_fails(
    client: httpx.Client, known_user: str
) -> None:
    body = _discover(client, known_user, prefix="/flaky")
    assert body["degraded"] is True
    sources = {c["source"] for item in body["items"] for c in item["components"]}
    assert sources <= {"popular", "picks"}
    assert len(body["items"]) == 10


def test_result_ids_recover_request_position_variant_team_and_versions(
    client: httpx.Client, deployed: Deployed
) -> None:
    codec = ResultIdCodec(deployed.cluster.result_key().encode())
    user = _users_by_arm(deployed)["interleaved"][0]
    body = _discover(client, user)
    for position, item in enumerate(body["items"], start=1):
        ref = codec.decode(item["result_id"])
        assert (ref.request_id, ref.use_case, ref.position) == (
            body["request_id"],
            "discover",
            position,
        )
        assert ref.item_id == item["item_id"] and ref.variant == {"ab": "interleaved"}
        assert ref.team == item.get("team")
        assert ref.model_versions == {c["model"]: c["version"] for c in item["components"]}
        assert abs(ref.served_at - time.time()) < 60


def _hammer(
    client: httpx.Client, users: list[str], stop: threading.Event, seen: list[tuple[int, str]]
) -> None:
    with httpx.Client(base_url=client.base_url, timeout=10.0, headers=client.headers) as http:
        n = 0
        while not stop.is_set():
            user = users[n % len(users)]
            n += 1
            try:
                response = http.post("/v1/recommend/discover", json={"user_id": user, "k": 5})
                arm = (
                    response.json().get("variant", {}).get("ab", "")
                    if response.is_success
                    else response.text[:200]
                )
                seen.append((response.status_code, arm))
            except httpx.HTTPError as exc:
                seen.append((0, type(exc).__name__))


def _ingress_replicas(deployed: Deployed) -> set[str]:
    """The ids of the running ingress replicas of the main application."""
    return {a["actor_id"] for a in alive_replicas(deployed, "Ingress")}


@pytest.fixture
def restored_split(client: httpx.Client, deployed: Deployed) -> Iterator[None]:
    """Put the served config back after a test that changes it, and wait until every
    ingress replica serves it again (other tests rely on the demo's split)."""
    original = copy.deepcopy(deployed.config)
    yield
    deployed.redeploy(original)
    users = _users_by_arm(deployed)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        sample = [u for arm in ("taste", "clicky", "interleaved") for u in users[arm][:4]]
        if all(_discover(client, u)["variant"]["ab"] == _arm_of(deployed, u) for u in sample):
            return
        time.sleep(0.5)
    pytest.fail("the original experiment split did not come back")


@pytest.mark.usefixtures("restored_split")
def test_an_experiment_split_changes_live_without_a_failed_request(
    client: httpx.Client, deployed: Deployed
) -> None:
    users = [f"live{i}" for i in range(40)]
    replicas_before = _ingress_replicas(deployed)
    assert replicas_before
    seen: list[tuple[int, str]] = []
    stop = threading.Event()
    worker = threading.Thread(target=_hammer, args=(client, users, stop, seen))
    worker.start()
    try:
        time.sleep(1.0)
        changed = copy.deepcopy(deployed.config)
        arms = use_cases(app_config(changed, "blendserve"))["discover"]["nodes"]["ab"]["arms"]
        arms["taste"]["weight"], arms["clicky"]["weight"], arms["interleaved"]["weight"] = 0, 1, 0
        deployed.redeploy(changed)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            marker = len(seen)
            time.sleep(0.5)
            recent = seen[marker:]
            if recent and all(arm == "clicky" for _, arm in recent):
                break
        else:
            pytest.fail("the new split never took effect")
        time.sleep(0.5)
    finally:
        stop.set()
        worker.join(timeout=30)
    statuses = Counter(status for status, _ in seen)
    assert set(statuses) == {200}, (statuses, {arm for status, arm in seen if status != 200})
    assert len(seen) > 20
    assert _ingress_replicas(deployed) == replicas_before  # reconfigured, not restarted
    assert {_discover(client, u)["variant"]["ab"] for u in users[:10]} == {"clicky"}
