"""One real local Ray Serve for the whole integration run, deployed with `serve deploy`.

The cluster serves ``configs/default.yaml`` (on a free port, models trained on a
small synthetic dataset) plus four extra applications: ``flaky``, whose
collaborative-filtering model raises on every call (so it fails its smoke test) and
which has a source that sleeps past its budget; ``pending``, whose model asks for
more CPUs than the cluster has, so it never becomes ready; ``damaged``, whose
artifacts are corrupt; ``lifecycle``, whose model versions the lifecycle tests
swap; and ``shared``, whose live catalogue is in PostgreSQL (``serving_cluster.py``).
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from builders import (
    damage,
    publish_candidate_versions,
    publish_failing_mf,
    publish_sleepy_model,
    publish_tiny_click_ranker,
    publish_tiny_mf,
)
from cluster_config import SharedState, serve_config
from object_store import S3Server
from serving_cluster import (
    ROOT,
    SLEEPY_DELAY_S,
    TEST_KEYS,
    Deployed,
    batch_score_mf,
)
from small_disk import mounted_tmpfs
from trace_collector import TraceCollector, collecting_traces

from deployments.api.keys import API_KEYS_ENV
from deployments.config import load_serve_config
from deployments.local.cluster import LocalRay, free_port, wait_ready
from deployments.local.postgres import LocalPostgres
from deployments.offline.training import train_stack
from models.demo.synthetic import generate_news_dataset
from models.demo.train import save_demo_data, train_demo_models
from models.store import ArtifactStore


@pytest.fixture(scope="session")
def serve_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch_session: pytest.MonkeyPatch
) -> Path:
    """A BLENDSERVE_HOME as `make demo` leaves it (smaller data), plus a broken and a
    sleepy model."""
    home = tmp_path_factory.mktemp("home")
    store = ArtifactStore(home / "artifacts")
    data = generate_news_dataset(seed=7, n_users=300, n_articles=400, n_clicks=12_000)
    save_demo_data(data, home / "data", seed=7)
    train_demo_models(store, data, seed=7)
    monkeypatch_session.setenv("BLENDSERVE_HOME", str(home))
    (app,) = load_serve_config(ROOT / "configs" / "default.yaml").values()
    train_stack(app, "discover", "learned", home / "data" / "feedback.parquet")
    scratch = tmp_path_factory.mktemp("scratch")
    publish_failing_mf(store, scratch, name="broken")
    for name in ("sleepy", "sleepy_tight"):
        publish_sleepy_model(store, name, SLEEPY_DELAY_S, [f"s{i}" for i in range(5)])
    for name, publish, filename in [
        ("corrupt", publish_tiny_click_ranker, "model.joblib"),
        ("corrupt_remote", publish_tiny_mf, "model.pt"),
    ]:
        publish(store, tmp_path_factory.mktemp(name), name=name)
        original = damage(store, name, filename)
        (home / f"{name}.{filename}.good").write_bytes(original)  # for a repair test
    publish_candidate_versions(store, tmp_path_factory.mktemp("candidates"), data)
    batch_score_mf(home)
    return home


@pytest.fixture(scope="session")
def monkeypatch_session() -> Iterator[pytest.MonkeyPatch]:
    """Environment changes that last the whole run."""
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="session")
def shared_state(
    postgres: LocalPostgres, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedState]:
    """Where the ``shared`` app keeps its state: PostgreSQL, S3 and a 4 MiB tmpfs."""
    with mounted_tmpfs(tmp_path_factory.mktemp("small-wal") / "mount", "4m") as wal:
        yield SharedState(postgres.url, s3_server.uri("shared"), wal)


@pytest.fixture(scope="session")
def traces() -> Iterator[TraceCollector]:
    """The OTLP collector the ``lifecycle`` app's replicas send their spans to."""
    with collecting_traces() as collector:
        yield collector


@pytest.fixture(scope="session")
def deployed(
    serve_home: Path,
    shared_state: SharedState,
    traces: TraceCollector,
    request: pytest.FixtureRequest,
) -> Iterator[Deployed]:
    """Start Ray on 127.0.0.1, `serve deploy` the config, wait for readiness."""
    # Replicas import the checkout under test (not whichever one the virtualenv's
    # editable install points at) and the test-only models (tests/support_models.py).
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), API_KEYS_ENV: TEST_KEYS}
    # Logical CPUs, for Ray's bookkeeping only (the machine has 2 cores): the five apps'
    # fractional replicas need about 4.2, and `pending` must fit once it asks for less.
    cluster = LocalRay(home=serve_home, num_cpus=6, extra_env=env)
    cluster.start()
    try:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        running = Deployed(url, cluster, {}, serve_home / "serve.yaml")
        running.redeploy(serve_config(port, shared_state, traces.url))
        wait_ready(f"{url}/readyz", timeout_s=300)
        # `pending` never is ready; `flaky` and `damaged` are RUNNING with models that
        # failed to load or failed their smoke test.
        cluster.wait_running(
            ["blendserve", "flaky", "damaged", "lifecycle", "shared"], timeout_s=180
        )
        yield running
    finally:
        cluster.stop()
        # Ray's logs (under the cluster's temp dir) are kept only when something failed.
        if request.session.testsfailed == 0:
            shutil.rmtree(cluster.temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def lifecycle(deployed: Deployed) -> Iterator[Deployed]:
    """The cluster; the lifecycle app's first config is restored after the module."""
    original = copy.deepcopy(deployed.config)
    yield deployed
    deployed.redeploy(original)


@pytest.fixture(scope="session")
def client(deployed: Deployed) -> Iterator[httpx.Client]:
    """An HTTP client on the served port."""
    with httpx.Client(
        base_url=deployed.url, timeout=30.0, headers=deployed.cluster.auth_headers()
    ) as http:
        yield http


@pytest.fixture(scope="session")
def known_user(serve_home: Path) -> str:
    """A user the demo models were trained on."""
    import json

    ids = json.loads((serve_home / "artifacts" / "mf" / "1" / "ids.json").read_text())
    return str(ids["users"][0])
