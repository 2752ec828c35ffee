"""Sources computed in process, without a model: ``fresh`` (the newest items of the
live catalogue, with a share for items nobody has reacted to yet) and ``bandit``
(Thompson draws from the online click counts). Seeded by the request id, so a
request can be replayed."""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from blending.branch import UnpricedDraw
from blending.candidates import BlendContext
from blending.items import ItemTable
from blending.node_specs import BanditNodeSpec, LiveSourceSpec
from blending.online import OnlineSnapshot, thompson_draws
from blending.ranked import Ranked, Sourced
from blending.request_items import RequestItems
from blending.spec import FilterNodeSpec
from models.errors import ConfigError, ModelError

__all__ = [
    "EXPLORED",
    "FreshLaw",
    "RecentItems",
    "bandit_candidates",
    "fresh_candidates",
    "live_candidates",
]

EXPLORED = "freshness+explore"
"""The model a ``fresh`` node's explored rows name in their provenance."""


@runtime_checkable
class RecentItems(Protocol):
    """A catalogue that lists newly published items (the live catalogue does)."""

    def recent(self, now: float, max_age_s: float, limit: int) -> list[tuple[str, float]]:
        """Up to ``limit`` ``(item_id, published_at)`` published in the ``max_age_s``
        seconds before ``now``, newest first."""
        ...


def fresh_candidates(
    node: str,
    recent: Iterable[tuple[str, float]],
    now: float,
    table: ItemTable,
    *,
    candidates: int,
    half_life_hours: float,
    max_age_hours: float,
    explore_share: float,
    online: OnlineSnapshot | None,
    rng: random.Random,
) -> Ranked:
    """The newest ``candidates`` of ``recent``, each scored ``0.5 ** (age_h / half_life_h)``.

    Items published after ``now`` or more than ``max_age_hours`` before it are left
    out. ``explore_share`` of the list (rounded down, at least one when above zero)
    goes to items without feedback in ``online`` (every item, without a snapshot),
    drawn with ``rng`` from all of ``recent``; the newest of the others fill the rest.
    The list is ordered by score, newest first; explored items say so in their
    component's model (``freshness+explore``).
    """
    max_age_s = max_age_hours * 3600.0
    published: dict[str, float] = {}
    for item_id, at in recent:
        if 0.0 <= now - at <= max_age_s and item_id not in published:
            published[item_id] = at
    # Stable: equal times keep the catalogue's order.
    newest = sorted(published, key=lambda item: -published[item])
    explored: set[str] = set()
    if explore_share > 0:
        unseen = [i for i in newest if online is None or not online.has_feedback(i)]
        wanted = max(1, math.floor(explore_share * candidates))
        explored = set(rng.sample(unseen, min(wanted, len(unseen), candidates)))
    room = candidates - len(explored)
    ids: list[str] = []
    models: list[str] = []
    for item in newest:
        if item in explored:
            models.append(EXPLORED)
        elif room > 0:
            room -= 1
            models.append("freshness")
        else:
            continue
        ids.append(item)
    ages_h = (now - np.array([published[i] for i in ids], dtype=np.float64)) / 3600.0
    scores = np.power(0.5, ages_h / half_life_hours)
    why = Sourced(node, "freshness", "live", scores, models=models)
    return Ranked(table.indices(ids), scores, why)


def bandit_candidates(
    node: str,
    online: OnlineSnapshot | None,
    table: ItemTable,
    *,
    candidates: int,
    prior: tuple[float, float],
    rng: np.random.Generator,
) -> Ranked:
    """The ``candidates`` items of ``online`` with the best Thompson draws, best first.

    Each item's score is one draw of its click rate (see :func:`thompson_draws`).
    An empty snapshot (nothing learned yet: no feedback so far) gives no candidates;
    no snapshot at all (the state could not be fetched) raises ``ModelError``, and
    the node fails like a source that cannot answer.
    """
    if online is None:
        raise ModelError(f"node {node!r}: the request has no online snapshot of clicks")
    items = online.items
    if not items:
        return Ranked(table.indices([]), np.zeros(0), Sourced(node, "bandit", "live", np.zeros(0)))
    scores = thompson_draws(online, items, rng, prior)
    best = np.argsort(-scores) if candidates >= len(items) else _top(scores, candidates)
    drawn = np.asarray(scores[best], dtype=np.float64)
    ids = table.indices([items[i] for i in best.tolist()])
    return Ranked(ids, drawn, Sourced(node, "bandit", "live", drawn))


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` highest ``scores``, highest first, without a full sort."""
    head = np.argpartition(-scores, n - 1)[:n]
    return head[np.argsort(-scores[head])]


def live_candidates(name: str, node: LiveSourceSpec, ctx: BlendContext, table: ItemTable) -> Ranked:
    """The candidates of a ``fresh`` or ``bandit`` node for this request."""
    if isinstance(node, BanditNodeSpec):
        digest = hashlib.blake2b(f"{ctx.request_id}:{name}".encode(), digest_size=8).digest()
        rng = np.random.default_rng(int.from_bytes(digest, "big"))
        return bandit_candidates(
            name, ctx.online, table, candidates=node.candidates, prior=node.prior(), rng=rng
        )
    catalog = ctx.catalog
    if not isinstance(catalog, RecentItems):
        raise ConfigError(
            f"node {name!r}: expected a catalogue that lists recent items (`recent`), "
            f"got {'none' if catalog is None else type(catalog).__name__}"
        )
    now = time.time() if ctx.now is None else ctx.now
    return fresh_candidates(
        name,
        catalog.recent(now, node.max_age_hours * 3600.0, node.pool()),
        now,
        table,
        candidates=node.candidates,
        half_life_hours=node.half_life_hours,
        max_age_hours=node.max_age_hours,
        explore_share=node.explore_share,
        online=ctx.online,
        rng=random.Random(f"{ctx.request_id}:{name}"),
    )


@dataclass(frozen=True)
class FreshLaw:
    """What a ``fresh`` node's exploring share leaves to chance, for the propensities.

    The draw only picks which items nobody has seen join the list; the newest
    ``candidates - explored`` items are in it whatever is drawn, and they come first
    (the list is newest first). Their served positions, filtered or not, are the same
    in every draw: chance 1. An item beyond them is a draw's (unpriced)."""

    settled: frozenset[int]

    @classmethod
    def of(cls, answer: Ranked, candidates: int) -> FreshLaw:
        """The law of one ``fresh`` answer with ``candidates`` rows at most."""
        models = getattr(answer.why, "models", None) or ()
        explored = sum(model == EXPLORED for model in models)
        return cls(frozenset(answer.items[: max(candidates - explored, 0)].tolist()))

    def filtered(self, node: FilterNodeSpec) -> FreshLaw:
        """Filters drop items without reordering: settled positions stay settled."""
        return self

    def odds(self, items: RequestItems, final: Ranked) -> list[dict[int, float]]:
        """1 for each item of ``final`` at its position, when every one is settled."""
        served = final.items.tolist()
        if not self.settled.issuperset(served):
            raise UnpricedDraw("a fresh node's explored item is in the list")
        return [{item: 1.0} for item in served]
