"""Traces of a request (issue 22): with the SDK's in-process exporter, one request
makes one connected trace through the HTTP span, each node and the model call, whose
context crosses to the model's side as a pickled ``CallOrigin`` (as over a handle),
coalesced or not; tracing that is off, or a caller that does not sample, makes none.
The integration suite checks the same across real Serve replicas
(``tests/integration/test_traces_across_replicas.py``)."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from scripted_models import Scripted, ScriptedModels

from blending.candidates import BlendContext, SourceResult
from blending.dag import BlendPlan
from blending.spec import UseCaseSpec
from deployments import tracing
from deployments.config import TracingConfig
from deployments.hosting.coalescing import CallCoalescing
from deployments.hosting.gateway import RemoteModel
from models.base import RecommendQuery

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"

PLAN = BlendPlan(
    "home",
    UseCaseSpec.model_validate(
        {
            "output": "out",
            "nodes": {
                "cf": {"kind": "source", "model": "mf", "candidates": 5},
                "pop": {"kind": "source", "model": "popularity"},
                "mix": {"kind": "blend", "weights": {"cf": 0.7, "pop": 0.3}},
                "out": {"kind": "filter", "input": "mix"},
            },
        }
    ),
)


class _Replica:
    """The model's deployment as the ingress reaches it: arguments cross pickled, as
    over a handle, and the model's side closes its spans as ``ModelServer`` does."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.batches: list[int] = []
        self.recommend_many = self  # the handle's method; `.remote` below

    def remote(self, calls: list[Any]) -> asyncio.Task[list[SourceResult]]:
        return asyncio.ensure_future(self._serve(pickle.loads(pickle.dumps(calls))))

    async def _serve(self, calls: list[Any]) -> list[SourceResult]:
        traced = tracing.ModelCall("mf", "recommend", [call[3] for call in calls])
        self.batches.append(len(calls))
        await asyncio.sleep(self.delay_s)
        traced.finish(["7"] * len(calls), len(calls))
        return [SourceResult.from_pairs("mf", "7", [("a", 0.9), ("b", 0.5)]) for _ in calls]


class _Gateway(ScriptedModels):
    """Popularity in process; mf in its "deployment", through ``RemoteModel``."""

    def __init__(self, replica: _Replica, in_flight: int = 4) -> None:
        super().__init__(popularity=Scripted([("c", 30.0), ("a", 10.0)]))
        self.mf = RemoteModel("mf", replica, 5.0, coalesce=CallCoalescing(8, in_flight))  # type: ignore[arg-type]

    def is_inline(self, model: str) -> bool:
        return model != "mf"

    async def recommend(self, model: str, query: RecommendQuery, n: int) -> SourceResult:
        if model == "mf":
            return await self.mf.recommend(query, n)
        return await super().recommend(model, query, n)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure(TracingConfig(), "Ingress", exporter=exporter)
    yield exporter
    tracing.shutdown()


def _headers(sampled: bool = True) -> list[tuple[bytes, bytes]]:
    flags = "01" if sampled else "00"
    return [(b"traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-{flags}".encode())]


async def _request(gateway: _Gateway, user: str, sampled: bool = True) -> list[str]:
    """One request as the ingress serves it: the HTTP span, then the blend inside it."""
    with tracing.request_span("POST", _headers(sampled)) as span:
        ctx = BlendContext(user, 3, request_id=user, spans=tracing.node_spans())
        outcome = await PLAN.run(ctx, gateway)
        tracing.finish_request_span(span, "POST", "/v1/recommend/{use_case}", 200)
    return [c.item_id for c in outcome.items]


def _hex(span: ReadableSpan) -> tuple[str, str, str]:
    context = span.get_span_context()
    assert context is not None
    parent = format(span.parent.span_id, "016x") if span.parent else ""
    return format(context.trace_id, "032x"), format(context.span_id, "016x"), parent


def _call_pair(finished: Sequence[ReadableSpan]) -> tuple[ReadableSpan, ReadableSpan]:
    """The ingress's client span of the mf call, and the replica's server span."""
    calls = [s for s in finished if s.name == "model mf recommend"]
    (client,) = [s for s in calls if s.kind is SpanKind.CLIENT]
    (server,) = [s for s in calls if s.kind is SpanKind.SERVER]
    return client, server


