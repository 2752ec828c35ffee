"""The local artifact store: ``<root>/<model>/<version>/`` with a ``manifest.json``.

A manifest records the format, version, creation time, the sha256 of every file,
metrics and a description. Loading verifies every checksum first, so a corrupted or
hand-edited artifact is refused with an error that names the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.errors import (
    ArtifactNotFoundError,
    ChecksumMismatchError,
    ConfigError,
    VersionExistsError,
)

__all__ = ["MANIFEST_NAME", "ArtifactStore", "Manifest", "sha256_of"]

MANIFEST_NAME = "manifest.json"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks so large weights fit in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """What the store knows about one published model version."""

    name: str
    version: str
    format: str
    created_at: str
    files: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to ``manifest.json``."""
        return {
            "name": self.name,
            "version": self.version,
            "format": self.format,
            "created_at": self.created_at,
            "files": dict(sorted(self.files.items())),
            "metrics": self.metrics,
            "description": self.description,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: Path) -> Manifest:
        """Parse a manifest, naming ``source`` when a required key is missing."""
        try:
            return cls(
                name=str(data["name"]),
                version=str(data["version"]),
                format=str(data["format"]),
                created_at=str(data["created_at"]),
                files={str(k): str(v) for k, v in data["files"].items()},
                metrics={str(k): float(v) for k, v in data.get("metrics", {}).items()},
                description=str(data.get("description", "")),
                extra=dict(data.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"malformed manifest {source}: {exc!r}") from exc


def _check_name(kind: str, value: str) -> str:
    if not _NAME_PATTERN.match(value):
        raise ConfigError(
            f"invalid {kind} {value!r}: expected letters, digits, '_', '.' or '-' "
            "(at most 128, not starting with a punctuation mark)"
        )
    return value


class ArtifactStore:
    """A directory of versioned model artifacts, each described by a manifest."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, name: str, version: str) -> Path:
        """The directory that holds ``name`` at ``version`` (it may not exist)."""
        return self.root / _check_name("model name", name) / _check_name("version", version)

    def models(self) -> list[str]:
        """Names of every model with at least one published version."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self.versions(p.name))

    def versions(self, name: str) -> list[str]:
        """Published versions of ``name``, oldest first (numeric versions sort numerically)."""
        model_dir = self.root / _check_name("model name", name)
        if not model_dir.is_dir():
            return []
        found = [p.name for p in model_dir.iterdir() if (p / MANIFEST_NAME).is_file()]
        return sorted(found, key=lambda v: (0, int(v), v) if v.isdigit() else (1, 0, v))

    def latest(self, name: str) -> str:
        """The newest published version of ``name``."""
        versions = self.versions(name)
        if not versions:
            raise ArtifactNotFoundError(f"model {name!r} has no published version in {self.root}")
        return versions[-1]

    def manifest(self, name: str, version: str) -> Manifest:
        """Read the manifest of ``name`` at ``version`` without verifying files."""
        manifest_path = self.path(name, version) / MANIFEST_NAME
        if not manifest_path.is_file():
            known = ", ".join(self.versions(name)) or "none"
            raise ArtifactNotFoundError(
                f"model {name!r} version {version!r} is not in {self.root} (published: {known})"
            )
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
        return Manifest.from_json(data, manifest_path)

    def verify(self, name: str, version: str) -> Manifest:
        """Check every file against its manifest checksum; return the manifest."""
        manifest = self.manifest(name, version)
        directory = self.path(name, version)
        for filename, expected in manifest.files.items():
            file_path = directory / filename
            if not file_path.is_file():
                raise ArtifactNotFoundError(
                    f"model {name!r} version {version!r}: file {filename!r} listed in the "
                    "manifest is missing"
                )
            actual = sha256_of(file_path)
            if actual != expected:
                raise ChecksumMismatchError(
                    f"model {name!r} version {version!r}: checksum mismatch for file "
                    f"{filename!r} (expected sha256 {expected[:12]}..., got {actual[:12]}...)"
                )
        return manifest

    def publish(
        self,
        name: str,
        version: str,
        format: str,
        files: Mapping[str, str | os.PathLike[str]],
        *,
        metrics: Mapping[str, float] | None = None,
        description: str = "",
        extra: Mapping[str, Any] | None = None,
    ) -> Manifest:
        """Copy ``files`` (store name -> source path) into a new version, atomically.

        The version is written to a temporary directory and renamed into place, so a
        reader never sees half an artifact; an existing version is never overwritten.
        """
        target = self.path(name, version)
        if target.exists():
            raise VersionExistsError(
                f"model {name!r} version {version!r} already exists at {target}"
            )
        if not files:
            raise ConfigError(f"model {name!r}: nothing to publish (no files given)")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
        try:
            checksums: dict[str, str] = {}
            for store_name, source in files.items():
                if "/" in store_name or store_name in ("", ".", "..", MANIFEST_NAME):
                    raise ConfigError(f"model {name!r}: invalid artifact file name {store_name!r}")
                source_path = Path(source)
                if not source_path.is_file():
                    raise ArtifactNotFoundError(
                        f"model {name!r}: source file {source_path} does not exist"
                    )
                shutil.copyfile(source_path, staging / store_name)
                checksums[store_name] = sha256_of(staging / store_name)
            manifest = Manifest(
                name=name,
                version=version,
                format=format,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                files=checksums,
                metrics={k: float(v) for k, v in (metrics or {}).items()},
                description=description,
                extra=dict(extra or {}),
            )
            (staging / MANIFEST_NAME).write_text(
                json.dumps(manifest.to_json(), indent=2) + "\n", encoding="utf-8"
            )
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return manifest
