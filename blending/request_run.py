"""One request's pass through a plan: its deadline, its item view, its source calls.

:class:`RequestRun` fetches a plan's sources concurrently (remote ones first, so
they work while in-process ones compute) and gives up on what has not answered
when the use case's budget runs out. ``dag.py`` runs the nodes with it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import numpy as np

from blending.candidates import BlendContext, SourceResult
from blending.gateway import ModelGateway
from blending.items import ItemTable
from blending.live_sources import live_candidates
from blending.nodes import RequestItems
from blending.ranked import Ranked, Sourced
from blending.spec import BanditNodeSpec, LiveSourceSpec, SourceNodeSpec
from models.base import RecommendQuery

if TYPE_CHECKING:
    from blending.dag import BlendPlan

__all__ = ["MAX_FETCH_SCALE", "Answer", "DeadlineExceeded", "RequestRun", "reason"]


def _replayed(
    name: str,
    node: LiveSourceSpec,
    recorded: tuple[Sequence[str], Sequence[float]],
    table: ItemTable,
) -> Ranked:
    """A live source's list as it was recorded when the request was served."""
    ids, values = recorded
    scores = np.asarray(values, dtype=np.float64)
    kind = "bandit" if isinstance(node, BanditNodeSpec) else "fresh"
    return Ranked(table.indices(list(ids)), scores, Sourced(name, kind, "live", scores))


MAX_FETCH_SCALE = 20.0
"""The most a filter multiplies what sources are asked for (a filter that keeps
1% of the catalogue is better served by a source that filters itself)."""

_T = TypeVar("_T")
Answer: TypeAlias = SourceResult | Ranked | BaseException
"""A source's answer: a model's result, a live source's list, or why it failed."""


class DeadlineExceeded(TimeoutError):
    """A source or model had not answered when the use case's budget ran out."""


