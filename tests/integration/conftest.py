"""One real local Ray Serve for the whole integration run, deployed with `serve deploy`.

The cluster serves ``configs/default.yaml`` (on a free port, models trained on a
small synthetic dataset) plus two extra applications: ``flaky``, whose
collaborative-filtering model raises on every call, and ``pending``, whose model
asks for more CPUs than the cluster has, so it never becomes ready.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from builders import publish_failing_mf
from serving_cluster import Deployed, serve_config

from deployments.local import LocalRay, free_port, wait_ready
from models.demo.synthetic import generate_news_dataset
from models.demo.train import train_demo_models
from models.store import ArtifactStore


@pytest.fixture(scope="session")
def serve_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BLENDSERVE_HOME whose `artifacts/` holds the demo models and a broken one."""
    home = tmp_path_factory.mktemp("home")
    store = ArtifactStore(home / "artifacts")
    data = generate_news_dataset(seed=7, n_users=300, n_articles=400, n_clicks=12_000)
    train_demo_models(store, data, seed=7)
    scratch = tmp_path_factory.mktemp("scratch")
    publish_failing_mf(store, scratch, name="broken")
    return home


@pytest.fixture(scope="session")
def deployed(serve_home: Path, request: pytest.FixtureRequest) -> Iterator[Deployed]:
    """Start Ray on 127.0.0.1, `serve deploy` the config, wait for readiness."""
    cluster = LocalRay(home=serve_home, num_cpus=4)
    cluster.start()
    try:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        running = Deployed(url, cluster, {}, serve_home / "serve.yaml")
        running.redeploy(serve_config(port))
        wait_ready(f"{url}/readyz", timeout_s=300)
        wait_ready(f"{url}/flaky/readyz", timeout_s=120)
        yield running
    finally:
        cluster.stop()
        # Ray's logs (under the cluster's temp dir) are kept only when something failed.
        if request.session.testsfailed == 0:
            shutil.rmtree(cluster.temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def client(deployed: Deployed) -> Iterator[httpx.Client]:
    """An HTTP client on the served port."""
    with httpx.Client(base_url=deployed.url, timeout=30.0) as http:
        yield http


@pytest.fixture(scope="session")
def known_user(serve_home: Path) -> str:
    """A user the demo models were trained on."""
    import json

    ids = json.loads((serve_home / "artifacts" / "mf" / "1" / "ids.json").read_text())
    return str(ids["users"][0])
