"""Several outcomes on the real service (issue 23): add-to-cart, purchase and dwell
feedback reach the experiment report per arm, weighed by the use case's objective;
a new objective deployed with `serve deploy` (live config: the replicas reconfigure)
reweighs the report."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from serving_cluster import TRIAL_USE_CASE, Deployed, app_config, until, use_cases

pytestmark = pytest.mark.integration

EXPERIMENT = f"/v1/experiments/{TRIAL_USE_CASE}.ab"
OBJECTIVE = {"click": 1.0, "add_to_cart": 2.0, "purchase": 10.0, "dwell": 0.01}


def _report(client: httpx.Client) -> dict[str, Any]:
    response = client.get(EXPERIMENT)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _outcomes(client: httpx.Client) -> dict[str, float]:
    totals: dict[str, float] = {}
    for arm in _report(client)["arms"].values():
        for name, outcome in arm["outcomes"].items():
            totals[name] = totals.get(name, 0.0) + outcome["total"]
    return totals


def test_outcomes_reach_the_report_and_a_new_objective_reweighs_it_live(
    client: httpx.Client, deployed: Deployed
) -> None:
    before = _outcomes(client)
    assert _report(client)["objective"] == {"click": 1.0}
    for n in range(12):
        served = client.post(
            f"/v1/recommend/{TRIAL_USE_CASE}", json={"user_id": f"buyer{n}", "k": 4}
        )
        assert served.status_code == 200, served.text
        first = served.json()["items"][0]["result_id"]
        events = [
            {"result_id": first, "event": "impression"},
            {"result_id": first, "event": "click"},
            {"result_id": first, "event": "add_to_cart"},
            {"result_id": first, "event": "purchase", "value": 25.0},
            {"result_id": first, "event": "dwell", "value": 40.0},
        ]
        stored = client.post("/v1/feedback", json={"events": events})
        assert stored.status_code == 202 and stored.json()["accepted"] == 5, stored.text
    refused = client.post(
        "/v1/feedback", json={"result_id": first, "event": "dwell", "event_id": "no-seconds"}
    )
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "value"
    after = _outcomes(client)
    for name, added in (("add_to_cart", 12), ("purchase", 12), ("dwell", 480.0)):
        assert after.get(name, 0.0) - before.get(name, 0.0) == added, (name, after)

    original = copy.deepcopy(deployed.config)
    changed = copy.deepcopy(deployed.config)
    use_cases(app_config(changed, "blendserve"))[TRIAL_USE_CASE]["objective"] = OBJECTIVE
    try:
        deployed.redeploy(changed)
        # Both ingress replicas reconfigure; every report then weighs by the new objective.
        until(
            lambda: all(_report(client)["objective"] == OBJECTIVE for _ in range(6)),
            60,
            "the new objective in every replica's report",
        )
        for arm in _report(client)["arms"].values():
            if not arm["impressions"]:
                continue
            amounts = {name: o["total"] for name, o in arm["outcomes"].items()}
            expected = sum(w * amounts.get(name, 0.0) for name, w in OBJECTIVE.items())
            assert arm["objective"] == pytest.approx(expected / arm["impressions"])
    finally:
        deployed.redeploy(original)
        until(
            lambda: all(_report(client)["objective"] == {"click": 1.0} for _ in range(6)),
            60,
            "the original objective back",
        )