def _by_name(finished: Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in finished}


def test_one_request_is_one_connected_trace_through_nodes_and_the_model_call(
    spans: InMemorySpanExporter,
) -> None:
    items = asyncio.run(_request(_Gateway(_Replica()), "u1"))
    assert items == ["a", "c", "b"]
    finished = spans.get_finished_spans()
    named = _by_name(finished)
    assert set(named) == {
        "POST /v1/recommend/{use_case}",
        "node cf",
        "node pop",
        "node mix",
        "node out",
        "model mf recommend",
    }
    ids = {span.name: _hex(span) for span in finished}
    assert {trace for trace, _, _ in ids.values()} == {CALLER_TRACE}
    http = ids["POST /v1/recommend/{use_case}"]
    assert http[2] == CALLER_SPAN, "the request continues its caller's trace"
    for node in ("node cf", "node pop", "node mix", "node out"):
        assert ids[node][2] == http[1], f"{node} is a child of the request"
    # Two spans named `model mf recommend`: the ingress's call and the replica's answer.
    client, server = _call_pair(finished)
    assert _hex(client)[2] == ids["node cf"][1], "the call is made inside its source node"
    assert _hex(server)[2] == _hex(client)[1], "the replica's span is the call's child"
    assert server.attributes is not None and server.attributes["blendserve.model.version"] == "7"
    cf = named["node cf"].attributes or {}
    assert cf["blendserve.model.version"] == "7" and cf["blendserve.items"] == 2
    out = named["node out"].attributes or {}
    assert out["blendserve.items"] == 3 and out["blendserve.node.kind"] == "filter"
    http_span = named["POST /v1/recommend/{use_case}"].attributes or {}
    assert http_span["http.response.status_code"] == 200


def test_coalesced_calls_each_join_their_own_request_trace(
    spans: InMemorySpanExporter,
) -> None:
    replica = _Replica(delay_s=0.05)
    gateway = _Gateway(replica, in_flight=1)

    async def three() -> None:
        # Each request has its own trace (no caller context): the first call goes
        # alone, the two that arrive while it is out ride one handle call.
        async def one(user: str) -> None:
            with tracing.request_span("POST", []) as span:
                ctx = BlendContext(user, 3, request_id=user, spans=tracing.node_spans())
                await PLAN.run(ctx, gateway)
                tracing.finish_request_span(span, "POST", "/v1/recommend/{use_case}", 200)

        await asyncio.gather(one("u1"), one("u2"), one("u3"))

    asyncio.run(three())
    assert replica.batches == [1, 2]
    finished = spans.get_finished_spans()
    traces = {_hex(s)[0] for s in finished}
    assert len(traces) == 3
    for trace in traces:
        mine = [s for s in finished if _hex(s)[0] == trace]
        client, server = _call_pair(mine)
        assert _hex(server)[2] == _hex(client)[1]
        assert server.attributes is not None
        size = server.attributes["blendserve.batch.size"]
        assert size in (1, 2)
    sizes = sorted(
        (s.attributes or {})["blendserve.batch.size"]
        for s in finished
        if s.kind is SpanKind.SERVER and s.name.startswith("model")
    )
    assert sizes == [1, 2, 2]


def test_a_caller_that_does_not_sample_gets_no_spans_and_costs_none(
    spans: InMemorySpanExporter,
) -> None:
    async def unsampled() -> None:
        with tracing.request_span("POST", _headers(sampled=False)):
            assert tracing.node_spans() is None
            assert tracing.call_origin().trace is None
            assert tracing.current_trace_id() is None

    asyncio.run(unsampled())
    asyncio.run(_request(_Gateway(_Replica()), "u1", sampled=False))
    assert spans.get_finished_spans() == ()


def test_tracing_is_off_by_default() -> None:
    tracing.configure(TracingConfig(), "Ingress")
    assert tracing.tracer() is None
    assert tracing.node_spans() is None
    assert tracing.call_origin() == tracing.CallOrigin("")
    with pytest.raises(ValueError, match="http:// or https://"):
        TracingConfig(endpoint="collector:4318")
    on = TracingConfig(endpoint="http://127.0.0.1:4318/v1/traces")
    assert on.enabled and not TracingConfig().enabled
