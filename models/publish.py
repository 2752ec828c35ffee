"""Publish a trained artifact (a file or a flat directory) into the artifact store.

``blendserve publish`` is a thin wrapper around :func:`publish_artifact`, which
picks the files, names the version, and, unless told not to, proves the artifact
loads and passes its smoke test before anything reaches the real store: it is first
published into a throwaway store, loaded from there with the format's adapter and
smoke-tested, and only then are those same, verified bytes published for real.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from models.ann import INDEX_FILE, ItemVectors, build_tuned
from models.base import ModelAdapter
from models.catalogue_share import CatalogueShare, catalogue_share
from models.errors import (
    ArtifactNotFoundError,
    BlendserveError,
    ConfigError,
    ModelError,
    VersionExistsError,
)
from models.formats.tensor_adapter import TensorModelAdapter
from models.registry import adapter_class, load_failure, load_model
from models.smoke import smoke_test
from models.store import ArtifactStore, Manifest

__all__ = [
    "ANN_MIN_ITEMS",
    "EXAMPLES_KEY",
    "Published",
    "artifact_files",
    "index_beside",
    "next_version",
    "parse_extra",
    "parse_metrics",
    "publish_artifact",
    "read_examples",
]

ANN_MIN_ITEMS = 10_000
"""A factor model of at least this many items is published with an approximate index
(``ann.faiss``, :mod:`models.ann`); serving uses it from ``exact_below`` items on."""

EXAMPLES_KEY = "example_instances"
"""The manifest ``extra`` key holding the examples a smoke test predicts."""


def artifact_files(path: Path, format: str) -> dict[str, Path]:
    """The files to publish from ``path`` (store name -> source file).

    A lone file is stored under the format's ``primary_file`` (its own name when the
    format has none). A directory gives its regular files, flat: hidden files (such
    as ``.DS_Store``) are skipped and a subdirectory is an error naming it.
    """
    primary = adapter_class(format).primary_file
    if path.is_file():
        return {primary or path.name: path}
    if not path.exists():
        raise ArtifactNotFoundError(f"{path} does not exist")
    if not path.is_dir():
        raise ConfigError(f"{path}: expected a file or a directory")
    files: dict[str, Path] = {}
    for entry in sorted(path.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            raise ConfigError(
                f"{path}: subdirectory {entry.name!r} is not supported: an artifact is a "
                "flat directory of files"
            )
        if not entry.is_file():
            raise ConfigError(f"{path}: {entry.name!r} is not a regular file")
        files[entry.name] = entry
    if not files:
        raise ConfigError(f"{path}: no files to publish")
    if primary is not None and primary not in files:
        raise ConfigError(
            f"{path}: expected {primary!r} (the {format} format's main file), found "
            f"{', '.join(files)}; rename it, or publish the file itself"
        )
    return files


def next_version(store: ArtifactStore, name: str) -> str:
    """The integer after the highest numeric version of ``name`` (``"1"`` for a new model)."""
    numbers = [int(v) for v in store.versions(name) if v.isdigit()]
    candidate = max(numbers, default=0) + 1
    while store.path(name, str(candidate)).exists():  # a directory left without a manifest
        candidate += 1
    return str(candidate)


def read_examples(path: Path) -> list[Any]:
    """The example instances in ``path``: a non-empty JSON list."""
    try:
        examples = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"examples {path}: expected a JSON list of instances: {exc}") from exc
    if not isinstance(examples, list) or not examples:
        raise ConfigError(
            f"examples {path}: expected a non-empty JSON list of instances, "
            f"got {type(examples).__name__}"
        )
    return examples


def parse_metrics(pairs: Iterable[str]) -> dict[str, float]:
    """``["auc=0.91", ...]`` as ``{"auc": 0.91}``; a pair that is not ``name=number`` is
    an error naming it."""
    metrics: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            if not (sep and key.strip()):
                raise ValueError("no name")
            metrics[key.strip()] = float(value)
        except ValueError as exc:
            raise ConfigError(f"metric {pair!r}: expected name=number, e.g. auc=0.91") from exc
    return metrics


def parse_extra(text: str) -> dict[str, Any]:
    """A JSON object given on the command line."""
    try:
        extra = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"extra: expected a JSON object: {exc}") from exc
    if not isinstance(extra, dict):
        raise ConfigError(f"extra: expected a JSON object, got {type(extra).__name__}")
    return extra


def _manifest_extra(
    name: str, extra: Mapping[str, Any] | None, examples: Sequence[Any] | None
) -> dict[str, Any]:
    """``extra`` with the examples folded in, checked to be JSON."""
    merged = dict(extra or {})
    if examples is not None:
        if EXAMPLES_KEY in merged:
            raise ConfigError(
                f"model {name!r}: examples given twice (as examples and as "
                f"extra.{EXAMPLES_KEY}); give them once"
            )
        if not examples:
            raise ConfigError(f"model {name!r}: examples: expected at least one instance")
        merged[EXAMPLES_KEY] = list(examples)
    try:
        json.dumps(merged, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {name!r}: extra: expected JSON values: {exc}") from exc
    return merged


def _checked_metrics(name: str, metrics: Mapping[str, float] | None) -> dict[str, float]:
    checked: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise ConfigError(
                f"model {name!r}: metric {key!r}: expected a finite number, got {value!r}"
            )
        checked[str(key)] = number
    return checked


def index_beside(
    vectors: ItemVectors | None, directory: Path, min_items: int | None = ANN_MIN_ITEMS
) -> tuple[Path, dict[str, Any]] | None:
    """An approximate index of a factor model's ``vectors`` in ``directory`` and what
    was measured, when the model has ``min_items`` items or more (``None``: never)."""
    if vectors is None or min_items is None or len(vectors.items) < min_items:
        return None
    path = directory / INDEX_FILE
    return path, dict(build_tuned(vectors, path))


class Published(NamedTuple):
    """What :func:`publish_artifact` published and found."""

    manifest: Manifest
    tried: list[str]
    """What the smoke test tried (empty without a check)."""
    catalogue: CatalogueShare | None
    """The model's items against the catalogue it was given (``None``: none given)."""


