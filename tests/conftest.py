"""Shared fixtures for every test: a temporary artifact store, a PostgreSQL server and
an S3-compatible object store (moto's standalone server), each a real process."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from object_store import S3Server, start_s3_server

from deployments.local.postgres import LocalPostgres
from models.store import ArtifactStore


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    """An empty artifact store in a temporary directory."""
    return ArtifactStore(tmp_path / "store")


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A directory for files before they are published."""
    path = tmp_path / "scratch"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """A PostgreSQL server from Debian's package on 127.0.0.1, for the whole run.

    Its data lives in a directory of its own under /tmp (not pytest's, which only root
    may enter: under root the server runs as the ``postgres`` user).
    """
    home = Path(tempfile.mkdtemp(prefix="blendserve-pg-"))
    home.chmod(0o755)
    server = LocalPostgres(home / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's standalone S3 server for the whole run, with one bucket."""
    with start_s3_server() as server:
        yield server


@pytest.fixture(params=["local", "s3"])
def events_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where an event-log test's Parquet dataset goes: a local directory, or a fresh
    prefix of a bucket on the S3 server."""
    if request.param == "local":
        return str(tmp_path / "events")
    server: S3Server = request.getfixturevalue("s3_server")
    return server.uri()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run every test that does not need the shared serving cluster first.

    The session's Ray Serve (``tests/integration/conftest.py::deployed``) keeps about
    twenty replicas health-checking in the background until the run ends; started
    last, it no longer slows the unit tests down or competes with the tests that
    start a cluster of their own (two Ray clusters on two cores starve each other's
    GCS). The sort is stable, so each group keeps its files' order.
    """
    items.sort(key=lambda item: "deployed" in getattr(item, "fixturenames", ()))
