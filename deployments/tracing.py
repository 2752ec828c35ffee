"""OpenTelemetry traces of each request: the HTTP request, each blend node, each model
call, connected across deployment handles.

Off by default (``args.tracing.endpoint`` unset): then :func:`tracer` is ``None``
and every hook here returns at once, so tracing that is off costs a ``None`` check
per request. On, each Serve replica (ingress and model servers) keeps its own
``TracerProvider`` (not the global one, which Ray may own) whose batch processor
sends ended spans over OTLP/HTTP every ``flush_interval_s``.

A trace crosses a handle as W3C trace-context headers in a :class:`CallOrigin`,
which travels with each call, coalesced or not: one handle call may carry several
requests, so the context is per call, not per handle call. The model replica opens
one span per call it served, a child of that call's client span, all spanning the
one forward pass they shared.

The spans: ``POST /v1/recommend/{use_case}`` (server, in the ingress; continues a
caller's ``traceparent``), ``node <name>`` for each node the request ran (a source's
span holds its model's call), ``model <name> <method>`` (client, in the ingress)
and its counterpart in the model's replica (server). Attributes are prefixed
``blendserve.``: request id, use case, plan version, arms, model name and version,
items, failures, batch size.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from ray.serve.context import _get_serve_request_context  # Serve has no public getter

from blending.spans import NodeSpan, NodeSpans, SpanValue
from deployments.config.tracing import TracingConfig

__all__ = [
    "CallOrigin",
    "ModelCall",
    "call_origin",
    "configure",
    "current_trace_id",
    "finish_request_span",
    "model_call",
    "node_spans",
    "record_served",
    "request_span",
    "shutdown",
    "tracer",
]

_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class CallOrigin:
    """Which request a model call serves: Serve's request id (so the model replica's
    lines name every request of a coalesced batch) and the caller's trace context
    (W3C headers; empty when the request is not traced)."""

    request_id: str = ""
    trace: Mapping[str, str] | None = None


class _Tracing:
    """This process's tracer, and the blend's span hook built on it."""

    def __init__(self, tracer: Tracer, provider: TracerProvider) -> None:
        self.tracer = tracer
        self.provider = provider
        self.nodes = _OtelNodeSpans(tracer)


_state: _Tracing | None = None


def configure(config: TracingConfig, deployment: str, exporter: SpanExporter | None = None) -> None:
    """Start tracing in this process as ``config`` says (once: a later call with
    tracing on keeps the first set-up; one with tracing off turns it off).

    ``deployment`` names the replica's deployment in each span's resource;
    ``exporter`` replaces OTLP (tests pass the SDK's in-memory exporter, which then
    receives each span as it ends).
    """
    global _state
    if not config.enabled and exporter is None:
        _state = None
        return
    if _state is not None:
        return
    resource = Resource.create(
        {
            "service.name": config.service_name,
            "service.instance.id": f"{deployment}-{os.getpid()}",
            "blendserve.deployment": deployment,
        }
    )
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(config.sample))
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        otlp = OTLPSpanExporter(endpoint=config.endpoint)
        delay_ms = config.flush_interval_s * 1000.0
        provider.add_span_processor(BatchSpanProcessor(otlp, schedule_delay_millis=delay_ms))
    _state = _Tracing(provider.get_tracer("blendserve"), provider)


def shutdown() -> None:
    """Send what is pending and stop tracing in this process."""
    global _state
    if _state is not None:
        _state.provider.shutdown()
        _state = None


def tracer() -> Tracer | None:
    """This process's tracer; ``None`` when tracing is off."""
    return _state.tracer if _state is not None else None


def _recording() -> Span | None:
    """The current span, if tracing is on and it is being recorded."""
    if _state is None:
        return None
    span = trace.get_current_span()
    return span if span.is_recording() else None


class _AsgiHeaders(Getter[list[tuple[bytes, bytes]]]):
    """Reads W3C trace headers out of an ASGI scope's header list."""

    def get(self, carrier: list[tuple[bytes, bytes]], key: str) -> list[str] | None:
        wanted = key.encode("latin-1")
        found = [value.decode("latin-1") for name, value in carrier if name == wanted]
        return found or None

    def keys(self, carrier: list[tuple[bytes, bytes]]) -> list[str]:
        return [name.decode("latin-1") for name, _ in carrier]


_ASGI_HEADERS = _AsgiHeaders()