def reason(exc: BaseException) -> str:
    """``Type: message`` of an exception, as a failure is reported."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class RequestRun:
    """The state of one request's pass through a plan: its deadline, its view of
    the items, what it fetched, how long each node took."""

    def __init__(self, plan: BlendPlan, ctx: BlendContext, models: ModelGateway, started: float):
        self.plan = plan
        self.ctx = ctx
        self.models = models
        self.deadline = started + plan.spec.budget_ms / 1000.0
        self.query = RecommendQuery(ctx.user_id, ctx.context)
        catalog = ctx.catalog
        table = ctx.table
        if table is None:
            table = catalog.table if catalog is not None else ItemTable()
        seen = ctx.seen
        hidden = seen.excluded if seen is not None else None
        self.items = RequestItems(table, ctx.exclude, catalog is not None, hidden)
        self.now = time.time() if ctx.now is None else ctx.now
        self.rules = ctx.rules
        self.late: set[str] = set()
        self.versions: dict[str, str] = {}
        self.fallbacks: list[str] = []
        self.answered = 0
        self.node_ms: dict[str, float] = {}
        self.variant: dict[str, str] = {}
        """Each experiment node's arm for this request (``PRUNE`` in a first stage)."""
        # Sources over-fetch by the request's exclusions and what its user has seen,
        # and by the share of the catalogue its filters keep, so that neither leaves
        # a list short.
        self.over_fetch = len(ctx.exclude) + (0 if hidden is None else len(hidden))
        passing = self.rules.share_passing(self.now) if self.rules else 1.0
        self.fetch_scale = 1.0 / max(passing, 1.0 / MAX_FETCH_SCALE)

    def fetch(self, candidates: int) -> int:
        """How many items to ask a source for, for ``candidates`` to survive."""
        return math.ceil((candidates + self.over_fetch) * self.fetch_scale)

    def filtered(self, ranked: Ranked) -> Ranked:
        """``ranked`` without the items the request's filters rule out."""
        keep = self.rules.keep(ranked.items, self.now) if self.rules else None
        return ranked if keep is None else ranked.take(np.flatnonzero(keep))

    def timed(self, node: str, since: float) -> None:
        """Record that ``node`` has taken the time since ``since`` (a perf_counter)."""
        self.node_ms[node] = (time.perf_counter() - since) * 1000.0

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def out_of_time(self, model: str) -> bool:
        """Whether a call to ``model`` is no longer worth making. The budget bounds
        waiting on other processes only: an in-process model answers in microseconds,
        and a late request is better answered from it than refused."""
        return not self.models.is_inline(model) and self.remaining() <= 0

    def missed(self, node: str) -> str:
        self.late.add(node)
        return f"DeadlineExceeded: no answer within the {self.plan.spec.budget_ms:g} ms budget"

    async def call(self, node: str, model: str, make: Awaitable[_T]) -> _T:
        """Await a model call, bounded by the deadline unless it runs in process."""
        if self.models.is_inline(model):
            return await make
        try:
            return await asyncio.wait_for(make, max(self.remaining(), 0.0))
        except TimeoutError:
            self.late.add(node)
            raise DeadlineExceeded(
                f"no answer within the {self.plan.spec.budget_ms:g} ms budget"
            ) from None

    async def fetch_sources(self, names: list[str]) -> dict[str, Answer]:
        sources = {n: self.plan.sources[n] for n in names if n in self.plan.sources}
        answers: dict[str, Answer] = {}
        sent = time.perf_counter()
        remote = {
            name: asyncio.ensure_future(self._source(name, node))
            for name, node in sources.items()
            if not self.models.is_inline(node.model)
        }
        for name, task in remote.items():
            task.add_done_callback(lambda _, name=name: self.timed(name, sent))  # type: ignore[misc]
        for name, node in sources.items():
            if name in remote:
                continue
            began = time.perf_counter()
            try:
                answers[name] = await self._source(name, node)
            except Exception as exc:  # noqa: BLE001 - one failing model must not fail the blend
                answers[name] = exc
            self.timed(name, began)
        for name in names:
            if name in self.plan.live:
                answers[name] = self.live_source(name, self.plan.live[name])
        if remote:
            await asyncio.wait(remote.values(), timeout=max(self.remaining(), 0.0))
            for name, task in remote.items():
                if not task.done():
                    task.cancel()
                    self.timed(name, sent)  # until it was given up
                    answers[name] = DeadlineExceeded(self.missed(name))
                elif task.exception() is not None:
                    answers[name] = task.exception()  # type: ignore[assignment]
                else:
                    answers[name] = task.result()
        return answers

    async def _source(self, name: str, node: SourceNodeSpec) -> SourceResult:
        """The source's answer, inside its node's span when the request is traced (the
        span is current in the task, so the model call is its child)."""
        spans = self.ctx.spans
        if spans is None:
            return await self._recommend(name, node)
        with spans.node(name, "source") as span:
            span.set_attribute("blendserve.model", node.model)
            answer = await self._recommend(name, node)
            span.set_attribute("blendserve.model.version", answer.version)
            span.set_attribute("blendserve.items", len(answer.item_ids))
            return answer

    async def _recommend(self, name: str, node: SourceNodeSpec) -> SourceResult:
        """The source's model's answer; its ``fallback_model``'s (bounded by the
        deadline) when the model has nothing for this user."""
        n = self.fetch(node.candidates)
        answer = await self.models.recommend(node.model, self.query, n)
        if node.fallback_model is None or len(answer.item_ids):
            return answer
        self.fallbacks.append(name)
        model = node.fallback_model
        return await self.call(name, model, self.models.recommend(model, self.query, n))

    def live_source(self, name: str, node: LiveSourceSpec) -> Ranked | BaseException:
        """A ``fresh`` or ``bandit`` node's list, or why it could not answer (in
        process, so answered however late the request is)."""
        if self.ctx.spans is not None:
            with self.ctx.spans.node(name, node.kind) as span:
                answer = self._live_source(name, node)
                if isinstance(answer, BaseException):
                    span.set_attribute("blendserve.failed", reason(answer))
                else:
                    span.set_attribute("blendserve.items", len(answer))
                return answer
        return self._live_source(name, node)

    def _live_source(self, name: str, node: LiveSourceSpec) -> Ranked | BaseException:
        began = time.perf_counter()
        recorded = self.ctx.recorded.get(name) if self.ctx.recorded else None
        try:
            if recorded is not None:
                return _replayed(name, node, recorded, self.items.table)
            return live_candidates(name, node, self.ctx, self.items.table)
        except Exception as exc:  # noqa: BLE001 - like a failing model: degrade, do not fail
            return exc
        finally:
            self.timed(name, began)
