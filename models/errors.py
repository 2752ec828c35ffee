"""The blendserve exception tree.

Every error blendserve raises on purpose derives from :class:`BlendserveError`, and
also from the nearest built-in so callers that only know Python still catch it::

    BlendserveError
    ├── ConfigError (ValueError)            a config, spec or request shape is wrong
    │   ├── UnknownFormatError (KeyError)   no adapter is registered for a format
    │   └── UnknownOptionsError (ModelError) a model's options name ones its format lacks
    ├── InputError (ValueError)             a request's payload is invalid; names the field
    ├── ArtifactError                       the artifact store refused something
    │   ├── ArtifactNotFoundError (FileNotFoundError)
    │   ├── ChecksumMismatchError (ValueError)
    │   └── VersionExistsError (FileExistsError)
    └── ModelError (RuntimeError)           a model failed to load or to predict
        ├── ModelOverloadedError            its replicas are at capacity: retry soon
        └── VersionNotLoadedError (LookupError)  a caller asked for a version not loaded

HTTP status codes are decided once, in the ingress, from this tree.
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "ArtifactNotFoundError",
    "BlendserveError",
    "ChecksumMismatchError",
    "ConfigError",
    "InputError",
    "ModelError",
    "ModelOverloadedError",
    "UnknownFormatError",
    "UnknownOptionsError",
    "VersionExistsError",
    "VersionNotLoadedError",
    "describe_error",
]


class BlendserveError(Exception):
    """Root of every error blendserve raises on purpose."""


class ConfigError(BlendserveError, ValueError):
    """A configuration, DAG spec or model spec is invalid."""


class UnknownFormatError(ConfigError, KeyError):
    """No model adapter is registered for the requested format."""

    def __str__(self) -> str:
        # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class InputError(BlendserveError, ValueError):
    """A request payload is invalid; ``field`` is its dotted path (``instances.3``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ArtifactError(BlendserveError):
    """The artifact store could not serve or accept an artifact."""


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    """A model, version or file is missing from the store."""


class ChecksumMismatchError(ArtifactError, ValueError):
    """A file in the store does not match the sha256 in its manifest."""


class VersionExistsError(ArtifactError, FileExistsError):
    """Publishing would overwrite a version that already exists."""


class ModelError(BlendserveError, RuntimeError):
    """A model failed to load or to predict."""


class ModelOverloadedError(ModelError):
    """A model's replicas and queue are full; the call was refused, not attempted."""


class VersionNotLoadedError(ModelError, LookupError):
    """A caller asked for a model version that is not loaded (not live, canary or shadow)."""


def describe_error(exc: BaseException) -> str:
    """``Type: last line of the message``: one line for logs, readiness and APIs."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}".rstrip(": ")


class UnknownOptionsError(ConfigError, ModelError):
    """A model's ``options`` name settings its format does not take: a config error,
    found when the model loads (so also a load failure)."""
