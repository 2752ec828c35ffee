"""The old engine's DAG runner, without deadlines: each node of a plan by the old maths.

Sources are asked in the plan's order and fail like the real runner's (the
failure is recorded and the node's list is empty), so fallbacks take the same path.
"""

from __future__ import annotations

import random

import numpy as np

from blending.candidates import BlendContext, ScoreResult, SourceResult
from blending.dag import BlendPlan
from blending.gateway import ModelGateway
from blending.spec import (
    BanditNodeSpec,
    BlendNodeSpec,
    DiversifyNodeSpec,
    ExperimentNodeSpec,
    FallbackNodeSpec,
    FilterNodeSpec,
    FreshNodeSpec,
    InterleaveNodeSpec,
    RerankNodeSpec,
    SlotsNodeSpec,
    SourceNodeSpec,
    StackNodeSpec,
)
from models.base import RecommendQuery
from reference_engine.candidates import Candidate
from reference_engine.live import live_candidates
from reference_engine.nodes import (
    apply_filter,
    apply_rerank,
    apply_slots,
    apply_stack,
    diversify,
    from_source,
    rrf_blend,
    share_positions,
    stack_features,
    team_draft,
    weighted_blend,
)

__all__ = ["reference_run"]

_Branch = tuple[list[Candidate], dict[str, str]]


async def reference_run(
    plan: BlendPlan, ctx: BlendContext, models: ModelGateway
) -> list[Candidate]:
    """The top ``ctx.k`` of ``plan`` for ``ctx``, as the old engine built it."""
    active, _ = plan.active_nodes(ctx.user_id)
    query = RecommendQuery(ctx.user_id, ctx.context)
    branches: dict[str, _Branch] = {}
    for name in plan.order:
        if name in active:
            branches[name] = await _node(plan, name, ctx, query, models, branches)
    items, _ = branches[plan.spec.output]
    return apply_filter(items, ctx, limit=ctx.k)


def _merged(*branches: _Branch) -> dict[str, str]:
    failures: dict[str, str] = {}
    for _, failed in branches:
        failures.update(failed)
    return failures


async def _node(
    plan: BlendPlan,
    name: str,
    ctx: BlendContext,
    query: RecommendQuery,
    models: ModelGateway,
    branches: dict[str, _Branch],
) -> _Branch:
    node = plan.spec.nodes[name]
    if isinstance(node, SourceNodeSpec):
        try:
            answer: SourceResult = await models.recommend(node.model, query, node.candidates)
        except Exception as exc:  # noqa: BLE001 - a failing source degrades, like the real runner
            return [], {name: str(exc)}
        return from_source(name, answer), {}
    if isinstance(node, FreshNodeSpec | BanditNodeSpec):
        try:
            return live_candidates(name, node, ctx), {}
        except Exception as exc:  # noqa: BLE001
            return [], {name: str(exc)}
    if isinstance(node, BlendNodeSpec):
        inputs = [(w, branches[n]) for n, w in node.weights.items()]
        lists = [(w, b[0]) for w, b in inputs]
        if node.method == "rrf":
            return rrf_blend(lists, node.rrf_k), _merged(*(b for _, b in inputs))
        return weighted_blend(lists, node.normalize), _merged(*(b for _, b in inputs))
    if isinstance(node, RerankNodeSpec):
        source, failures = branches[node.input]
        head = source[: node.depth]
        if not head:
            return source, failures
        try:
            scored: ScoreResult = await models.score(node.model, query, [c.item_id for c in head])
            return apply_rerank(source, scored, name, node.depth), failures
        except Exception as exc:  # noqa: BLE001
            return source, {**failures, name: str(exc)}
    if isinstance(node, StackNodeSpec):
        inputs_ = [branches[n] for n in node.inputs]
        failures = _merged(*inputs_)
        items, rows = stack_features([b[0] for b in inputs_], node.normalize)
        if not items:
            return [], failures
        try:
            stacked = await models.predict(node.model, np.asarray(rows, dtype=np.float64))
            return apply_stack(items, stacked, name), failures
        except Exception as exc:  # noqa: BLE001
            fallback = weighted_blend([(1.0, b[0]) for b in inputs_], node.normalize)
            return fallback, {**failures, name: str(exc)}
    if isinstance(node, SlotsNodeSpec):
        ranked, curated = branches[node.input], branches[node.curated]
        positions = node.positions or share_positions(node.share or 0.0, ctx.k)
        return apply_slots(ranked[0], curated[0], positions, ctx), _merged(ranked, curated)
    if isinstance(node, FilterNodeSpec):
        items, failures = branches[node.input]
        limit = ctx.k if name == plan.spec.output else None
        return apply_filter(items, ctx, node.drop, node.drop_unknown, limit), failures
    if isinstance(node, DiversifyNodeSpec):
        items, failures = branches[node.input]
        return diversify(items, ctx, node.max_per_category, node.top or ctx.k), failures
    if isinstance(node, ExperimentNodeSpec):
        return branches[node.arms[plan.arm_for(name, node, ctx.user_id)].node]
    if isinstance(node, InterleaveNodeSpec):
        first, second = (branches[team] for team in node.teams)
        rng = random.Random(f"{ctx.request_id}:{name}")
        teams = ((node.teams[0], first[0]), (node.teams[1], second[0]))
        return team_draft(teams, rng), _merged(first, second)
    if isinstance(node, FallbackNodeSpec):
        primary, backup = branches[node.primary], branches[node.fallback]
        if not primary[1] and len(primary[0]) >= node.min_items:
            return primary
        failures = primary[1] or {name: "too few items"}
        return backup[0], {**failures, **backup[1]}
    raise TypeError(f"node {name!r}: unsupported kind {type(node).__name__}")
