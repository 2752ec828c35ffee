"""Every Prometheus metric blendserve records, declared here and nowhere else
(through ``ray.serve.metrics``).

Ray's metrics agent on each node exports them (``make run`` prints the address).
Labels carry routes as templates (``/v1/recommend/{use_case}``), known use case,
node and model names, and status codes: never a user id, an item id or a key.
The README's 'Metrics' table documents each one; a unit test keeps them in step.

Counters and histograms are buffered in process (:class:`Counter`,
:class:`Histogram` here): a record on the request path is a dict update, and a
background thread (:func:`start_flushing`, called by each deployment) hands the
totals and values to Ray every :data:`FLUSH_EVERY_S`, through the metric's own
recorder with its tags resolved once per label set. Ray's own ``observe``
resolves and validates tags and reads the request context on every call (about
5 us each, a dozen per request).
Gauges are set directly: they are set rarely.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from ray.serve import metrics as serve_metrics
from ray.serve.metrics import Gauge

__all__ = [
    "FLUSH_EVERY_S",
    "LATENCY_MS",
    "BatchMetrics",
    "Counter",
    "EventLogMetrics",
    "Histogram",
    "IngressMetrics",
    "RolloutMetrics",
    "flush_metrics",
    "start_flushing",
]

FLUSH_EVERY_S = 1.0
"""How often buffered counters and histograms reach Ray (and so Prometheus)."""

_TagKey = tuple[tuple[str, str], ...]
_LOCK = threading.Lock()
_BUFFERED: list[Counter | Histogram] = []
_flusher: threading.Thread | None = None


def _key(tags: dict[str, str] | None) -> _TagKey:
    return tuple(tags.items()) if tags else ()


def start_flushing() -> None:
    """Flush this process's buffered metrics every :data:`FLUSH_EVERY_S` from now on,
    in a daemon thread (once per process; each deployment calls it when it starts)."""
    global _flusher
    with _LOCK:
        if _flusher is not None:
            return
        _flusher = threading.Thread(target=_flush_forever, name="metrics-flush", daemon=True)
        _flusher.start()


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_EVERY_S)
        flush_metrics()


def flush_metrics() -> None:
    """Hand every buffered record of this process to Ray now."""
    with _LOCK:
        metrics = list(_BUFFERED)
    for metric in metrics:
        metric.flush()


class Counter:
    """A Ray Serve counter whose increments add up in process until the next flush."""

    def __init__(self, name: str, description: str, tag_keys: tuple[str, ...] = ()) -> None:
        self.name = name
        self._metric = serve_metrics.Counter(
            name,
            description=description,
            tag_keys=tag_keys,  # type: ignore[arg-type]
        )
        self._pending: dict[_TagKey, float] = {}
        with _LOCK:
            _BUFFERED.append(self)

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        """Add ``value`` for the label set ``tags``."""
        key = _key(tags)
        with _LOCK:
            self._pending[key] = self._pending.get(key, 0.0) + value

    def flush(self) -> None:
        """Hand the totals since the last flush to Ray, one increment per label set."""
        with _LOCK:
            pending, self._pending = self._pending, {}
        for key, total in pending.items():
            self._metric.inc(total, tags=dict(key))


class Histogram:
    """A Ray Serve histogram whose observations wait in process until the next flush."""

    def __init__(
        self,
        name: str,
        description: str,
        boundaries: Sequence[float],
        tag_keys: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self._metric = serve_metrics.Histogram(
            name,
            description=description,
            boundaries=list(boundaries),
            tag_keys=tag_keys,  # type: ignore[arg-type]
        )
        self._pending: dict[_TagKey, list[float]] = {}
        self._resolved: dict[_TagKey, dict[str, str]] = {}
        with _LOCK:
            _BUFFERED.append(self)

    def set_default_tags(self, tags: dict[str, str]) -> None:
        """Labels every value gets unless ``observe`` names them."""
        self._metric.set_default_tags(tags)
        self._resolved.clear()

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        """Record one value for the label set ``tags``."""
        key = _key(tags)
        with _LOCK:
            values = self._pending.get(key)
            if values is None:
                self._pending[key] = [value]
            else:
                values.append(value)

    def flush(self) -> None:
        """Hand the values since the last flush to Ray."""
        with _LOCK:
            pending, self._pending = self._pending, {}
        recorder: Any = getattr(self._metric, "_metric", None)
        for key, values in pending.items():
            if recorder is None:  # a Ray without the recorder this relies on: the slow way
                for value in values:
                    self._metric.observe(value, tags=dict(key))
                continue
            tags = self._resolved.get(key)
            if tags is None:
                # The same tags Ray's observe would build: defaults (deployment,
                # replica, application) under ours, validated once.
                metric: Any = self._metric  # Ray's tag helpers are untyped
                tags = self._resolved[key] = metric._get_final_tags(dict(key))
                metric._validate_tags(tags)
            for value in values:
                recorder.record(value, tags=tags)


LATENCY_MS = [0.5, 1, 2, 5, 10, 20, 50, 100, 150, 200, 250, 500, 1000, 2500, 5000, 10000]
"""Histogram buckets in milliseconds: fine below the budgets, coarse above."""


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
            tag_keys=(  # type: ignore[arg-type]
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
            description="Time each DAG node took, by use case and node.",
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
