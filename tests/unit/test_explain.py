"""What a served list's record keeps for `blendserve explain` and `replay`, and the
explanation built from it (no Ray: the blend runs on scripted models)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from scripted_models import Scripted, ScriptedModels

from blending.candidates import BlendContext
from blending.dag import BlendPlan
from blending.spec import UseCaseSpec
from deployments.api.schemas import RecommendRequest
from deployments.events.records import ServedList
from deployments.events.replay_record import ReplayInputs, decode_inputs
from deployments.offline.explain import Served, explain, render_explanation
from deployments.serve.personal import explanation, served_list

NODES = {
    "cf": {"kind": "source", "model": "mf", "candidates": 3},
    "pop": {"kind": "source", "model": "popularity"},
    "mix": {"kind": "blend", "weights": {"cf": 0.7, "pop": 0.3}},
    "out": {"kind": "filter", "input": "mix"},
}


def _served(failing: bool = False) -> tuple[BlendPlan, ServedList, ReplayInputs]:
    plan = BlendPlan("home", UseCaseSpec.model_validate({"nodes": NODES, "output": "out"}))
    models = ScriptedModels(
        mf=Scripted(
            [("a", 0.9), ("b", 0.5)], version="4", error=RuntimeError("down") if failing else None
        ),
        popularity=Scripted([("c", 30.0), ("a", 10.0)]),
    )
    ctx = BlendContext("u1", 3, frozenset({"zz"}), {"page": "home"}, "r-1", now=1.8e9)
    outcome = asyncio.run(plan.run(ctx, models))
    request = RecommendRequest.model_validate(
        {"user_id": "u1", "k": 3, "exclude": ["zz"], "context": {"page": "home"}, "filters": []}
    )
    record, inputs = served_list("r-1", "p-1", request, plan, ctx, outcome, 2.5)
    return plan, record, inputs


def test_the_record_holds_the_plan_the_inputs_and_the_measurements() -> None:
    plan, record, _ = _served()
    assert record.plan_version == plan.version and len(plan.version) == 12
    assert UseCaseSpec.model_validate_json(record.plan) == plan.spec
    inputs = decode_inputs(record.inputs)
    assert (inputs.k, inputs.now, inputs.exclude, inputs.context) == (
        3,
        1.8e9,
        ["zz"],
        {"page": "home"},
    )
    assert inputs.sizes == {"cf": 2, "pop": 2, "mix": 3, "out": 3}
    assert set(inputs.node_ms) >= {"cf", "pop", "mix", "out"}
    assert inputs.scores == pytest.approx([0.7, 0.3, 0.0])  # minmax, then 0.7/0.3
    assert record.items == ["a", "c", "b"]


def test_the_explanation_names_nodes_versions_and_failures() -> None:
    _, record, inputs = _served(failing=True)
    report = explanation(record, inputs)
    assert report["degraded"] and report["model_versions"] == {"popularity": "1"}
    nodes = {node["node"]: node for node in report["nodes"]}
    assert nodes["cf"]["failed"] == "RuntimeError: down" and not nodes["cf"]["late"]
    assert nodes["pop"]["items"] == 2 and "failed" not in nodes["pop"]
    text = render_explanation(report)
    assert "cf (source: model mf, 3 candidates): 0 items" in text
    assert "FAILED (error): RuntimeError: down" in text and ", DEGRADED" in text


def test_a_list_served_before_plans_were_recorded_is_still_explained() -> None:
    old = Served(
        "r-0",
        "home",
        datetime(2026, 11, 1, tzinfo=UTC),
        "p",
        ["a"],
        [""],
        {},
        {"mf": "1"},
        3.0,
        False,
        "",
        "",
        None,
    )
    report = explain(old)
    assert report["plan_version"] is None and report["items"][0]["item_id"] == "a"
    assert "plan: not recorded" in render_explanation(report)


def test_each_request_writes_one_json_line_with_what_produced_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from deployments.config.ingress import RequestLogConfig
    from deployments.serve.personal import log_request

    _, record, inputs = _served(failing=True)
    with caplog.at_level("INFO", logger="ray.serve.blendserve.requests"):
        log_request(RequestLogConfig(), record, inputs, 200)
        log_request(RequestLogConfig(level="OFF"), record, inputs, 200)
        log_request(RequestLogConfig(sample=0.0), record, inputs, 200)
    (line,) = [json.loads(r.getMessage()) for r in caplog.records]
    assert line["request_id"] == "r-1" and line["status"] == 200
    assert line["plan_version"] == record.plan_version and line["user"] == "p-1"
    assert line["failed"] == {"cf": "RuntimeError: down"} and line["degraded"]
    assert set(line["node_ms"]) == set(line["node_items"]) == {"cf", "pop", "mix", "out"}
    assert line["model_versions"] == {"popularity": "1"} and line["items"] == 2
