"""An OpenTelemetry trace collector for tests: an HTTP server on 127.0.0.1 that takes
what OTLP/HTTP exporters send to ``/v1/traces`` (protobuf, as the collector's own
receiver does) and keeps every span, decoded with ``opentelemetry-proto``."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = ["CollectedSpan", "TraceCollector", "collecting_traces", "render_tree"]

_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


@dataclass(frozen=True)
class CollectedSpan:
    """One span as a replica exported it."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    failed: bool
    start_ns: int
    end_ns: int


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    return None if which is None else getattr(value, which)


@dataclass
class TraceCollector:
    """Spans received so far, and where exporters send them."""

    url: str
    spans: list[CollectedSpan] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def trace(self, trace_id: str) -> list[CollectedSpan]:
        """Every span of one trace received so far."""
        with self.lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def receive(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        CollectedSpan(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=_KINDS.get(span.kind, "unspecified"),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            resource=resource,
                            failed=span.status.code == 2,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                        )
                    )
        with self.lock:
            self.spans.extend(spans)


_SHOWN = (
    "blendserve.model",
    "blendserve.model.version",
    "blendserve.items",
    "blendserve.batch.size",
)


def render_tree(spans: list[CollectedSpan]) -> str:
    """One trace as an indented tree: each span's process, name, duration and the
    attributes an operator reads first (as docs/debugging.md shows it)."""
    children: dict[str, list[CollectedSpan]] = {}
    for span in sorted(spans, key=lambda s: s.start_ns):
        children.setdefault(span.parent_id, []).append(span)
    known = {s.span_id for s in spans}
    lines: list[str] = []

    def walk(span: CollectedSpan, depth: int) -> None:
        ms = (span.end_ns - span.start_ns) / 1e6
        notes = " ".join(
            f"{key.removeprefix('blendserve.')}={span.attributes[key]}"
            for key in _SHOWN
            if key in span.attributes
        )
        where = span.resource.get("blendserve.deployment", "?")
        lines.append(
            f"{'  ' * depth}{span.name} [{where}, {span.kind}] {ms:.2f} ms {notes}".rstrip()
        )
        for child in children.get(span.span_id, []):
            walk(child, depth + 1)

    for root in [s for s in spans if s.parent_id not in known]:
        walk(root, 0)
    return "\n".join(lines)


@contextmanager
def collecting_traces() -> Iterator[TraceCollector]:
    """A collector listening on a free port of 127.0.0.1 until the block ends."""
    collector: TraceCollector | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            assert collector is not None
            collector.receive(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: one line per export would drown the test output."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    collector = TraceCollector(f"http://127.0.0.1:{server.server_address[1]}/v1/traces")
    thread = threading.Thread(target=server.serve_forever, name="trace-collector", daemon=True)
    thread.start()
    try:
        yield collector
    finally:
        server.shutdown()
        server.server_close()
