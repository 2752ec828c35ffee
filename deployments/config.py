"""The application's arguments (the Serve config's ``args``), validated without Ray.

One loader turns any validation failure into a ``ConfigError`` that names the file,
the field path, what was expected and what was given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from blending.spec import UseCaseSpec
from models.errors import ConfigError

__all__ = [
    "AppConfig",
    "IngressConfig",
    "ModelConfig",
    "load_serve_config",
    "parse_app_config",
    "resolve_store",
]


class ModelConfig(BaseModel):
    """How one model from the artifact store is hosted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(description="Version in the store to serve.", min_length=1)
    placement: Literal["inline", "deployment"] = Field(
        "inline",
        description=(
            "`inline` loads the model in the ingress process (cheap models); "
            "`deployment` gives it its own Serve deployment (GPU, heavy CPU, own scaling)."
        ),
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Format-specific adapter options, e.g. `device`."
    )
    num_cpus: float = Field(0.5, gt=0, le=256, description="CPUs per replica (deployment only).")
    num_gpus: float = Field(0, ge=0, le=16, description="GPUs per replica (deployment only).")
    num_replicas: int = Field(1, ge=1, le=1000, description="Replicas (deployment only).")
    max_batch_size: int = Field(
        16, ge=1, le=1024, description="Most calls one batched forward pass serves."
    )
    batch_wait_timeout_s: float = Field(
        0.0,
        ge=0,
        le=1,
        description=(
            "Longest a call waits for a batch to fill; 0 batches only calls that queued "
            "while the previous batch ran, so a lone request never waits."
        ),
    )
    timeout_s: float = Field(
        1.0, gt=0, le=60, description="Deadline for one call from the ingress to this model."
    )


class IngressConfig(BaseModel):
    """Settings of the HTTP ingress process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_k: int = Field(100, ge=1, le=1000, description="Largest `k` a request may ask for.")
    max_instances: int = Field(1000, ge=1, le=100_000, description="Largest predict batch.")
    max_exclude: int = Field(1000, ge=0, le=100_000, description="Longest `exclude` list.")


class AppConfig(BaseModel):
    """Everything the application builder needs: store, models, use cases."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: str = Field(
        "artifacts",
        description="Artifact store directory; relative paths resolve against $BLENDSERVE_HOME.",
    )
    models: dict[str, ModelConfig] = Field(min_length=1, description="Hosted models by name.")
    use_cases: dict[str, UseCaseSpec] = Field(min_length=1, description="Use cases by name.")
    ingress: IngressConfig = Field(default_factory=IngressConfig, description="Ingress limits.")

    @model_validator(mode="after")
    def _check_models_exist(self) -> AppConfig:
        for name, spec in self.use_cases.items():
            spec.check_models(name, self.models)
        return self

    def remote_models(self) -> dict[str, ModelConfig]:
        """Models that get their own deployment."""
        return {n: m for n, m in self.models.items() if m.placement == "deployment"}


def resolve_store(store: str) -> Path:
    """An absolute store path: relative ones resolve against ``$BLENDSERVE_HOME`` or cwd."""
    path = Path(store).expanduser()
    if path.is_absolute():
        return path
    return Path(os.environ.get("BLENDSERVE_HOME", os.getcwd())) / path


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        given = error.get("input")
        shown = "" if isinstance(given, dict | list) else f" (got {given!r})"
        lines.append(f"{location}: {message}{shown}")
    return "; ".join(lines)


def parse_app_config(args: Mapping[str, Any], where: str = "args") -> AppConfig:
    """Validate application ``args``; errors name ``where`` and the field path."""
    try:
        return AppConfig.model_validate(dict(args))
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_format_errors(exc)}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def load_serve_config(path: str | os.PathLike[str]) -> dict[str, AppConfig]:
    """Read a Serve config file and validate every blendserve application in it."""
    source = Path(path)
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{source}: cannot read YAML: {exc}") from exc
    applications = data.get("applications") if isinstance(data, dict) else None
    if not isinstance(applications, list) or not applications:
        raise ConfigError(
            f"{source}: expected a Serve config with a non-empty `applications:` list"
        )
    apps: dict[str, AppConfig] = {}
    for index, app in enumerate(applications):
        if not isinstance(app, dict) or "import_path" not in app:
            raise ConfigError(
                f"{source}: applications.{index}: expected a mapping with `import_path`"
            )
        if not str(app["import_path"]).startswith("deployments.app:"):
            continue  # another team's application; Serve validates it
        name = str(app.get("name", "default"))
        apps[name] = parse_app_config(app.get("args") or {}, f"{source}: applications.{index}.args")
    if not apps:
        raise ConfigError(f"{source}: no application uses import_path deployments.app:build_app")
    return apps
