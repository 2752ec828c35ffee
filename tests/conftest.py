"""Shared fixtures for every test: a temporary artifact store."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run every test that does not need the shared serving cluster first.

    The session's Ray Serve (``tests/integration/conftest.py::deployed``) keeps about
    twenty replicas health-checking in the background until the run ends; started
    last, it no longer slows the unit tests down or competes with the tests that
    start a cluster of their own (two Ray clusters on two cores starve each other's
    GCS). The sort is stable, so each group keeps its files' order.
    """
    items.sort(key=lambda item: "deployed" in getattr(item, "fixturenames", ()))
