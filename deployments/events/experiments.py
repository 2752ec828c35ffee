"""Experiment reports and the dashboard's data, from the use cases' specs and the
event log's totals (``blending/stats.py`` does the statistics)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from blending.dag import BlendPlan
from blending.spec import ExperimentNodeSpec, InterleaveNodeSpec
from blending.stats import ArmTotals, experiment_report, interleaving_report
from deployments.events.client import EventClient
from deployments.events.counts import TRAFFIC_WINDOW_S

__all__ = ["dashboard_data", "experiment_names", "find_experiment", "report"]

ExperimentSpec = ExperimentNodeSpec | InterleaveNodeSpec

_VERSION_KEYS = ("version", "role", "status", "traffic_percent", "reason")


def experiment_names(plans: dict[str, BlendPlan]) -> list[str]:
    """Every experiment and interleaving node, as ``<use case>.<node>``."""
    return sorted(
        f"{use_case}.{node}"
        for use_case, plan in plans.items()
        for node, spec in plan.spec.nodes.items()
        if isinstance(spec, ExperimentNodeSpec | InterleaveNodeSpec)
    )


def find_experiment(plans: dict[str, BlendPlan], name: str) -> tuple[str, str, ExperimentSpec]:
    """The use case, node name and spec of ``<use case>.<node>``; KeyError if none."""
    use_case, _, node = name.partition(".")
    plan = plans.get(use_case)
    spec = plan.spec.nodes.get(node) if plan is not None else None
    if not isinstance(spec, ExperimentNodeSpec | InterleaveNodeSpec):
        raise KeyError(name)
    return use_case, node, spec


def build_report(
    name: str,
    node: str,
    spec: ExperimentSpec,
    totals: Mapping[str, ArmTotals],
    wins: Mapping[str, int],
    ties: int,
) -> dict[str, Any]:
    """The report of one experiment (from its arms' ``totals``) or interleaving node
    (from its teams' ``wins`` and ``ties``)."""
    if isinstance(spec, InterleaveNodeSpec):
        teams = (spec.teams[0], spec.teams[1])
        return interleaving_report(name, teams, {t: wins.get(t, 0) for t in teams}, ties)
    empty = ArmTotals(0, 0, 0)
    weights = {arm: arm_spec.weight for arm, arm_spec in spec.arms.items()}
    arms = {arm: totals.get(arm, empty) for arm in spec.arms}
    return experiment_report(name, spec.control_arm(), weights, arms)


async def report(
    events: EventClient, name: str, use_case: str, node: str, spec: ExperimentSpec
) -> dict[str, Any]:
    """The live report of one experiment or interleaving node."""
    if isinstance(spec, InterleaveNodeSpec):
        counts = await events.interleaving(use_case, list(spec.teams))
        return build_report(name, node, spec, {}, counts["wins"], counts["ties"])
    raw = await events.arm_totals(use_case, node)
    totals = {arm: ArmTotals(**values) for arm, values in raw.items()}
    return build_report(name, node, spec, totals, {}, 0)


async def dashboard_data(
    events: EventClient, plans: dict[str, BlendPlan], models: dict[str, Any]
) -> dict[str, Any]:
    """What ``/dashboard`` shows: traffic, model versions, every experiment's report."""
    names = experiment_names(plans)
    reports = await asyncio.gather(
        *(report(events, name, *find_experiment(plans, name)) for name in names)
    )
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "window_s": TRAFFIC_WINDOW_S,
        "traffic": await events.traffic(),
        "models": {
            name: {
                "status": status.get("status", "failed" if "error" in status else "serving"),
                "versions": [
                    {
                        k: v.get(k)
                        for k in ("version", "role", "status", "traffic_percent", "reason")
                    }
                    for v in status.get("versions", [])
                ],
            }
            for name, status in models.items()
        },
        "experiments": dict(zip(names, reports, strict=True)),
    }
