"""Autoscaling: a model's replicas follow the load up to ``max_replicas`` and back down.

Serve adds a replica when the calls in flight per replica stay above
``target_ongoing_requests`` (1 here). With the demo's own ``mf``, whether 16 clients
get there depends on the machine: on a 2-core machine it did scale to 2 (about 330
requests/s), but an ``mf`` call is a small share of a request, so the calls in flight
sit near the target and a slower or busier machine may not cross it. This test's
``mf`` is therefore slow on purpose, so the load is unambiguous: a ``python``-format
recommender that sleeps 50 ms per call (``SleepyRecommender`` in
``tests/support_models.py``) with batches of one, i.e. a replica that serves 20 calls
a second, as a heavy model would; 16 clients keep about 16 calls in flight. It runs
on a small cluster of its own, with ``tests/`` on the replicas' ``PYTHONPATH``.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import yaml
from builders import publish_sleepy_model
from serving_cluster import ROOT

from deployments.config import load_serve_config
from deployments.local.cluster import LocalRay, free_port, wait_ready
from models.store import ArtifactStore

pytestmark = pytest.mark.integration

CALL_S = 0.05
"""How long one call to this test's ``mf`` takes."""
CLIENTS = 16
UP_WITHIN_S = 60.0
DOWN_WITHIN_S = 120.0
MF_REPLICA = "ServeReplica:blendserve:model-mf"


def _scaling_config(port: int) -> dict[str, Any]:
    """One application: ``home`` answers from the slow ``mf`` alone, which autoscales 1..2."""
    mf = {
        "version": "1",
        "placement": "replica",
        "num_cpus": 0.25,
        "max_batch_size": 1,
        "timeout_s": 10.0,
        "autoscaling": {
            "min_replicas": 1,
            "max_replicas": 2,
            "target_ongoing_requests": 1,
            "upscale_delay_s": 1,
            "downscale_delay_s": 5,
        },
    }
    home = {
        "budget_ms": 10_000,
        "output": "final",
        "nodes": {
            "cf": {"kind": "source", "model": "mf", "candidates": 20},
            "final": {"kind": "filter", "input": "cf"},
        },
    }
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": "127.0.0.1", "port": port},
        "applications": [
            {
                "name": "blendserve",
                "route_prefix": "/",
                "import_path": "deployments.app:build_app",
                "args": {"store": "artifacts", "models": {"mf": mf}},
                "deployments": [
                    {
                        "name": "Ingress",
                        "num_replicas": 1,
                        "ray_actor_options": {"num_cpus": 0.25},
                        "user_config": {"use_cases": {"home": home}},
                    }
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def scaling_cluster(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[LocalRay, str]]:
    """A one-node cluster (1 CPU) serving the slow ``mf`` with autoscaling."""
    home = tmp_path_factory.mktemp("scaling-home")
    items = [f"a{i:03d}" for i in range(20)]
    publish_sleepy_model(ArtifactStore(home / "artifacts"), "mf", CALL_S, items)
    port = free_port()
    config_path = home / "serve.yaml"
    config_path.write_text(yaml.safe_dump(_scaling_config(port)))
    load_serve_config(config_path)  # a config error fails here, not as a timeout
    failed_before = request.session.testsfailed
    cluster = LocalRay(home=home, num_cpus=1, extra_env={"PYTHONPATH": str(ROOT / "tests")})
    cluster.start()
    try:
        cluster.deploy(config_path)
        url = f"http://127.0.0.1:{port}"
        wait_ready(f"{url}/readyz", timeout_s=300)
        yield cluster, url
    finally:
        cluster.stop()
        if request.session.testsfailed == failed_before:
            shutil.rmtree(cluster.temp_dir, ignore_errors=True)


@dataclass
class _Load:
    """``CLIENTS`` threads posting ``/v1/recommend/home`` back to back until stopped."""

    url: str
    headers: dict[str, str]
    stop: threading.Event = field(default_factory=threading.Event)
    answers: list[tuple[int, bool]] = field(default_factory=list)
    """(status, degraded) per response; status 0 for a transport error."""
    threads: list[threading.Thread] = field(default_factory=list)

    def _client(self, index: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30.0, headers=self.headers) as http:
            while not self.stop.is_set():
                try:
                    response = http.post("/v1/recommend/home", json={"user_id": f"u{index}"})
                    degraded = response.is_success and response.json()["degraded"]
                    self.answers.append((response.status_code, degraded))
                except httpx.HTTPError:
                    self.answers.append((0, True))

    def __enter__(self) -> _Load:
        self.threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(CLIENTS)
        ]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def _wait_for(condition: Callable[[], bool], timeout_s: float, interval_s: float = 1.0) -> float:
    """Seconds until ``condition()`` held; ``TimeoutError`` past ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(interval_s)
    raise TimeoutError(f"not within {timeout_s}s")


def test_replicas_scale_up_under_load_and_back_down_when_idle(
    scaling_cluster: tuple[LocalRay, str],
) -> None:
    cluster, url = scaling_cluster
    seen: list[int] = []

    def replicas_are(n: int) -> bool:
        seen.append(sum(a.get("class_name") == MF_REPLICA for a in cluster.list_actors()))
        return seen[-1] == n

    assert replicas_are(1), "an idle deployment starts at min_replicas"
    with _Load(url, cluster.auth_headers()) as load:
        try:
            up_s = _wait_for(lambda: replicas_are(2), UP_WITHIN_S)
        except TimeoutError:
            pytest.fail(f"mf never reached 2 replicas under {CLIENTS} clients: {seen}")
    statuses = Counter(status for status, _ in load.answers)
    assert set(statuses) == {200}, statuses
    assert not any(degraded for _, degraded in load.answers)
    try:
        down_s = _wait_for(lambda: replicas_are(1), DOWN_WITHIN_S)
    except TimeoutError:
        pytest.fail(f"mf stayed above min_replicas for {DOWN_WITHIN_S}s without load: {seen}")
    assert max(seen) == 2, f"more than max_replicas: {seen}"
    print(f"1 -> 2 replicas in {up_s:.0f}s of load, 2 -> 1 in {down_s:.0f}s after it stopped")
