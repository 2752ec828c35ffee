"""A blendserve application's config, validated without Ray.

It lives in two places of a Serve config, on purpose:

* ``args`` (:class:`AppArgs`): the store, the hosted models and ingress limits.
  Serve hashes ``args`` into the application's code version, so changing them
  replaces every replica (models reload).
* the ``Ingress`` deployment's ``user_config`` (:class:`LiveConfig`): the use cases,
  their weights, slots and experiment splits. Serve hands a changed ``user_config``
  to the running replicas' ``reconfigure``: no restart, no dropped request.

One loader turns any validation failure into a ``ConfigError`` that names the file,
the field path, what was expected and what was given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from blending.attributes import BUILT_IN_ATTRIBUTES, AttributeKind
from blending.spec import UseCaseSpec
from deployments.config.data import EventsConfig, LiveCatalogConfig
from deployments.config.hosted import (
    HEAVY_FORMATS,
    AutoscalingConfig,
    CpuPoolConfig,
    ModelConfig,
    Placement,
)
from deployments.config.ingress import IngressConfig
from deployments.config.rollout import RolloutConfig, model_deployment
from deployments.config.tracing import TracingConfig
from models.errors import BlendserveError, ConfigError
from models.store import ArtifactStore

__all__ = [
    "HEAVY_FORMATS",
    "INGRESS_DEPLOYMENT",
    "PSEUDONYM_SALT_ENV",
    "RESULT_KEY_ENV",
    "AppArgs",
    "AppConfig",
    "AutoscalingConfig",
    "CpuPoolConfig",
    "LiveConfig",
    "ModelConfig",
    "misplaced_versions",
    "parse_app_args",
    "parse_live_config",
    "parse_rollout",
]

RESULT_KEY_ENV = "BLENDSERVE_RESULT_KEY"
"""Environment variable with the secret that signs result ids (the same on every replica)."""

PSEUDONYM_SALT_ENV = "BLENDSERVE_PSEUDONYM_SALT"
"""Environment variable with the salt that pseudonymises user ids in the event log."""

INGRESS_DEPLOYMENT = "Ingress"
"""The ingress deployment's name; its ``user_config`` holds the use cases."""


class AppArgs(BaseModel):
    """The application's ``args``: store, models, ingress limits and catalogue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: str = Field(
        "artifacts",
        description="Artifact store directory; relative paths resolve against $BLENDSERVE_HOME.",
    )
    models: dict[str, ModelConfig] = Field(min_length=1, description="Hosted models by name.")
    ingress: IngressConfig = Field(default_factory=IngressConfig, description="Ingress limits.")
    tracing: TracingConfig = Field(
        default_factory=TracingConfig,
        description="OpenTelemetry traces of each request, over OTLP; off by default.",
    )
    events: EventsConfig | None = Field(
        default_factory=EventsConfig,
        description="The event log (served lists, feedback, experiment statistics); null: off.",
    )
    live_catalog: LiveCatalogConfig | None = Field(
        None,
        description=(
            "A live catalogue with an admin API (replaces the static `catalog` file, which "
            "then only seeds it)."
        ),
    )
    catalog: str | None = Field(
        None,
        description=(
            "Parquet file of items (item_id, category, available) read by `filter` and "
            "`diversify`; relative paths resolve against $BLENDSERVE_HOME."
        ),
    )
    catalog_attributes: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64)], AttributeKind
    ] = Field(
        default_factory=dict,
        max_length=50,
        description=(
            "The items' own attributes that rules may filter and boost on, with their kind "
            "(`text`, `number`, `boolean` or `time`), e.g. `{price: number, in_stock: "
            "boolean}`; `category` and `published_at` are always there. Each costs every "
            "ingress replica 4 (text) or 8 bytes per item."
        ),
    )

    @field_validator("catalog_attributes")
    @classmethod
    def _not_built_in(cls, value: dict[str, AttributeKind]) -> dict[str, AttributeKind]:
        clash = sorted(set(value) & set(BUILT_IN_ATTRIBUTES))
        if clash:
            raise ValueError(f"{clash} are built in: declare only the items' own attributes")
        return value

    def attribute_kinds(self) -> dict[str, AttributeKind]:
        """Every attribute rules may use, with its kind (built-in ones included)."""
        return {**BUILT_IN_ATTRIBUTES, **self.catalog_attributes}

    @model_validator(mode="before")
    @classmethod
    def _use_cases_are_live(cls, data: Any) -> Any:
        if isinstance(data, dict) and "use_cases" in data:
            raise ValueError(
                f"use_cases: move them to the {INGRESS_DEPLOYMENT!r} deployment's user_config "
                "(deployments: [{name: Ingress, user_config: {use_cases: ...}}]), where "
                "`serve deploy` changes them without restarting replicas"
            )
        return data

    def placements(self, store: ArtifactStore) -> dict[str, Placement]:
        """Where each model runs; the default depends on its format in ``store`` (of its
        fixed version, or of its newest one when the version is set live).

        A model whose manifest cannot be read keeps its configured placement (else
        ``inline``), so the app still starts and the model reports why it cannot load.
        """
        placements: dict[str, Placement] = {}
        for name, spec in self.models.items():
            try:
                version = spec.version or store.latest(name)
                format = store.manifest(name, version).format
            except (BlendserveError, ValueError, OSError):
                format = "unknown"
            placements[name] = spec.resolved_placement(format)
        return placements


class LiveConfig(BaseModel):
    """The ingress's ``user_config``: what changes live, without restarting replicas."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    use_cases: dict[str, UseCaseSpec] = Field(min_length=1, description="Use cases by name.")
    models: dict[str, RolloutConfig] = Field(
        default_factory=dict,
        description="Live versions of the models loaded inline (in the ingress process).",
    )

    def check_models(self, known_models: Iterable[str]) -> None:
        """Raise ``ConfigError`` naming use case and node when one calls an unknown model."""
        known = list(known_models)
        for name, spec in self.use_cases.items():
            spec.check_models(name, known)

    def check_rules(self, args: AppArgs) -> None:
        """Raise ``ConfigError`` naming the field when a use case's rules use an
        attribute the app does not declare, or a condition unfit for its kind, or
        asks for ``seen`` without an event log to learn it from."""
        kinds = args.attribute_kinds()
        for name, spec in self.use_cases.items():
            if spec.rules is not None:
                if args.catalog is None and args.live_catalog is None:
                    raise ConfigError(
                        f"use_cases.{name}.rules: the app has no catalogue to read "
                        "attributes from (args.catalog or args.live_catalog)"
                    )
                try:
                    spec.rules.check(kinds, f"use_cases.{name}.rules")
                except ValueError as exc:
                    raise ConfigError(str(exc)) from exc
            if spec.seen is not None and args.events is None:
                raise ConfigError(
                    f"use_cases.{name}.seen: needs the event log (args.events), which is off"
                )


