"""Several outcomes and a use case's objective (issue 23): feedback carries its type
(click, add to cart, conversion, purchase, dwell seconds), the event log counts every
outcome per arm, and reports weigh them by the use case's objective, which is part of
its live config."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import ValidationError

from blending.evaluation.experiment_reports import experiment_report
from blending.evaluation.stats import ArmTotals
from blending.result_ids import ResultIdCodec, ResultRef
from blending.spec import UseCaseSpec
from deployments.events.counts import EventCounts
from deployments.events.feedback import feedback_records

CODEC = ResultIdCodec(b"k" * 32)
NODES = {"a": {"kind": "source", "model": "m"}}


def _event(request: str, item: str, event: str, arm: str, value: float | None = None) -> Any:
    ref = ResultRef(request, "shop", 1, item, int(time.time()), {"ab": arm})
    entry: dict[str, Any] = {"result_id": CODEC.encode(ref), "event": event}
    if value is not None:
        entry["value"] = value
    (record,), rejected = feedback_records([entry], "events", CODEC)
    assert not rejected
    return record.row()


def test_a_dwell_needs_its_seconds_and_other_outcomes_are_taken() -> None:
    ref = CODEC.encode(ResultRef("r1", "shop", 1, "i1", int(time.time())))
    entries = [
        {"result_id": ref, "event": "add_to_cart"},
        {"result_id": ref, "event": "purchase", "value": 49.9},
        {"result_id": ref, "event": "dwell", "value": 31.5},
        {"result_id": ref, "event": "dwell"},
        {"result_id": ref, "event": "dwell", "value": -3},
    ]
    records, rejected = feedback_records(entries, "events", CODEC)
    assert [r.event for r in records] == ["add_to_cart", "purchase", "dwell"]
    assert [(r.index, r.field) for r in rejected] == [(3, "events.3.value"), (4, "events.4.value")]
    assert "seconds" in rejected[0].message


def test_every_outcome_is_counted_per_arm_once_per_item_and_dwell_is_summed() -> None:
    counts = EventCounts()
    for n, arm in ((1, "a"), (2, "b")):
        counts.add_served(
            {"use_case": "shop", "variant": {"ab": arm}, "latency_ms": 1.0, "degraded": False}
        )
        counts.add_feedback(_event(f"r{n}", "i1", "impression", arm))
    counts.add_feedback(_event("r1", "i1", "click", "a"))
    counts.add_feedback(_event("r1", "i1", "purchase", "a", 20.0))
    counts.add_feedback(_event("r1", "i1", "purchase", "a", 20.0))  # the same item again
    counts.add_feedback(_event("r1", "i1", "dwell", "a", 12.0))
    counts.add_feedback(_event("r1", "i2", "dwell", "a", 30.0))
    counts.add_feedback(_event("r2", "i1", "add_to_cart", "b"))
    totals = counts.arm_totals("shop", "ab")
    assert totals["a"].outcomes == {"click": 1.0, "purchase": 1.0, "dwell": 42.0}
    assert totals["b"].outcomes == {"add_to_cart": 1.0}
    assert totals["a"].clicks == 1 and totals["a"].impressions == 1


def test_the_report_weighs_outcomes_by_the_objective() -> None:
    arms = {
        "a": ArmTotals(100, 1000, 50, outcomes={"click": 50, "purchase": 2, "dwell": 600}),
        "b": ArmTotals(100, 1000, 40, outcomes={"click": 40, "purchase": 5, "dwell": 400}),
    }
    weights = {"a": 50.0, "b": 50.0}
    by_clicks = experiment_report("shop.ab", "a", weights, arms)
    assert by_clicks["objective"] == {"click": 1.0}
    assert by_clicks["arms"]["a"]["objective"] == pytest.approx(0.05)
    assert by_clicks["arms"]["b"]["objective_lift"] == pytest.approx(-0.2)
    objective = {"click": 1.0, "purchase": 10.0, "dwell": 0.01}
    report = experiment_report("shop.ab", "a", weights, arms, objective=objective)
    # a: (50 + 20 + 6) / 1000; b: (40 + 50 + 4) / 1000.
    assert report["arms"]["a"]["objective"] == pytest.approx(0.076)
    assert report["arms"]["b"]["objective"] == pytest.approx(0.094)
    assert report["arms"]["b"]["objective_lift"] == pytest.approx(0.094 / 0.076 - 1)
    assert report["arms"]["b"]["outcomes"]["purchase"] == {"total": 5, "per_impression": 0.005}


def test_an_objective_is_checked_with_the_use_case() -> None:
    spec = UseCaseSpec.model_validate(
        {"nodes": NODES, "output": "a", "objective": {"click": 1, "purchase": 8}}
    )
    assert spec.objective == {"click": 1.0, "purchase": 8.0}
    assert UseCaseSpec.model_validate({"nodes": NODES, "output": "a"}).objective == {"click": 1.0}
    with pytest.raises(ValidationError, match="objective"):
        UseCaseSpec.model_validate({"nodes": NODES, "output": "a", "objective": {"likes": 1}})
    with pytest.raises(ValidationError, match="nothing to optimise"):
        UseCaseSpec.model_validate({"nodes": NODES, "output": "a", "objective": {"click": 0}})
