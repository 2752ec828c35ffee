"""The chaos suite's cluster: the default config on two nodes of this machine (a head
and a worker, each a ``ray start``), ``mf`` in its own replica as on a GPU machine, GCS
fault tolerance on a Redis server started here, and the front door of
``blendserve up``. Opt in with ``make chaos`` (``pytest -m chaos tests/chaos``)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from faults import ChaosCluster
from serving_cluster import ROOT, deployment, mf_in_its_own_replica

from deployments.config import load_serve_config
from deployments.local.cluster import LocalRay, free_port, wait_ready
from deployments.offline.training import train_stack
from models.demo.synthetic import generate_news_dataset
from models.demo.train import save_demo_data, train_demo_models
from models.store import ArtifactStore


@pytest.fixture(scope="session")
def redis_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server (Debian's ``redis-server``) on 127.0.0.1, for GCS fault tolerance."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is missing: `make chaos` installs it (apt-get)")
    port = free_port()
    data = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
         "--save", "", "--appendonly", "yes", "--protected-mode", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, "redis did not start"
            time.sleep(0.1)
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def chaos_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BLENDSERVE_HOME as `make demo` leaves it, and the serve config to deploy."""
    home = tmp_path_factory.mktemp("chaos-home")
    data = generate_news_dataset(seed=7, n_users=300, n_articles=400, n_clicks=12_000)
    save_demo_data(data, home / "data", seed=7)
    train_demo_models(ArtifactStore(home / "artifacts"), data, seed=7)
    os.environ["BLENDSERVE_HOME"] = str(home)
    (app,) = load_serve_config(ROOT / "configs" / "default.yaml").values()
    train_stack(app, "discover", "learned", home / "data" / "feedback.parquet")
    return home


@pytest.fixture(scope="module")
def chaos(chaos_home: Path, redis_address: str) -> Iterator[ChaosCluster]:
    """The running two-node cluster behind its front door."""
    env = {
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
        "RAY_REDIS_ADDRESS": redis_address,
        "RAY_external_storage_namespace": f"chaos-{os.getpid()}",
    }
    cluster = LocalRay(home=chaos_home, num_cpus=3, extra_env=env)
    cluster.start()
    try:
        cluster.add_worker(num_cpus=1)
        config = _default_config(chaos_home)
        (app,) = config["applications"]
        mf_in_its_own_replica(app)
        deployment(app, "model-mf")["num_replicas"] = 2
        yield _serve(cluster, config, chaos_home / "serve.yaml")
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def known_users(chaos_home: Path) -> list[str]:
    """Users the demo models were trained on."""
    ids = json.loads((chaos_home / "artifacts" / "mf" / "1" / "ids.json").read_text())
    return [str(user) for user in ids["users"][:200]]


@pytest.fixture(scope="module")
def default_service(chaos_home: Path) -> Iterator[ChaosCluster]:
    """``configs/default.yaml`` as ``make run`` serves it, behind the front door."""
    cluster = LocalRay(home=chaos_home, num_cpus=2)
    cluster.start()
    try:
        yield _serve(cluster, _default_config(chaos_home), chaos_home / "serve-default.yaml")
    finally:
        cluster.stop()


def _default_config(home: Path) -> dict[str, Any]:
    """configs/default.yaml on a free port, with the suite's models and catalogue."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    config["http_options"]["port"] = free_port()
    (app,) = config["applications"]
    app["args"].update(store=str(home / "artifacts"), catalog=str(home / "data/items.parquet"))
    return config


def _serve(cluster: LocalRay, config: dict[str, Any], path: Path) -> ChaosCluster:
    """Deploy ``config`` behind the front door; return once every replica is up."""
    path.write_text(yaml.safe_dump(config))
    running = ChaosCluster(cluster, cluster.deploy_behind_front_door(path))
    wait_ready(f"{running.url}/readyz", timeout_s=300)
    cluster.wait_running(["blendserve"], timeout_s=180)
    return running
