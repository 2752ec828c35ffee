"""The integration cluster as tests use it: the running cluster, reading and changing
its config, the names of its apps, use cases and keys, and the batch-scoring step
of its setup. The config itself is built by ``cluster_config``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from builders import api_keys_document

from deployments.config import move_model
from deployments.local.cluster import LocalRay

ROOT = Path(__file__).resolve().parents[2]
SLEEPY_DELAY_S = 2.0
"""How long the ``flaky`` app's ``sleepy`` model takes: far past its use case's budget."""
SLOW_BUDGET_MS = 300
ALLOWED_ORIGIN = "http://127.0.0.1:5173"
"""The one browser origin the main app's CORS config allows."""
FLAKY_MAX_ONGOING = 4
"""Requests one ``flaky`` ingress replica works on at once; as many more may wait."""

INFER_ONLY_KEY = "test-infer-only-key-0123456789"
ADMIN_ONLY_KEY = "test-admin-only-key-0123456789"
LIMITED_KEY = "test-limited-key-0123456789ab"
LIMITED_BURST = 5
TEST_KEYS = api_keys_document(INFER_ONLY_KEY, ADMIN_ONLY_KEY, LIMITED_KEY, 0.2, LIMITED_BURST)
"""Keys besides the development key (``$BLENDSERVE_API_KEYS``, in every replica)."""


@dataclass
class Deployed:
    """The running cluster, its base URL and the config it serves."""

    url: str
    cluster: LocalRay
    config: dict[str, Any]
    config_path: Path

    def redeploy(self, config: dict[str, Any]) -> None:
        """Write ``config`` and ``serve deploy`` it, as a data scientist would."""
        self.config_path.write_text(yaml.safe_dump(config))
        self.cluster.deploy(self.config_path)
        self.config = config


def alive_replicas(
    deployed: Deployed, deployment: str, app: str = "blendserve"
) -> list[dict[str, Any]]:
    """Ray's records of the live replica actors of ``app``'s ``deployment``."""
    name = f"ServeReplica:{app}:{deployment}"
    return [
        actor
        for actor in deployed.cluster.list_actors()
        if actor.get("state") == "ALIVE" and actor.get("class_name") == name
    ]


def until(check: Callable[[], Any], timeout_s: float = 60.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something true (then return it); an HTTP error,
    a failed assertion or a missing key counts as not yet."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, AssertionError, KeyError) as exc:
            last = exc
        time.sleep(0.25)
    pytest.fail(f"not within {timeout_s} s: {what} (last: {last})")


def whole_answer(
    client: httpx.Client, path: str, body: dict[str, Any], timeout_s: float = 30.0
) -> dict[str, Any]:
    """The first answer to ``POST path`` that is not degraded.

    On a starved machine a model may miss its latency budget for a while, and the
    answer is then rightly degraded (other tests cover that); tests about a whole
    answer's contents wait for one instead of failing on the machine's speed.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.post(path, json=body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        if not answer["degraded"]:
            return answer
        assert time.monotonic() < deadline, f"every answer degraded for {timeout_s} s: {answer}"
        time.sleep(0.5)


def app_config(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The application ``name`` of a Serve config."""
    return next(a for a in config["applications"] if a["name"] == name)


def deployment(app: dict[str, Any], name: str = "Ingress") -> dict[str, Any]:
    """The deployment ``name`` of an application's config."""
    found: dict[str, Any] = next(d for d in app["deployments"] if d["name"] == name)
    return found


def use_cases(app: dict[str, Any]) -> dict[str, Any]:
    """An application's use cases (the Ingress's user_config)."""
    cases: dict[str, Any] = deployment(app)["user_config"]["use_cases"]
    return cases


def only_ingress(app: dict[str, Any]) -> None:
    """Drop the model deployments' entries of an app copied from the main one."""
    app["deployments"] = [d for d in app["deployments"] if d["name"] == "Ingress"]


def mf_in_its_own_replica(app: dict[str, Any]) -> None:
    """The demo's ``mf`` moved to its own replica, as on a GPU machine: most tests are
    about model replicas (batching, coalescing, pools, swaps, crashes)."""
    move_model(app, "mf", "replica")
    app["args"]["models"]["mf"].update(
        num_cpus=0.5, num_gpus=0, max_batch_size=16, batch_wait_timeout_s=0.0, timeout_s=1.0
    )
    deployment(app, "model-mf")["max_surge_percent"] = 100


FLAKY_MAX_K = 300
"""The ``flaky`` app's ``max_k``: longer lists than the default limit of 100."""

PRECOMPUTED_MODEL = "mf_precomputed"
"""mf's top 50 for every user it knows, published by `blendserve batch-score`."""

PRECOMPUTED_USE_CASE = "later"
"""A use case of the main app served from the precomputed lists, mf for new users."""

SHOP_USE_CASE = "shop"
"""A use case of the main app with a standing rule (out-of-stock items never shown)
and seen items (clicked ones hidden, those shown twice without a click demoted)."""

SHOP_ATTRIBUTES = {"price": "number", "in_stock": "boolean", "brand": "text"}
"""The main app's declared catalogue attributes."""

SHARED_PREFIX = "/shared"
"""Where the ``shared`` app answers: its state is off the node."""

LIFECYCLE_PREFIX = "/lifecycle"
"""Where the ``lifecycle`` app (model version swaps, canaries, code updates) answers."""

TRIAL_USE_CASE = "trial"
"""A copy of ``discover`` in the main app that only the evaluation tests send to."""

EXPLORE_USE_CASE = "home_explore"
"""A copy of ``home`` in the main app that explores (``explore``: a random order of its
top k and 10 below in 30% of requests), for the counterfactual tests."""

EXPLORE = {"epsilon": 0.3, "pool": 10}


def batch_score_mf(home: Path) -> None:
    """`blendserve batch-score` mf version 1 into ``home``'s store, as a user runs it:
    a process of its own that starts a local Ray and runs Ray Data on it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    command = [sys.executable, "-m", "deployments.cli.main", "batch-score", "--model", "mf"]
    options = ["--version", "1", "--top", "50", "--name", PRECOMPUTED_MODEL]
    local = ["--num-cpus", "1", "--actor-cpus", "0.5", "--batch-size", "100"]
    done = subprocess.run(
        [*command, *options, *local, "--store", str(home / "artifacts")],
        env={**env, "BLENDSERVE_HOME": str(home), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
