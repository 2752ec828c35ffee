"""A model's live versions, as the ``user_config`` of the deployment that hosts it.

Plain pydantic, no Ray: ``deployments/config/app.py`` validates where a config puts
them, ``deployments/hosting/rollout.py`` acts on them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CanaryConfig",
    "RollbackConfig",
    "RolloutConfig",
    "ShadowConfig",
    "model_deployment",
]


class CanaryConfig(BaseModel):
    """A candidate version that serves a sticky share of users beside the live one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, description="The candidate version in the store.")
    percent: float = Field(gt=0, lt=100, description="Share of users it serves, in percent.")
    salt: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description=(
            "Salt of the user hash (default `<model>-canary`): a new salt draws a new "
            "group of users."
        ),
    )


class ShadowConfig(BaseModel):
    """A candidate version that sees a copy of live calls; its answers are discarded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, description="The candidate version in the store.")
    percent: float = Field(
        100, gt=0, le=100, description="Share of live calls mirrored to it, in percent."
    )
    k: int = Field(10, ge=1, le=1000, description="Depth of the overlap@k with the live answer.")


class RollbackConfig(BaseModel):
    """When a canary is taken out of traffic by itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_s: float = Field(60, gt=0, le=86_400, description="Sliding window judged.")
    min_calls: int = Field(
        20, ge=1, le=1_000_000, description="Canary calls in the window before judging."
    )
    max_error_rate: float = Field(
        0.05, ge=0, le=1, description="Largest share of failed canary calls tolerated."
    )
    max_p99_ms: float | None = Field(
        None, gt=0, le=600_000, description="Largest p99 latency of canary calls (off if unset)."
    )


class RolloutConfig(BaseModel):
    """A model's live versions: what serves, and the candidates beside it.

    It lives in the ``user_config`` of the deployment that hosts the model, so
    ``serve deploy`` changes it through ``reconfigure``, without restarting replicas.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, description="The version serving live traffic.")
    canary: CanaryConfig | None = Field(None, description="A candidate for a share of users.")
    shadow: ShadowConfig | None = Field(None, description="A candidate that sees mirrored calls.")
    rollback: RollbackConfig = Field(
        default_factory=RollbackConfig, description="Thresholds that roll a canary back."
    )

    @model_validator(mode="after")
    def _candidates_differ(self) -> RolloutConfig:
        for role in ("canary", "shadow"):
            candidate = getattr(self, role)
            if candidate is not None and candidate.version == self.version:
                raise ValueError(f"{role}.version {candidate.version!r} is the live version")
        return self

    def versions(self) -> list[str]:
        """Every version this config needs loaded: live first."""
        found = [self.version]
        for candidate in (self.canary, self.shadow):
            if candidate is not None and candidate.version not in found:
                found.append(candidate.version)
        return found


def model_deployment(model: str) -> str:
    """The name of the Serve deployment that hosts ``model`` in its own replicas."""
    return f"model-{model}"
