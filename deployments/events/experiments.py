"""Experiment reports from the use cases' specs and an event log's totals, wherever
those come from (``blending/evaluation/stats.py`` does the statistics). Plain Python."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blending.dag import BlendPlan
from blending.evaluation.credit import CreditTotals
from blending.evaluation.experiment_reports import experiment_report, interleaving_report
from blending.evaluation.stages import PruneState
from blending.evaluation.stats import ArmTotals
from blending.spec import ExperimentNodeSpec, InterleaveNodeSpec
from deployments.json_types import JsonObject

__all__ = ["ExperimentSpec", "build_report", "experiment_names", "find_experiment"]

ExperimentSpec = ExperimentNodeSpec | InterleaveNodeSpec


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
    objective: Mapping[str, float] | None = None,
    stage: PruneState | None = None,
    credit: CreditTotals | None = None,
) -> JsonObject:
    """The report of one experiment (from its arms' ``totals``, with the use case's
    ``objective``) or interleaving node (from its teams' ``wins``, ``ties`` and
    ``credit``, their credited clicks per list). A
    staged experiment's also shows its first ``stage`` with that stage's pairwise
    wins; its A/B part compares the control with the survivor (with the
    leader while the first stage runs)."""
    if isinstance(spec, InterleaveNodeSpec):
        teams = (spec.teams[0], spec.teams[1])
        won = {t: wins.get(t, 0) for t in teams}
        return interleaving_report(name, teams, won, ties, credit=credit)
    empty = ArmTotals(0, 0, 0)
    control = spec.control_arm()
    compared = list(spec.arms)
    if spec.prune is not None and stage is not None and stage.leader is not None:
        compared = [control, stage.survivor or stage.leader]
    weights = {arm: spec.arms[arm].weight for arm in compared}
    arms = {arm: totals.get(arm, empty) for arm in compared}
    report = experiment_report(name, control, weights, arms, objective=objective)
    if spec.prune is None:
        return report
    state = stage or PruneState(None, None, 0, "no clicked list yet")
    staged: dict[str, Any] = {
        **state.as_dict(),
        "candidates": spec.candidates(),
        "max_sessions": spec.prune.max_sessions,
    }
    report["stages"] = staged
    if state.survivor is None:
        report["verdict"] = f"first stage (multileaving the candidates): {state.reason}"
        report["stopping"] = {"decision": "continue", "reason": state.reason}
    return report
