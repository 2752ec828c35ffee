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