@dataclass(frozen=True)
class AppConfig:
    """One application, both halves validated against each other."""

    args: AppArgs
    live: LiveConfig
    rollouts: dict[str, RolloutConfig]
    """Every model's live versions: its fixed version, or its deployment's user_config."""


def misplaced_versions(app: AppConfig, store: ArtifactStore) -> list[str]:
    """Models whose live versions sit in the user_config of a deployment that does not
    host them (which placement a model gets depends on its format in ``store``)."""
    problems = []
    for name, placement in app.args.placements(store).items():
        if app.args.models[name].version is not None:
            continue  # fixed in args: no user_config involved
        in_ingress = name in app.live.models
        if placement == "replica" and in_ingress:
            problems.append(
                f"model {name!r} runs in deployment {model_deployment(name)!r}: move "
                f"Ingress user_config.models.{name} to that deployment's user_config"
            )
        elif placement == "inline" and not in_ingress:
            problems.append(
                f"model {name!r} runs inline in the Ingress: move the user_config of "
                f"{model_deployment(name)!r} to the Ingress's user_config.models.{name}"
            )
    return problems


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        given = error.get("input")
        shown = "" if isinstance(given, dict | list) else f" (got {given!r})"
        lines.append(f"{location}: {message}{shown}")
    return "; ".join(lines)


def parse_app_args(args: Mapping[str, Any], where: str = "args") -> AppArgs:
    """Validate application ``args``; errors name ``where`` and the field path."""
    try:
        return AppArgs.model_validate(dict(args))
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_format_errors(exc)}") from exc


def parse_live_config(
    user_config: Mapping[str, Any] | None,
    known_models: Iterable[str],
    where: str = f"{INGRESS_DEPLOYMENT}.user_config",
    args: AppArgs | None = None,
) -> LiveConfig:
    """Validate the ingress's ``user_config`` and check it only calls ``known_models``
    (and, given the app's ``args``, that its rules fit the declared attributes)."""
    try:
        live = LiveConfig.model_validate(dict(user_config or {}))
        live.check_models(known_models)
        if args is not None:
            live.check_rules(args)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_format_errors(exc)}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return live


def parse_rollout(user_config: Any, where: str) -> RolloutConfig:
    """Validate one model's live versions (a model deployment's ``user_config``)."""
    try:
        return RolloutConfig.model_validate(user_config)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_format_errors(exc)}") from exc
