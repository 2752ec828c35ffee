"""The KubeRay manifest: a valid blendserve config, and a worker group for every model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployments.config import AppConfig, ModelConfig, load_serve_config

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "configs" / "kuberay" / "rayservice.yaml"
SERVE_ENV = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_metrics_report_interval_ms": "5000",
    "RAY_worker_niceness": "0",
}


def _documents() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc]


def _rayservice() -> dict[str, Any]:
    (service,) = (doc for doc in _documents() if doc["kind"] == "RayService")
    return service


def _app(tmp_path: Path) -> AppConfig:
    """``serveConfigV2`` written out and read by the loader ``serve deploy`` configs get."""
    path = tmp_path / "serve.yaml"
    path.write_text(_rayservice()["spec"]["serveConfigV2"])
    (app,) = load_serve_config(path).values()
    return app


def _groups() -> list[dict[str, Any]]:
    cluster = _rayservice()["spec"]["rayClusterConfig"]
    return [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]


def _containers(group: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = group["template"]["spec"]["containers"]
    return containers


def _offered(group: dict[str, Any]) -> dict[str, float]:
    """What one pod of ``group`` offers Ray: GPUs and custom resources."""
    params = group.get("rayStartParams") or {}
    offered: dict[str, float] = {}
    limits = _containers(group)[0].get("resources", {}).get("limits", {})
    gpus = params.get("num-gpus", limits.get("nvidia.com/gpu", 0))
    if float(gpus):
        offered["GPU"] = float(gpus)
    if "resources" in params:
        custom = json.loads(params["resources"])
        # KubeRay's documented form is a JSON string inside a string: '"{\"x\": 1}"'.
        custom = json.loads(custom) if isinstance(custom, str) else custom
        offered.update({name: float(amount) for name, amount in custom.items()})
    return offered


def _needs(spec: ModelConfig) -> dict[str, float]:
    """What one replica of a model asks Ray for beyond CPUs."""
    needs = {"GPU": spec.num_gpus} if spec.num_gpus else {}
    return {**needs, **spec.resources}


def test_manifest_is_a_ray_io_v1_rayservice_with_cpu_and_gpu_groups() -> None:
    service = _rayservice()
    assert service["apiVersion"] == "ray.io/v1"
    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == "2.60.0"
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    assert "GPU" not in _offered(groups["cpu"])
    gpu_limits = _containers(groups["gpu"])[0]["resources"]["limits"]
    assert gpu_limits["nvidia.com/gpu"] == "1"
    for group in groups.values():
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_serve_config_v2_is_a_valid_blendserve_config(tmp_path: Path) -> None:
    app = _app(tmp_path)
    assert app.args.models["mf"].placement == "replica"


def test_serve_config_v2_serves_the_default_config(tmp_path: Path) -> None:
    (default,) = load_serve_config(ROOT / "configs" / "default.yaml").values()
    app = _app(tmp_path)
    assert app.live.use_cases == default.live.use_cases, "use cases drifted from the default"
    # On the cluster mf has a GPU replica, on the CPU-only demo it runs inline: the
    # versions are the same, in the deployment's user_config or the Ingress's.
    assert app.args.models["mf"].placement == "replica"
    assert app.rollouts == default.rollouts, "model versions drifted from configs/default.yaml"


def _hosts(spec: ModelConfig) -> list[dict[str, Any]]:
    """The groups whose pods offer every GPU and custom resource a replica needs."""
    needs = _needs(spec)
    return [
        g
        for g in _groups()
        if all(_offered(g).get(resource, 0) >= amount for resource, amount in needs.items())
    ]


def test_mf_fits_only_the_gpu_group(tmp_path: Path) -> None:
    mf = _app(tmp_path).args.models["mf"]
    assert mf.num_gpus >= 1
    assert [g.get("groupName") for g in _hosts(mf)] == ["gpu"]


def test_every_gpu_or_custom_resource_a_model_asks_for_is_offered_by_a_group(
    tmp_path: Path,
) -> None:
    for name, spec in _app(tmp_path).args.models.items():
        if not _needs(spec):
            continue
        hosts = _hosts(spec)
        assert hosts, f"model {name!r} asks for {_needs(spec)}; no group offers it"
        # Autoscaling may ask for max_replicas of them at once.
        replicas = spec.autoscaling.max_replicas if spec.autoscaling else spec.num_replicas
        room = sum(g.get("maxReplicas", 1) for g in hosts)
        assert room >= replicas, f"model {name!r}: {replicas} replicas, room for {room} pods"


@pytest.mark.parametrize("group", _groups(), ids=lambda g: g.get("groupName", "head"))
def test_every_ray_pod_gets_serve_env_result_key_and_store(group: dict[str, Any]) -> None:
    (container,) = _containers(group)
    env = {e["name"]: e for e in container["env"]}
    for name, value in SERVE_ENV.items():
        assert env[name]["value"] == value, name
    secret = env["BLENDSERVE_RESULT_KEY"]["valueFrom"]["secretKeyRef"]
    assert secret["name"] and secret["key"]
    assert "value" not in env["BLENDSERVE_RESULT_KEY"], "the key belongs in a Secret"
    home = env["BLENDSERVE_HOME"]["value"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert home in mounts and mounts[home]["readOnly"] is True
    volumes = {v["name"]: v for v in group["template"]["spec"]["volumes"]}
    claim = volumes[mounts[home]["name"]]["persistentVolumeClaim"]["claimName"]
    claims = {d["metadata"]["name"] for d in _documents() if d["kind"] == "PersistentVolumeClaim"}
    assert claim in claims


def test_store_and_catalog_live_on_the_mounted_volume(tmp_path: Path) -> None:
    args = _app(tmp_path).args
    (head,) = _containers(_rayservice()["spec"]["rayClusterConfig"]["headGroupSpec"])
    home = next(e["value"] for e in head["env"] if e["name"] == "BLENDSERVE_HOME")
    assert args.store.startswith(home + "/")
    assert args.catalog is not None and args.catalog.startswith(home + "/")
