"""Model adapters, the format registry and the artifact store (no Ray, no HTTP)."""

from models.base import ModelAdapter, Recommender, RecommendQuery, ScoredItem
from models.errors import (
    ArtifactError,
    ArtifactNotFoundError,
    BlendserveError,
    ChecksumMismatchError,
    ConfigError,
    InputError,
    ModelError,
    UnknownFormatError,
    VersionExistsError,
)
from models.registry import adapter_class, formats, load_model, register_format
from models.store import ArtifactStore, Manifest

__all__ = [
    "ArtifactError",
    "ArtifactNotFoundError",
    "ArtifactStore",
    "BlendserveError",
    "ChecksumMismatchError",
    "ConfigError",
    "InputError",
    "Manifest",
    "ModelAdapter",
    "ModelError",
    "RecommendQuery",
    "Recommender",
    "ScoredItem",
    "UnknownFormatError",
    "VersionExistsError",
    "adapter_class",
    "formats",
    "load_model",
    "register_format",
]
