"""Experiment reports and the dashboard's data, live: from the running event log's
totals, through the ingress's ``EventClient``."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

from blending.dag import BlendPlan
from blending.spec import InterleaveNodeSpec
from deployments.events.client import EventClient
from deployments.events.counts import TRAFFIC_WINDOW_S
from deployments.events.experiments import (
    ExperimentSpec,
    build_report,
    experiment_names,
    find_experiment,
)
from deployments.json_types import JsonObject, JsonValue, json_objects

__all__ = ["dashboard_data", "report"]

_VERSION_KEYS = ("version", "role", "status", "traffic_percent", "reason")


async def report(
    events: EventClient,
    name: str,
    use_case: str,
    node: str,
    spec: ExperimentSpec,
    objective: Mapping[str, float] | None = None,
) -> JsonObject:
    """The live report of one experiment (with its use case's ``objective``) or
    interleaving node."""
    if isinstance(spec, InterleaveNodeSpec):
        counts = await events.interleaving(use_case, list(spec.teams))
        return build_report(name, node, spec, {}, counts.wins, counts.ties, credit=counts.credit)
    totals = await events.arm_totals(use_case, node)
    if spec.prune is None:
        return build_report(name, node, spec, totals, {}, 0, objective)
    stage = await events.prune_state(use_case, node, spec.candidates(), spec.prune)
    return build_report(name, node, spec, totals, {}, 0, objective, stage)


async def dashboard_data(
    events: EventClient, plans: dict[str, BlendPlan], models: dict[str, JsonObject]
) -> JsonObject:
    """What ``/dashboard`` shows: traffic, model versions, every experiment's report."""
    names = experiment_names(plans)
    found = [find_experiment(plans, name) for name in names]
    reports = await asyncio.gather(
        *(
            report(events, name, *where, objective=plans[where[0]].spec.objective)
            for name, where in zip(names, found, strict=True)
        )
    )
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "window_s": TRAFFIC_WINDOW_S,
        "traffic": await events.traffic(),
        "models": {name: _model_summary(status) for name, status in models.items()},
        "experiments": dict(zip(names, reports, strict=True)),
    }


def _model_summary(status: JsonObject) -> JsonValue:
    """A model's status and its versions' roles, statuses and traffic, for the page."""
    versions: list[JsonValue] = [
        {k: v.get(k) for k in _VERSION_KEYS} for v in json_objects(status.get("versions"))
    ]
    return {
        "status": status.get("status", "failed" if "error" in status else "serving"),
        "versions": versions,
    }
