"""What makes one request's blend its user's own: the rules it asks for and what its
user has seen. Used by the ingress; the maths is in ``blending/rules.py`` and
``blending/seen.py``."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import msgspec
import numpy as np
from ray.serve.context import _get_serve_request_context  # Serve has no public getter

from blending.attributes import AttributeKind
from blending.candidates import BlendContext
from blending.catalog import ItemCatalog
from blending.dag import BlendOutcome, BlendPlan
from blending.items import ItemTable
from blending.rules import CompiledRules, RulesSpec, compile_rules
from blending.seen import SeenItems, SeenSpec, UserHistory
from blending.spec import UseCaseSpec
from deployments.api.schemas import RecommendRequest
from deployments.config.data import EventsConfig, SeenConfig
from deployments.config.ingress import RequestLogConfig
from deployments.events.client import EventClient
from deployments.events.feedback import served_record
from deployments.events.records import ServedList
from deployments.events.replay_record import ReplayInputs, encode_inputs
from deployments.offline.explain import Served, explain
from deployments.tracing import current_trace_id
from models.errors import InputError

__all__ = [
    "SeenFollower",
    "explanation",
    "follow_seen",
    "log_request",
    "request_id",
    "request_rules",
    "served_list",
]

request_logger = logging.getLogger("ray.serve.blendserve.requests")
"""Where each recommendation's line goes: a child of Serve's replica logger, so the
line lands in the replica's log with Serve's own fields (its request id among them)."""

logger = logging.getLogger("ray.serve")


def request_rules(
    spec: UseCaseSpec,
    request: RecommendRequest,
    catalog: ItemCatalog | None,
    kinds: dict[str, AttributeKind],
) -> CompiledRules | None:
    """The use case's standing rules and the request's own, compiled over the
    catalogue's columns. Raises ``InputError`` naming the request's field at fault
    (``filters.0.attribute``); the use case's rules were checked when it loaded."""
    if not (request.filters or request.boosts or spec.rules):
        return None
    if catalog is None:
        field = "filters" if request.filters else "boosts"
        if request.filters or request.boosts:
            raise InputError(field, "this app has no catalogue (args.catalog or live_catalog)")
        return None
    try:
        RulesSpec(filters=request.filters, boosts=request.boosts).check(kinds, "")
    except ValueError as exc:
        field, _, message = str(exc).lstrip(".").partition(": ")
        raise InputError(field, message) from None
    return compile_rules(catalog.attributes, spec.rules, request.filters, request.boosts)


