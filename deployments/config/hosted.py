"""The hosted models' settings in an application's ``args``: where each runs
(inline in the ingress or a replica of its own), its resources, batching,
autoscaling and CPU overflow pool (:class:`ModelConfig`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

__all__ = ["HEAVY_FORMATS", "AutoscalingConfig", "CpuPoolConfig", "ModelConfig", "Placement"]

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