@contextmanager
def request_span(method: str, headers: list[tuple[bytes, bytes]]) -> Iterator[Span]:
    """The server span of one HTTP request, continuing the caller's trace when its
    ``traceparent`` says so; named once routing is done (:func:`finish_request_span`).
    Only call when :func:`tracer` is not ``None``."""
    assert _state is not None
    parent = _PROPAGATOR.extract(headers, getter=_ASGI_HEADERS)
    attributes = {"http.request.method": method}
    request_id = _get_serve_request_context().request_id
    if request_id:
        attributes["blendserve.request_id"] = request_id
    with _state.tracer.start_as_current_span(
        method, context=parent, kind=SpanKind.SERVER, attributes=attributes
    ) as span:
        yield span


def finish_request_span(span: Span, method: str, route: str, status: int) -> None:
    """Name the span after the route that answered (its template: few names, not one
    per path) and record the status; a 5xx marks the span failed."""
    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))


def record_served(
    use_case: str,
    plan_version: str,
    variant: Mapping[str, str],
    model_versions: Mapping[str, str],
    degraded: bool,
) -> None:
    """Note on the request's span what served it: use case, plan, arms, versions."""
    span = _recording()
    if span is None:
        return
    attributes: dict[str, SpanValue] = {
        "blendserve.use_case": use_case,
        "blendserve.plan_version": plan_version,
        "blendserve.degraded": degraded,
    }
    attributes.update({f"blendserve.arm.{node}": arm for node, arm in variant.items()})
    attributes.update(
        {f"blendserve.model_version.{model}": v for model, v in model_versions.items()}
    )
    span.set_attributes(attributes)


def current_trace_id() -> str | None:
    """The current recorded trace's id (32 hex digits), for logs and records."""
    span = _recording()
    if span is None:
        return None
    return format(span.get_span_context().trace_id, "032x")


def node_spans() -> NodeSpans | None:
    """The blend's span hook for this request: ``None`` unless it is traced (an
    unsampled request opens no node spans at all)."""
    if _state is None or _recording() is None:
        return None
    return _state.nodes


class _OtelNodeSpans:
    """``blending.spans.NodeSpans`` on OpenTelemetry."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    def node(self, name: str, kind: str) -> AbstractContextManager[NodeSpan]:
        attributes = {"blendserve.node": name, "blendserve.node.kind": kind}
        span: AbstractContextManager[NodeSpan] = self._tracer.start_as_current_span(
            f"node {name}", attributes=attributes
        )
        return span


def call_origin() -> CallOrigin:
    """This request's origin for a model call made now (in the current span)."""
    request_id = _get_serve_request_context().request_id
    if _recording() is None:
        return CallOrigin(request_id)
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return CallOrigin(request_id, carrier)


@contextmanager
def model_call(model: str, method: str) -> Iterator[CallOrigin]:
    """A client span around one call to ``model``'s deployment (when traced), and the
    origin the call carries (its trace context is this span's)."""
    if _recording() is None:
        yield call_origin()
        return
    assert _state is not None
    attributes = {"blendserve.model": model, "rpc.method": method}
    with _state.tracer.start_as_current_span(
        f"model {model} {method}", kind=SpanKind.CLIENT, attributes=attributes
    ):
        yield call_origin()


class ModelCall:
    """The model replica's side of a batch of calls: once it has run, one server span
    per traced call, children of their callers' spans, spanning the shared pass."""

    def __init__(self, model: str, method: str, origins: Iterable[CallOrigin | None]) -> None:
        self.model = model
        self.method = method
        self.origins = list(origins)
        self.traced = [
            (call, origin)
            for call, origin in enumerate(self.origins)
            if origin is not None and origin.trace
        ]
        self.started_ns = time.time_ns()

    def finish(self, versions: Sequence[str | None], size: int) -> None:
        """End the traced calls' spans, each with the version that answered it
        (``versions``: one per call of the batch; ``None``: that call failed)."""
        if _state is None or not self.traced:
            return
        ended_ns = time.time_ns()
        for call, origin in self.traced:
            version = versions[call] if call < len(versions) else None
            assert origin.trace is not None
            parent = _PROPAGATOR.extract(dict(origin.trace))
            attributes: dict[str, Any] = {
                "blendserve.model": self.model,
                "blendserve.batch.size": size,
                "blendserve.request_id": origin.request_id,
                "rpc.method": self.method,
            }
            span = _state.tracer.start_span(
                f"model {self.model} {self.method}",
                context=parent,
                kind=SpanKind.SERVER,
                attributes=attributes,
                start_time=self.started_ns,
            )
            if version is None:
                span.set_status(Status(StatusCode.ERROR, "the call failed"))
            else:
                span.set_attribute("blendserve.model.version", version)
            span.end(end_time=ended_ns)
