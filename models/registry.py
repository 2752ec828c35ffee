"""The format registry: which adapter class loads which artifact format.

Built-in formats are registered by import path and imported on first use, so
loading a popularity list never imports torch. Registering a format twice is an
error rather than a silent override.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from models.base import ModelAdapter
from models.errors import ConfigError, UnknownFormatError, describe_error
from models.store import ArtifactStore

__all__ = ["adapter_class", "formats", "load_failure", "load_model", "register_format"]

_registry: dict[str, type[ModelAdapter] | str] = {
    "sklearn": "models.formats.sklearn_adapter:SklearnAdapter",
    "torchscript": "models.formats.torch_adapter:TorchScriptAdapter",
    "curated": "models.formats.curated:CuratedListAdapter",
    "popularity": "models.formats.popularity:PopularityAdapter",
    "click_ranker": "models.formats.click_ranker:ClickRankerAdapter",
    "python": "models.formats.python_adapter:PythonAdapter",
    "onnx": "models.formats.onnx_adapter:OnnxAdapter",
    "http": "models.formats.http_adapter:HttpModelAdapter",
    "factors": "models.formats.factors:FactorsAdapter",
    "item_item": "models.formats.item_item:ItemItemAdapter",
    "precomputed": "models.formats.precomputed:PrecomputedAdapter",
}


def register_format(format: str, adapter: type[ModelAdapter] | str) -> None:
    """Register ``adapter`` (a class or ``"module:Class"``) for ``format``."""
    if format in _registry:
        raise ConfigError(f"model format {format!r} is already registered")
    _registry[format] = adapter


def formats() -> list[str]:
    """Every registered format name."""
    return sorted(_registry)


def adapter_class(format: str) -> type[ModelAdapter]:
    """The adapter class for ``format``, importing it on first use."""
    entry = _registry.get(format)
    if entry is None:
        raise UnknownFormatError(
            f"unknown model format {format!r}: expected one of {', '.join(formats())}"
        )
    if isinstance(entry, str):
        module_name, _, class_name = entry.partition(":")
        entry = getattr(importlib.import_module(module_name), class_name)
        if not (isinstance(entry, type) and issubclass(entry, ModelAdapter)):
            raise ConfigError(f"format {format!r}: {_registry[format]} is not a ModelAdapter")
        _registry[format] = entry
    return entry


def load_failure(version: str, exc: BaseException) -> str:
    """Why ``version`` of a model could not be loaded, in one line."""
    return f"version {version!r} failed to load: {describe_error(exc)}"


def load_model(
    store: ArtifactStore,
    name: str,
    version: str,
    options: Mapping[str, Any] | None = None,
) -> ModelAdapter:
    """Verify the checksums of ``name`` at ``version``, then build and load its adapter."""
    manifest = store.verify(name, version)
    adapter = adapter_class(manifest.format)(manifest, store.path(name, version), options)
    adapter.check_options()
    adapter.load()
    return adapter
