"""Two nodes, one cluster: the GPU model's replicas on the GPU node, the rest on the head.

A CPU-only head node and a worker node declaring one GPU and a ``gpu_node`` custom
resource run on this machine as two raylets of one Ray cluster
(:meth:`LocalRay.add_worker`). The demo config is deployed with ``mf`` asking for
``num_gpus: 1`` and ``resources: {gpu_node: 1}``, so only the worker can host it.
There is no CUDA here: Ray books the declared GPU and torch runs on the CPU.

Serve spreads replicas over the nodes that fit them, so an ingress could land on
the worker too; this config keeps it next to HAProxy on the head with Ray's built-in
head-node resource (``node:__internal_head__``, as Ray Train pins its state actor).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from serving_cluster import ROOT, mf_in_its_own_replica

from deployments.local.cluster import LocalRay, WorkerNode, free_port, wait_ready

pytestmark = pytest.mark.integration

GPU_NODE_RESOURCE = "gpu_node"
HEAD_NODE_RESOURCE = "node:__internal_head__"


@dataclass
class TwoNodes:
    """The running two-node cluster, its worker node and the served URL."""

    cluster: LocalRay
    worker: WorkerNode
    url: str


def _two_node_config(port: int) -> dict[str, Any]:
    """``configs/default.yaml`` with mf on the GPU node and the ingress on the head."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    config["http_options"]["port"] = port
    app = config["applications"][0]
    mf_in_its_own_replica(app)
    mf = app["args"]["models"]["mf"]
    mf.update(num_cpus=0.25, num_gpus=1, resources={GPU_NODE_RESOURCE: 1})
    (ingress,) = (d for d in app["deployments"] if d["name"] == "Ingress")
    ingress["ray_actor_options"] = {"num_cpus": 0.25, "resources": {HEAD_NODE_RESOURCE: 0.001}}
    # The data services are CPU work too: on the head, where their files live.
    for service in ("events", "live_catalog"):
        app["args"][service] = {**app["args"][service], "resources": {HEAD_NODE_RESOURCE: 0.001}}
    return config


@pytest.fixture(scope="module")
def two_nodes(
    serve_home: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[TwoNodes]:
    """Head (1 CPU, no GPU) plus a GPU worker (1 CPU, 1 GPU), serving the demo config.

    Its home is a copy of the session's models and data: its catalogue, event log and
    online checkpoints are its own, never the session cluster's."""
    failed_before = request.session.testsfailed
    home = tmp_path_factory.mktemp("two-nodes-home")
    for part in ("artifacts", "data"):
        shutil.copytree(serve_home / part, home / part)
    cluster = LocalRay(home=home, num_cpus=1, num_gpus=0)
    cluster.start()
    temp_dirs = cluster.temp_dirs
    try:
        worker = cluster.add_worker(num_cpus=1, num_gpus=1, resources={GPU_NODE_RESOURCE: 1})
        temp_dirs = cluster.temp_dirs
        port = free_port()
        config_path = home / f"two-nodes-{port}.yaml"
        config_path.write_text(yaml.safe_dump(_two_node_config(port)))
        cluster.deploy(config_path)
        url = f"http://127.0.0.1:{port}"
        wait_ready(f"{url}/readyz", timeout_s=300)
        yield TwoNodes(cluster, worker, url)
    finally:
        cluster.stop()
        # Ray's logs are kept only when something failed.
        if request.session.testsfailed == failed_before:
            for temp_dir in temp_dirs:
                shutil.rmtree(temp_dir, ignore_errors=True)


def _replicas(actors: list[dict[str, Any]], deployment: str) -> list[dict[str, Any]]:
    """The live replica actors of ``deployment`` in the ``blendserve`` application."""
    return [a for a in actors if a.get("class_name") == f"ServeReplica:blendserve:{deployment}"]


def test_worker_node_joins_with_its_gpu_and_custom_resource(two_nodes: TwoNodes) -> None:
    nodes = {node["node_id"]: node for node in two_nodes.cluster.list_nodes()}
    assert len(nodes) == 2
    worker = nodes[two_nodes.worker.node_id]
    assert worker["is_head_node"] is False
    assert worker["resources_total"].get("GPU") == 1
    assert worker["resources_total"].get(GPU_NODE_RESOURCE) == 1
    (head,) = (n for n in nodes.values() if n["is_head_node"])
    assert "GPU" not in head["resources_total"]


def test_gpu_model_replicas_run_on_the_gpu_node_and_the_ingress_on_the_head(
    two_nodes: TwoNodes,
) -> None:
    cluster = two_nodes.cluster
    (head_id,) = (n["node_id"] for n in cluster.list_nodes() if n["is_head_node"])
    actors = cluster.list_actors()
    mf, ingress = _replicas(actors, "model-mf"), _replicas(actors, "Ingress")
    assert mf and ingress, sorted(a.get("class_name", "") for a in actors)
    assert {a["node_id"] for a in mf} == {two_nodes.worker.node_id}
    assert {a["node_id"] for a in ingress} == {head_id}
    on_worker = {a["class_name"] for a in actors if a["node_id"] == two_nodes.worker.node_id}
    assert on_worker == {"ServeReplica:blendserve:model-mf"}, "CPU work landed on the GPU node"


def test_recommend_blends_across_nodes_without_degrading(
    two_nodes: TwoNodes, known_user: str
) -> None:
    headers = two_nodes.cluster.auth_headers()
    with httpx.Client(base_url=two_nodes.url, timeout=30.0, headers=headers) as http:
        response = http.post("/v1/recommend/home", json={"user_id": known_user, "k": 10})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["degraded"] is False
        assert len(body["items"]) == 10
        assert "mf" in body["model_versions"]
        assert "cf" in {c["source"] for item in body["items"] for c in item["components"]}
        mf = http.get("/v1/models").json()["models"]["mf"]
        assert mf["placement"] == "replica", mf