class SeenFollower:
    """This replica's copy of what users were shown and acted on, kept by following
    the event log's feed a few times a second."""

    def __init__(self, table: ItemTable, config: SeenConfig, retain_s: float) -> None:
        self.history = UserHistory(table, retain_s, config.max_users, config.max_events_per_user)
        self.config = config
        self.epoch = ""
        self.cursor = 0
        self.gaps = 0
        """Pages that reported dropped events (this replica fell too far behind)."""
        self._task: asyncio.Task[None] | None = None

    def seen(self, user: str, spec: SeenSpec) -> SeenItems | None:
        """What ``spec`` hides and demotes for the (pseudonymised) ``user`` now."""
        return self.history.seen(user, spec, time.time())

    def start(self, events: EventClient) -> None:
        """Follow the feed in the background (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._follow(events))

    async def catch_up(self, events: EventClient) -> None:
        """Fetch pages until the feed has nothing newer."""
        while True:
            page = await events.seen_since(self.epoch, self.cursor)
            if page.epoch != self.epoch:
                self.epoch = page.epoch
            self.gaps += int(page.gap)
            self.cursor = page.cursor
            if not page.users:
                return
            kinds = np.asarray(page.kinds, dtype=np.int8)
            self.history.add(page.users, page.items, np.asarray(page.times), kinds)

    async def _follow(self, events: EventClient) -> None:
        while True:
            try:
                await self.catch_up(events)
            except Exception as exc:  # noqa: BLE001 - keep following; serve what is known
                logger.warning("seen items not refreshed: %s", exc)
            await asyncio.sleep(self.config.poll_interval_s)


def served_list(
    request_id: str,
    user: str,
    request: RecommendRequest,
    plan: BlendPlan,
    ctx: BlendContext,
    outcome: BlendOutcome,
    latency_ms: float,
) -> tuple[ServedList, ReplayInputs]:
    """The event log's record of one served list, with what ``blendserve explain``
    and ``replay`` need: the plan, the request's inputs, what the blend measured; and
    those inputs as an object (the log line and the inline explanation read them, so
    they need not decode the record's text)."""
    table = ctx.table or ItemTable()
    seen = ctx.seen
    inputs = ReplayInputs(
        k=ctx.k,
        now=ctx.now or time.time(),
        context=dict(ctx.context),
        exclude=sorted(ctx.exclude),
        filters=[r.model_dump(by_alias=True, exclude_none=True) for r in request.filters],
        boosts=[r.model_dump(by_alias=True, exclude_none=True) for r in request.boosts],
        catalog_version=getattr(ctx.catalog, "version", None),
        hidden=table.ids_of(seen.excluded) if seen is not None else [],
        demoted=table.ids_of(seen.demoted) if seen is not None else [],
        demote_factor=seen.demote_factor if seen is not None else 1.0,
        live=outcome.live_lists,
        scores=[c.score for c in outcome.items],
        node_ms=outcome.node_ms,
        sizes=outcome.sizes,
        failures=outcome.failures,
        late=sorted(outcome.late),
        fallbacks=list(outcome.fallbacks),
        trace_id=current_trace_id(),
        explored=list(outcome.explored),
    )
    record = served_record(
        request_id,
        plan.name,
        user,
        outcome,
        outcome.items,
        latency_ms,
        plan.version,
        plan.spec_json,
        encode_inputs(inputs),
    )
    return record, inputs


def explanation(record: ServedList, inputs: ReplayInputs) -> dict[str, object]:
    """The record explained as ``blendserve explain --json`` would (for the inline
    debug header)."""
    served = Served(
        request_id=record.request_id,
        use_case=record.use_case,
        served_at=datetime.fromtimestamp(record.ts, UTC),
        user=record.user,
        items=record.items,
        teams=record.teams,
        variant=record.variant,
        model_versions=record.model_versions,
        latency_ms=record.latency_ms,
        degraded=record.degraded,
        plan_version=record.plan_version,
        plan=record.plan,
        inputs=inputs,
        propensities=record.propensities,
    )
    return explain(served)


async def follow_seen(
    current: SeenFollower | None,
    plans: Mapping[str, BlendPlan],
    table: ItemTable,
    events: EventClient,
    config: EventsConfig,
) -> SeenFollower | None:
    """The replica's follower of the seen feed once a use case asks for ``seen``
    (caught up before the use case takes traffic), its window the longest asked."""
    windows = [p.spec.seen.window_s for p in plans.values() if p.spec.seen is not None]
    if not windows:
        return current
    if current is None:
        current = SeenFollower(table, config.seen, max(windows))
        try:
            await current.catch_up(events)
        except Exception as exc:  # noqa: BLE001 - serve; the follower keeps trying
            logger.warning("seen items: first fetch failed: %s", exc)
        current.start(events)
    current.history.retain_s = max(windows)
    return current


def request_id() -> str:
    """This request's id: Serve's own for the request (it is on every line Serve logs
    for it, in the ingress and in the model replicas its handle calls reach), else a
    new one (outside a request)."""
    return _get_serve_request_context().request_id or uuid.uuid4().hex


_LINE_ENCODER = msgspec.json.Encoder()
"""The request log's encoder (a few times faster than ``json.dumps``: one line a request)."""


def log_request(
    config: RequestLogConfig, record: ServedList, inputs: ReplayInputs, status: int
) -> None:
    """Write the request's JSON line, if its level is on and the request is sampled."""
    if config.level == "OFF" or (config.sample < 1.0 and random.random() >= config.sample):
        return
    level = logging.getLevelName(config.level)
    if not request_logger.isEnabledFor(level):
        return
    line = {
        "event": "recommend",
        "request_id": record.request_id,
        "use_case": record.use_case,
        "status": status,
        "latency_ms": round(record.latency_ms, 3),
        "user": record.user,
        "plan_version": record.plan_version,
        "variant": record.variant,
        "model_versions": record.model_versions,
        "catalog_version": inputs.catalog_version,
        "k": inputs.k,
        "items": len(record.items),
        "node_ms": {node: round(ms, 3) for node, ms in inputs.node_ms.items()},
        "node_items": inputs.sizes,
        "degraded": record.degraded,
        "failed": inputs.failures,
        "late": inputs.late,
        "explored": inputs.explored,
    }
    if inputs.trace_id is not None:
        line["trace_id"] = inputs.trace_id
    request_logger.log(level, _LINE_ENCODER.encode(line).decode())
