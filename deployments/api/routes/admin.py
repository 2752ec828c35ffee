"""The operators' routes (``admin`` scope): hosted models and their versions,
experiment reports, and the real-time dashboard with its data."""

# No `from __future__ import annotations`: FastAPI reads these signatures.

import asyncio
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from ray import serve

from deployments.api import examples
from deployments.api.docs import error_responses, ok_example
from deployments.api.edge import require
from deployments.api.errors import NotFound
from deployments.api.state import IngressState, this_ingress
from deployments.events.client import EventClient, EventLogUnavailable
from deployments.events.experiments import experiment_names, find_experiment
from deployments.events.live_reports import dashboard_data
from deployments.events.live_reports import report as experiment_report
from deployments.json_types import JsonObject

__all__ = ["router"]

router = APIRouter()

DASHBOARD_PAGE = Path(__file__).parents[1] / "static" / "dashboard.html"


def _event_log(ingress: IngressState) -> EventClient:
    if ingress.events is None:
        raise EventLogUnavailable("the event log is off (args.events is null)")
    return ingress.events


async def _models(ingress: IngressState) -> dict[str, JsonObject]:
    names = ingress.models.names()
    statuses = await asyncio.gather(*(ingress.models.status(n) for n in names))
    return dict(zip(names, statuses, strict=True))


@router.get(
    "/v1/models",
    summary="Every hosted model, its version and placement.",
    dependencies=[require("admin")],
    responses={**error_responses(401, 403, 429), **ok_example(examples.MODELS)},
)
async def list_models() -> JsonObject:
    """Per model: its versions (live, canary, shadow), each one's traffic share,
    status (loading, serving, failed or rolled back, with why) and load time."""
    models: JsonObject = {**await _models(this_ingress())}
    # Each replica keeps its own versions' state: say which one answered.
    replica = serve.get_replica_context().replica_id.unique_id
    return {"replica": replica, "models": models}


@router.get(
    "/v1/experiments",
    summary="Every experiment and interleaving node, as `<use case>.<node>`.",
    dependencies=[require("admin")],
    responses={
        **error_responses(401, 403, 429),
        **ok_example({"experiments": ["discover.ab", "discover.head_to_head"]}),
    },
)
async def list_experiments() -> dict[str, list[str]]:
    """Names to ask ``/v1/experiments/{name}`` about."""
    return {"experiments": experiment_names(this_ingress().plans)}


@router.get(
    "/v1/experiments/{name}",
    summary="Live statistics of one experiment: CTR per arm, lift, significance.",
    dependencies=[require("admin")],
    responses={**error_responses(401, 403, 404, 429, 503), **ok_example(examples.EXPERIMENT)},
)
async def experiment(name: str) -> JsonObject:
    """Per arm: requests, impressions, clicks, CTR with its 95% interval, lift against
    control with its p-value and probability to beat control; a sample-ratio
    check and a verdict. For an interleaving node: credited clicks and wins per team,
    the test of the click share and the sign test."""
    ingress = this_ingress()
    events = _event_log(ingress)
    try:
        found = find_experiment(ingress.plans, name)
    except KeyError:
        raise NotFound("experiment", name, experiment_names(ingress.plans)) from None
    objective = ingress.plans[found[0]].spec.objective
    return await experiment_report(events, name, *found, objective=objective)


@router.get(
    "/v1/dashboard",
    summary="What the dashboard shows: traffic, model versions, experiments.",
    dependencies=[require("admin")],
    responses={**error_responses(401, 403, 429, 503), **ok_example(examples.DASHBOARD)},
)
async def dashboard_json() -> JsonObject:
    """Last-minute traffic from the event log, every model's versions, and every
    experiment's report."""
    ingress = this_ingress()
    events = _event_log(ingress)
    return await dashboard_data(events, ingress.plans, await _models(ingress))


@router.get(
    "/dashboard",
    response_class=HTMLResponse,
    summary="The real-time dashboard (a page; its data needs an admin key).",
)
async def dashboard() -> HTMLResponse:
    """The page; it asks for an admin key and polls ``/v1/dashboard``."""
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    return HTMLResponse(DASHBOARD_PAGE.read_text(encoding="utf-8"), headers=headers)
