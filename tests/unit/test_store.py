"""The artifact store: layout, manifests, checksums, no overwrites."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.errors import (
    ArtifactNotFoundError,
    ChecksumMismatchError,
    ConfigError,
    VersionExistsError,
)
from models.store import MANIFEST_NAME, ArtifactStore, sha256_of


def _file(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def test_publish_writes_files_and_a_complete_manifest(store: ArtifactStore, scratch: Path) -> None:
    source = _file(scratch, "w.bin", "weights")
    manifest = store.publish(
        "ranker", "3", "sklearn", {"model.joblib": source}, metrics={"auc": 0.8}, description="d"
    )
    directory = store.path("ranker", "3")
    assert (directory / "model.joblib").read_text() == "weights"
    on_disk = json.loads((directory / MANIFEST_NAME).read_text())
    assert on_disk["format"] == "sklearn" and on_disk["version"] == "3"
    assert on_disk["files"] == {"model.joblib": sha256_of(source)}
    assert on_disk["metrics"] == {"auc": 0.8} and on_disk["description"] == "d"
    assert on_disk["created_at"] == manifest.created_at


def test_tampered_file_is_refused_naming_the_file(store: ArtifactStore, scratch: Path) -> None:
    store.publish("ranker", "1", "sklearn", {"model.joblib": _file(scratch, "a", "good")})
    (store.path("ranker", "1") / "model.joblib").write_text("evil")
    with pytest.raises(ChecksumMismatchError, match=r"model\.joblib"):
        store.verify("ranker", "1")


def test_missing_file_is_refused_naming_the_file(store: ArtifactStore, scratch: Path) -> None:
    store.publish("ranker", "1", "sklearn", {"model.joblib": _file(scratch, "a", "good")})
    (store.path("ranker", "1") / "model.joblib").unlink()
    with pytest.raises(ArtifactNotFoundError, match=r"model\.joblib"):
        store.verify("ranker", "1")


def test_existing_version_is_never_overwritten(store: ArtifactStore, scratch: Path) -> None:
    store.publish("ranker", "1", "sklearn", {"model.joblib": _file(scratch, "a", "first")})
    with pytest.raises(VersionExistsError, match="'ranker' version '1'"):
        store.publish("ranker", "1", "sklearn", {"model.joblib": _file(scratch, "b", "second")})
    assert (store.path("ranker", "1") / "model.joblib").read_text() == "first"


def test_failed_publish_leaves_no_partial_version(store: ArtifactStore, scratch: Path) -> None:
    with pytest.raises(ArtifactNotFoundError):
        store.publish("ranker", "1", "sklearn", {"model.joblib": scratch / "missing"})
    assert store.versions("ranker") == []
    assert not store.path("ranker", "1").exists()


def test_versions_sort_numerically_and_latest_is_newest(
    store: ArtifactStore, scratch: Path
) -> None:
    for version in ("2", "10", "1"):
        store.publish("m", version, "curated", {"items.json": _file(scratch, version, "{}")})
    assert store.versions("m") == ["1", "2", "10"]
    assert store.latest("m") == "10"
    assert store.models() == ["m"]


def test_unknown_version_error_lists_published_ones(store: ArtifactStore, scratch: Path) -> None:
    store.publish("m", "1", "curated", {"items.json": _file(scratch, "x", "{}")})
    with pytest.raises(ArtifactNotFoundError, match=r"version '7'.*published: 1"):
        store.manifest("m", "7")


@pytest.mark.parametrize("bad", ["../escape", "", "a/b", ".hidden"])
def test_path_traversal_names_are_rejected(store: ArtifactStore, bad: str) -> None:
    with pytest.raises(ConfigError, match="invalid model name"):
        store.path(bad, "1")
