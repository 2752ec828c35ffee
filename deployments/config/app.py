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
from typing import Annotated, Any, Literal

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
from deployments.config.ingress import IngressConfig
from deployments.config.rollout import RolloutConfig, model_deployment
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


HEAVY_FORMATS = frozenset({"torchscript", "onnx", "http"})
"""Formats that get their own replica unless a config says otherwise: heavy compute,
or (``http``) calls that wait on another service."""

Placement = Literal["inline", "replica"]


class AutoscalingConfig(BaseModel):
    """Serve autoscaling for a model's replicas (replaces a fixed ``num_replicas``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_replicas: int = Field(1, ge=0, le=1000, description="Fewest replicas (0 scales to zero).")
    max_replicas: int = Field(ge=1, le=1000, description="Most replicas.")
    target_ongoing_requests: float = Field(
        2, gt=0, le=10_000, description="Ongoing requests per replica Serve aims for."
    )
    upscale_delay_s: float = Field(3, ge=0, le=3600, description="Sustained load before adding.")
    downscale_delay_s: float = Field(30, ge=0, le=3600, description="Idle time before removing.")

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalingConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        return self

    def to_serve(self) -> dict[str, Any]:
        """Serve's ``autoscaling_config``."""
        return self.model_dump()


class CpuPoolConfig(BaseModel):
    """A second, CPU-only pool of the same model that takes the overflow of the first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_cpus: float = Field(1, gt=0, le=256, description="CPUs per CPU-pool replica.")
    num_replicas: int = Field(1, ge=1, le=1000, description="CPU-pool replicas.")
    spill_above: int = Field(
        8,
        ge=1,
        le=100_000,
        description=(
            "Calls in flight to the main pool (per ingress replica) above which new calls "
            "go to the CPU pool."
        ),
    )


class ModelConfig(BaseModel):
    """How one model from the artifact store is hosted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str | None = Field(
        None,
        min_length=1,
        description=(
            "A fixed version to serve (changing it restarts replicas). Leave it out to set "
            "the version live, in the user_config of the deployment that hosts the model "
            "(`model-<name>`, or the Ingress's `models:` for inline models)."
        ),
    )
    placement: Literal["inline", "replica", "deployment"] | None = Field(
        None,
        description=(
            "`inline` loads the model in the ingress process (cheap models); `replica` "
            "gives it its own Serve deployment (GPU, heavy CPU, own scaling). Default: "
            f"`replica` for {sorted(HEAVY_FORMATS)}, `inline` otherwise. `deployment` is "
            "an old name for `replica`."
        ),
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Format-specific adapter options, e.g. `device`."
    )
    num_cpus: float = Field(0.5, gt=0, le=256, description="CPUs per replica (replica only).")
    num_gpus: float = Field(0, ge=0, le=16, description="GPUs per replica (replica only).")
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources per replica, e.g. `{gpu_node: 1}` (replica only).",
    )
    accelerator_type: str | None = Field(
        None, description="Ray accelerator type the replica needs, e.g. `A100` (replica only)."
    )
    num_replicas: int = Field(1, ge=1, le=1000, description="Replicas (replica only).")
    autoscaling: AutoscalingConfig | None = Field(
        None, description="Scale replicas with load instead of a fixed `num_replicas`."
    )
    max_ongoing_requests: int = Field(
        64, ge=1, le=100_000, description="Calls one replica works on at once."
    )
    max_queued_requests: int = Field(
        -1,
        ge=-1,
        le=1_000_000,
        description=(
            "Calls that may wait for a replica; beyond, callers get BackPressureError "
            "(with a `cpu_pool`, they spill there). -1: no bound (Serve's default)."
        ),
    )
    max_batch_size: int = Field(
        16, ge=1, le=1024, description="Upper bound of the adaptive batch size."
    )
    batch_wait_timeout_s: float = Field(
        0.0,
        ge=0,
        le=1,
        description=(
            "Upper bound of the adaptive wait for a batch to fill; 0 batches only calls "
            "that queued while the previous batch ran, so a lone request never waits."
        ),
    )
    batch_target_ms: float = Field(
        20,
        gt=0,
        le=60_000,
        description=(
            "Latency one batch may take: the batch size grows while batches finish "
            "faster and shrinks when one is slower (AIMD)."
        ),
    )
    cpu_pool: CpuPoolConfig | None = Field(
        None, description="A CPU-only overflow pool for a GPU model (replica only)."
    )
    coalesce: bool = Field(
        True,
        description=(
            "Replica placement: each ingress replica groups concurrent calls to this "
            "model into one handle call (a handle call costs about 1 ms of CPU in each "
            "process, whatever it carries); up to `max_batch_size` calls ride together. "
            "Off for a model with a bounded `max_queued_requests`, whose overflow must "
            "be refused at once."
        ),
    )
    calls_in_flight: int = Field(
        2,
        ge=1,
        le=64,
        description=(
            "With `coalesce`: handle calls one ingress replica keeps in flight to this "
            "model; calls that arrive meanwhile wait and go together in the next."
        ),
    )
    timeout_s: float = Field(
        1.0, gt=0, le=60, description="Deadline for one call from the ingress to this model."
    )

    def resolved_placement(self, format: str) -> Placement:
        """Where the model runs, given its artifact ``format``."""
        if self.placement is None:
            return "replica" if format in HEAVY_FORMATS else "inline"
        return "inline" if self.placement == "inline" else "replica"

    def actor_options(self, *, cpu_pool: bool = False) -> dict[str, Any]:
        """Ray actor options of one replica (of the CPU pool when ``cpu_pool``)."""
        if cpu_pool:
            assert self.cpu_pool is not None
            return {"num_cpus": self.cpu_pool.num_cpus, "num_gpus": 0}
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.resources:
            options["resources"] = dict(self.resources)
        if self.accelerator_type:
            options["accelerator_type"] = self.accelerator_type
        return options


class AppArgs(BaseModel):
    """The application's ``args``: store, models, ingress limits and catalogue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: str = Field(
        "artifacts",
        description="Artifact store directory; relative paths resolve against $BLENDSERVE_HOME.",
    )
    models: dict[str, ModelConfig] = Field(min_length=1, description="Hosted models by name.")
    ingress: IngressConfig = Field(default_factory=IngressConfig, description="Ingress limits.")
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
