"""Code updates of the ``lifecycle`` app against a real local Ray Serve: a new
``runtime_env`` makes Serve replace every replica, under constant load."""

from __future__ import annotations

import copy
import time

import httpx
import pytest
from lifecycle_support import deploy, lifecycle_load, live_is, replica_ids, until_every_replica
from serving_cluster import Deployed, app_config, deployment

pytestmark = pytest.mark.integration


def test_a_code_update_restarts_every_replica_without_a_failed_request(
    client: httpx.Client, lifecycle: Deployed
) -> None:
    deploy(lifecycle, mf={"version": "1"}, popularity={"version": "1"})
    before = replica_ids(client, "mf")
    # Every replica restarts at once (ten Python processes importing torch on two
    # cores): a slow machine may take many seconds to answer, which a client with a
    # short timeout would count as failed; Serve failing a request is what this checks.
    users = [f"code{n}" for n in range(100)]
    with lifecycle_load(client, users, rate=20, timeout_s=60) as load:
        time.sleep(2)
        deploy(lifecycle, build="2")  # a new runtime_env: Serve replaces every replica
        lifecycle.cluster.wait_running(["lifecycle"], timeout_s=180)
        deadline = time.monotonic() + 120
        while replica_ids(client, "mf") & before and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(2)
    assert not replica_ids(client, "mf") & before, "every mf replica was replaced"
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
    before = set(until_every_replica(client, "mf", live_is("1"), replicas=1))
    with lifecycle_load(client, [f"gap{n}" for n in range(100)], rate=30) as load:
        time.sleep(3)
        started = time.monotonic()
        deploy(lifecycle, build=f"one-replica-{surge}")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = set(until_every_replica(client, "mf", lambda s: True, replicas=1))
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
