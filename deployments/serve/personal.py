"""What makes one request's blend its user's own: the rules it asks for and what its
user has seen. Used by the ingress; the maths is in ``blending/rules.py`` and
``blending/seen.py``."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from blending.attributes import AttributeKind
from blending.catalog import ItemCatalog
from blending.items import ItemTable
from blending.rules import CompiledRules, RulesSpec, compile_rules
from blending.seen import SeenItems, SeenSpec, UserHistory
from blending.spec import UseCaseSpec
from deployments.api.schemas import RecommendRequest
from deployments.config.data import SeenConfig
from deployments.events.client import EventClient
from models.errors import InputError

__all__ = ["SeenFollower", "request_rules"]

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
