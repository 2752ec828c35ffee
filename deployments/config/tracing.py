"""Where the app's OpenTelemetry traces go: off unless an OTLP endpoint is set."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["TracingConfig"]


class TracingConfig(BaseModel):
    """Traces of each request through the ingress, its blend's nodes and its model
    calls (``deployments/tracing.py``), exported over OTLP/HTTP.

    A collector's credentials are not config: set ``OTEL_EXPORTER_OTLP_TRACES_HEADERS``
    (``key=value,...``) in the app's ``runtime_env``, which the exporter reads.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str | None = Field(
        None,
        max_length=2048,
        description=(
            "OTLP/HTTP traces URL, e.g. `http://otel-collector:4318/v1/traces`; null (the "
            "default): no tracing, at no cost."
        ),
    )
    sample: float = Field(
        1.0,
        ge=0,
        le=1,
        description=(
            "The share of requests that start a trace; a request carrying a W3C "
            "`traceparent` follows its caller's decision instead."
        ),
    )
    service_name: str = Field(
        "blendserve", min_length=1, max_length=128, description="`service.name` of the spans."
    )
    flush_interval_s: float = Field(
        1.0, gt=0, le=60, description="How often each replica sends the spans it has ended."
    )

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        return value

    @property
    def enabled(self) -> bool:
        """Whether spans are made and exported."""
        return self.endpoint is not None
