"""Every Prometheus metric blendserve records, declared here and nowhere else
(through ``ray.serve.metrics``).

Ray's metrics agent on each node exports them (``make run`` prints the address).
Labels carry routes as templates (``/v1/recommend/{use_case}``), known use case,
node and model names, and status codes: never a user id, an item id or a key.
The README's 'Metrics' table documents each one; a unit test keeps them in step.

Counters and histograms are buffered in process (``metric_buffers.py``); gauges are
set directly: they are set rarely.
"""

from __future__ import annotations

from collections.abc import Sequence

from deployments.metric_buffers import (
    FLUSH_EVERY_S,
    Counter,
    Gauge,
    Histogram,
    flush_metrics,
    start_flushing,
)

__all__ = [
    "FLUSH_EVERY_S",
    "LATENCY_MS",
    "NODE_LATENCY_SAMPLE_EVERY",
    "BatchMetrics",
    "Counter",
    "EventLogMetrics",
    "Histogram",
    "IngressMetrics",
    "RolloutMetrics",
    "flush_metrics",
    "start_flushing",
]

LATENCY_MS = [0.5, 1, 2, 5, 10, 20, 50, 100, 150, 200, 250, 500, 1000, 2500, 5000, 10000]
"""Histogram buckets in milliseconds: fine below the budgets, coarse above."""

NODE_LATENCY_SAMPLE_EVERY = 8
"""``blendserve_node_latency_ms`` records one recommendation in this many (per ingress
replica). Ray's metrics agent replays every histogram observation one by one, about
10 us each, in a burst at each export: at six DAG nodes a request, node latencies
were over half of it, and the burst (half a second of a core every 10 s at 450
requests/s) stalled answers on a two-core node. A uniform sample keeps quantiles
and means unbiased; only ``_count`` is a fraction of the requests."""


class RolloutMetrics:
    """What a model's rollout reports (a ``RolloutObserver``): each version's status,
    and while a candidate runs, the calls of live and canary and the shadow's answers.

    Live calls without a candidate are not recorded here: the ingress measures them
    per DAG node and route.
    """

    def __init__(self, placement: str) -> None:
        self.placement = placement
        self.info = Gauge(
            "blendserve_model_info",
            description=(
                "1 for each model version this process holds, with its role "
                "(live, canary, shadow) and status (loading, serving, failed, rolled_back)."
            ),
            tag_keys=(
                "model",
                "version",
                "role",
                "status",
                "placement",
            ),
        )
        self.calls = Counter(
            "blendserve_model_calls_total",
            description="Calls to a model while it has a canary, by version, role and outcome.",
            tag_keys=(
                "model",
                "version",
                "role",
                "outcome",
            ),
        )
        self.call_latency = Histogram(
            "blendserve_model_call_latency_ms",
            description="Time of a model call while it has a canary, by version and role.",
            boundaries=LATENCY_MS,
            tag_keys=(
                "model",
                "version",
                "role",
            ),
        )
        self.shadow_latency = Histogram(
            "blendserve_shadow_latency_ms",
            description="Time of a mirrored call to a shadow version (off the request path).",
            boundaries=LATENCY_MS,
            tag_keys=(
                "model",
                "version",
                "outcome",
            ),
        )
        self.shadow_overlap = Histogram(
            "blendserve_shadow_overlap",
            description="Overlap@k of a shadow version's items with the live answer (1 = same).",
            boundaries=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0],
            tag_keys=(
                "model",
                "version",
            ),
        )
        self.rollbacks = Counter(
            "blendserve_canary_rollbacks_total",
            description="Canaries taken out of traffic by their rollback thresholds.",
            tag_keys=(
                "model",
                "version",
            ),
        )
        self._shown: dict[str, set[tuple[str, str, str]]] = {}

    def on_states(self, model: str, states: Sequence[tuple[str, str, str]]) -> None:
        """Set 1 for each (version, role, status) now, 0 for those gone since."""
        now = set(states)
        for version, role, status in self._shown.get(model, set()) | now:
            tags = {"model": model, "version": version, "role": role, "status": status}
            tags["placement"] = self.placement
            self.info.set(1 if (version, role, status) in now else 0, tags)
        self._shown[model] = now

    def on_call(self, model: str, version: str, role: str, ms: float, error: bool) -> None:
        """Count a live or canary call and its latency."""
        tags = {"model": model, "version": version, "role": role}
        self.calls.inc(tags={**tags, "outcome": "error" if error else "ok"})
        self.call_latency.observe(ms, tags=tags)

    def on_shadow(
        self, model: str, version: str, ms: float, error: bool, overlap: float | None
    ) -> None:
        """Record a mirrored call's latency, outcome and overlap with the live answer."""
        tags = {"model": model, "version": version}
        self.shadow_latency.observe(ms, tags={**tags, "outcome": "error" if error else "ok"})
        if overlap is not None:
            self.shadow_overlap.observe(overlap, tags=tags)

    def on_rollback(self, model: str, version: str) -> None:
        """Count a rollback."""
        self.rollbacks.inc(tags={"model": model, "version": version})


