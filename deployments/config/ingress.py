"""Settings of the HTTP ingress process: limits, API keys, rate limits, CORS."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CorsConfig", "IngressConfig", "RateLimitConfig"]


class CorsConfig(BaseModel):
    """Which browser origins may call the API (CORS); none unless listed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_origins: tuple[str, ...] = Field(
        (), max_length=100, description="Exact origins, e.g. `https://shop.example.com`."
    )
    allow_credentials: bool = Field(
        False, description="Let browsers send cookies or HTTP auth along (never with `*`)."
    )
    max_age_s: int = Field(600, ge=0, le=86_400, description="How long a preflight is cached.")

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> CorsConfig:
        if "*" in self.allow_origins and self.allow_credentials:
            raise ValueError(
                "allow_origins: `*` with allow_credentials would let any site call the API "
                "as the user; list the origins"
            )
        return self


class RateLimitConfig(BaseModel):
    """The default per-key rate limit (a key's own entry may override it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_s: float = Field(
        1000, gt=0, le=1_000_000, description="Sustained requests per second per key."
    )
    burst: int = Field(2000, ge=1, le=10_000_000, description="Requests a key may send at once.")


class RequestLogConfig(BaseModel):
    """The one structured line each recommendation writes to its ingress replica's log."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: Literal["DEBUG", "INFO", "WARNING", "OFF"] = Field(
        "INFO", description="The line's log level; OFF writes none."
    )
    sample: float = Field(
        1.0, ge=0, le=1, description="The share of requests that write one (at random)."
    )


class IngressConfig(BaseModel):
    """Settings of the HTTP ingress process: limits, authentication, CORS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_k: int = Field(100, ge=1, le=1000, description="Largest `k` a request may ask for.")
    max_instances: int = Field(1000, ge=1, le=100_000, description="Largest predict batch.")
    max_exclude: int = Field(1000, ge=0, le=100_000, description="Longest `exclude` list.")
    max_body_bytes: int = Field(
        1_048_576, ge=1024, le=256 * 1_048_576, description="Largest request body (413 above)."
    )
    require_api_key: bool = Field(
        True,
        description=(
            "Every route but the health probes needs an API key with the route's scope. "
            "Turn off only behind a gateway that authenticates."
        ),
    )
    rate_limit: RateLimitConfig = Field(
        default_factory=RateLimitConfig, description="Per-key limit, per ingress replica."
    )
    cors: CorsConfig = Field(default_factory=CorsConfig, description="Browser origins allowed.")
    request_log: RequestLogConfig = Field(
        default_factory=RequestLogConfig,
        description="One JSON line per recommendation (request id, plan, arm, versions, "
        "catalogue version, per-node times and counts, degraded nodes, status, latency).",
    )