def _load_and_smoke_test(
    store: ArtifactStore, name: str, version: str
) -> tuple[ModelAdapter, list[str]]:
    """Load ``name`` at ``version`` from ``store`` and smoke-test it; the model and what
    was tried."""
    try:
        adapter = load_model(store, name, version)
    except BlendserveError:
        raise
    except Exception as exc:  # any failure of the framework's loader, re-raised as ours
        raise ModelError(f"model {name!r} {load_failure(version, exc)}") from exc
    return adapter, smoke_test(adapter)


def publish_artifact(
    store: ArtifactStore,
    path: str | Path,
    name: str,
    format: str,
    version: str | None = None,
    examples: Sequence[Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    description: str = "",
    extra: Mapping[str, Any] | None = None,
    check: bool = True,
    catalogue: Collection[str] | None = None,
    ann_min_items: int | None = ANN_MIN_ITEMS,
) -> Published:
    """Publish the artifact at ``path`` as ``name`` (next numeric version by default).

    ``examples`` land in the manifest's ``extra["example_instances"]``, which the
    smoke test predicts. With ``check``, the artifact must load and pass
    :func:`models.smoke.smoke_test` from a temporary store first, and, given the
    ``catalogue``'s item ids, know at least one of them; any failure raises and
    nothing is published. An existing version is never overwritten.

    A checked factor model of ``ann_min_items`` items or more (``None``: never) gets
    an approximate index built from its vectors, tuned to recall@100 >=
    ``models.ann.TARGET_RECALL``, published with it; the manifest's ``extra["ann"]``
    says what was built and measured.
    """
    files = artifact_files(Path(path), format)
    version = next_version(store, name) if version is None else version
    target = store.path(name, version)  # validates both names
    merged_extra = _manifest_extra(name, extra, examples)
    checked_metrics = _checked_metrics(name, metrics)
    if target.exists():
        published = ", ".join(store.versions(name)) or "none"
        raise VersionExistsError(
            f"model {name!r} version {version!r} already exists at {target} (published: "
            f"{published}); versions are never overwritten: leave out the version to "
            "publish the next one"
        )

    def publish_into(
        into: ArtifactStore, sources: Mapping[str, Path], extra: Mapping[str, Any]
    ) -> Manifest:
        return into.publish(
            name,
            version,
            format,
            sources,
            metrics=checked_metrics,
            description=description,
            extra=dict(extra),
        )

    if not check:
        return Published(publish_into(store, files, merged_extra), [], None)
    with tempfile.TemporaryDirectory(prefix="blendserve-publish-") as tmp:
        trial = ArtifactStore(tmp)
        trial_manifest = publish_into(trial, files, merged_extra)
        adapter, tried = _load_and_smoke_test(trial, name, version)
        share = None if catalogue is None else catalogue_share(adapter, catalogue)
        if share is not None and share.level == "error":
            raise ModelError(f"model {name!r}: {share}")
        # Publish the bytes that passed, not the sources, which may have changed since.
        directory = trial.path(name, version)
        verified = {f: directory / f for f in trial_manifest.files}
        extra = dict(merged_extra)
        vectors = adapter.item_vectors() if isinstance(adapter, TensorModelAdapter) else None
        built = index_beside(vectors, Path(tmp), ann_min_items)
        if built is not None:
            verified[INDEX_FILE], extra["ann"] = built
        manifest = publish_into(store, verified, extra)
        return Published(manifest, tried, share)