class BatchMetrics:
    """What a model replica's adaptive batching records, labelled by its model."""

    def __init__(self, model: str) -> None:
        self.sizes = Histogram(
            "blendserve_batch_size",
            description="Calls served by one batched forward pass.",
            boundaries=[1, 2, 4, 8, 16, 32, 64, 128, 256],
            tag_keys=("model",),
        )
        self.size_limit = Gauge(
            "blendserve_batch_size_limit",
            description="The adaptive batch size cap now in force.",
            tag_keys=("model",),
        )
        self.sizes.set_default_tags({"model": model})
        self.size_limit.set_default_tags({"model": model})


class EventLogMetrics:
    """What the event log records: events stored, by kind."""

    def __init__(self) -> None:
        self.feedback = Counter(
            "blendserve_feedback_events_total",
            description=(
                "Feedback events stored, by use case, event and outcome (`counted`, or "
                "`repeat` when the item already had that event)."
            ),
            tag_keys=(
                "use_case",
                "event",
                "outcome",
            ),
        )
        self.served = Counter(
            "blendserve_served_lists_total",
            description="Recommendation lists written to the event log, by use case.",
            tag_keys=("use_case",),
        )
        self.online_items = Gauge(
            "blendserve_online_state_items",
            description=(
                "Items the online learning state holds (bounded by events.online.max_items)."
            ),
        )
        self.online_forgotten = Counter(
            "blendserve_online_state_forgotten_total",
            description="Items the online learning state forgot: decayed to nothing, or "
            "the least seen beyond max_items.",
        )


class IngressMetrics:
    """Every metric the ingress records."""

    def __init__(self) -> None:
        self.requests = Counter(
            "blendserve_http_requests_total",
            description="HTTP requests answered, by route template, method and status.",
            tag_keys=(
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
            description=(
                "Time each DAG node took, by use case and node "
                f"(one recommendation in {NODE_LATENCY_SAMPLE_EVERY})."
            ),
            boundaries=LATENCY_MS,
            tag_keys=(
                "use_case",
                "node",
            ),
        )
        self.stage_time = Counter(
            "blendserve_stage_time_ms_total",
            description=(
                "Milliseconds spent in each stage of recommendations in the ingress, by use "
                "case and stage: parse (body to request), blend (the whole DAG), answer "
                "(result ids, provenance and serialisation), log (the served-list record). "
                "Divided by blendserve_recommend_latency_ms_count: the mean per request."
            ),
            tag_keys=(
                "use_case",
                "stage",
            ),
        )
        self.degraded_sources = Counter(
            "blendserve_degraded_sources_total",
            description="Sources, reranks or stacks left out of a blend: failed or late.",
            tag_keys=(
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
        self.explored_positions = Counter(
            "blendserve_explored_positions_total",
            description="Positions that showed an exploration item (a use case's "
            "`explore`), by use case.",
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
                "rate_limited, body_too_large; or by it: event_log_backlog."
            ),
            tag_keys=("reason",),
        )
        self.in_flight = Gauge(
            "blendserve_ingress_requests_in_flight",
            description="Requests inside this ingress replica now (sampled every second).",
        )
        self.precomputed_age = Gauge(
            "blendserve_precomputed_age_seconds",
            description=(
                "How old each `precomputed` model's lists are (since `blendserve "
                "batch-score` computed them), by model; sampled every second."
            ),
            tag_keys=("model",),
        )
        self.served_buffer_bytes = Gauge(
            "blendserve_served_buffer_bytes",
            description=(
                "Served lists this ingress replica holds until the event log stores them "
                "(sampled every second); at `events.served_buffer_mb` it refuses new "
                "recommendations (503 `event_log_backlog`)."
            ),
        )
        self.model_calls_in_flight = Gauge(
            "blendserve_model_calls_in_flight",
            description="Calls from this ingress replica waiting on a model deployment.",
            tag_keys=("model",),
        )
        self.rollouts = RolloutMetrics("inline")
