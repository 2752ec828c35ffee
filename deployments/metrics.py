"""The ingress's Prometheus metrics, through ``ray.serve.metrics``.

Ray's metrics agent on each node exports them (``make run`` prints the address).
Labels carry routes as templates (``/v1/recommend/{use_case}``), known use case,
node and model names, and status codes: never a user id, an item id or a key.
The README's 'Metrics' table documents each one; a unit test keeps them in step.
"""

from __future__ import annotations

from ray.serve.metrics import Counter, Gauge, Histogram

__all__ = ["LATENCY_MS", "IngressMetrics", "model_info_gauge", "set_model_status"]

LATENCY_MS = [0.5, 1, 2, 5, 10, 20, 50, 100, 150, 200, 250, 500, 1000, 2500, 5000, 10000]
"""Histogram buckets in milliseconds: fine below the budgets, coarse above."""


def model_info_gauge() -> Gauge:
    """``blendserve_model_info``: 1 per model, version, placement and status."""
    return Gauge(
        "blendserve_model_info",
        description="1 for each model version this process serves, with its status.",
        tag_keys=(  # type: ignore[arg-type]
            "model",
            "version",
            "placement",
            "status",
        ),
    )


MODEL_STATUSES = ("serving", "failed")


def set_model_status(gauge: Gauge, model: str, version: str, placement: str, status: str) -> None:
    """Mark ``model`` at ``version`` as ``status`` (1) and not any other status (0)."""
    tags = {"model": model, "version": version, "placement": placement}
    for other in MODEL_STATUSES:
        gauge.set(1 if other == status else 0, {**tags, "status": other})


class IngressMetrics:
    """Every metric the ingress records."""

    def __init__(self) -> None:
        self.requests = Counter(
            "blendserve_http_requests_total",
            description="HTTP requests answered, by route template, method and status.",
            tag_keys=(  # type: ignore[arg-type]
                "route",
                "method",
                "status",
            ),
        )
        self.latency = Histogram(
            "blendserve_http_request_latency_ms",
            description="Time from receiving a request to its last response byte, by route.",
            boundaries=LATENCY_MS,
            tag_keys=("route",),
        )
        self.recommend_latency = Histogram(
            "blendserve_recommend_latency_ms",
            description="Time to build a recommendation, by use case.",
            boundaries=LATENCY_MS,
            tag_keys=("use_case",),
        )
        self.node_latency = Histogram(
            "blendserve_node_latency_ms",
            description="Time each DAG node took, by use case and node.",
            boundaries=LATENCY_MS,
            tag_keys=(  # type: ignore[arg-type]
                "use_case",
                "node",
            ),
        )
        self.degraded_sources = Counter(
            "blendserve_degraded_sources_total",
            description="Sources, reranks or stacks left out of a blend: failed or late.",
            tag_keys=(  # type: ignore[arg-type]
                "use_case",
                "node",
                "reason",
            ),
        )
        self.degraded_responses = Counter(
            "blendserve_degraded_responses_total",
            description="Recommendations answered with `degraded: true`, by use case.",
            tag_keys=("use_case",),
        )
        self.deadline_missed = Counter(
            "blendserve_deadline_missed_total",
            description="Recommendations answered after their use case's budget.",
            tag_keys=("use_case",),
        )
        self.rejected = Counter(
            "blendserve_rejected_requests_total",
            description=(
                "Requests refused before their handler: unauthenticated, forbidden, "
                "rate_limited, body_too_large."
            ),
            tag_keys=("reason",),
        )
        self.in_flight = Gauge(
            "blendserve_ingress_requests_in_flight",
            description="Requests inside this ingress replica now (sampled every second).",
        )
        self.model_calls_in_flight = Gauge(
            "blendserve_model_calls_in_flight",
            description="Calls from this ingress replica waiting on a model deployment.",
            tag_keys=("model",),
        )
        self.model_info = model_info_gauge()
