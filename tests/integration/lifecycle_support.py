"""What the lifecycle tests share (``test_lifecycle.py``, ``test_code_updates.py``): edit
and `serve deploy` the ``lifecycle`` app's config, poll its replicas' model status, and
put it under constant load. The ``lifecycle`` fixture is in ``conftest.py``."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from load import ConstantLoad
from serving_cluster import LIFECYCLE_PREFIX, Deployed, app_config, deployment

RATE = 40
"""Requests per second of the constant load (the issue asks for at least 30)."""


def deploy(
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


def models_status(client: httpx.Client) -> dict[str, Any]:
    response = client.get(f"{LIFECYCLE_PREFIX}/v1/models")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_role(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{v['role']}:{v['version']}": v for v in model.get("versions", [])}


def until_every_replica(
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
        body = models_status(client)
        status = body["models"][model]
        latest[status.get("replica", body["replica"])] = status
        if len(latest) >= replicas and all(done(s) for s in latest.values()):
            return latest
        time.sleep(0.2)
    pytest.fail(f"{model}: not every replica got there in {timeout_s} s: {latest}")


def live_is(version: str) -> Callable[[dict[str, Any]], bool]:
    return lambda status: (
        status.get("version") == version
        and not any(v["status"] == "loading" for v in status["versions"])
    )


def lifecycle_load(
    client: httpx.Client, users: list[str], rate: float = RATE, timeout_s: float = 10.0
) -> ConstantLoad:
    return ConstantLoad(
        f"{client.base_url}{LIFECYCLE_PREFIX}/v1/recommend/home",
        client.headers,
        rate,
        lambda n: {"user_id": users[n % len(users)], "k": 10},
        timeout_s=timeout_s,
    )


def replica_ids(client: httpx.Client, model: str) -> set[str]:
    return set(until_every_replica(client, model, lambda status: True, timeout_s=60))
