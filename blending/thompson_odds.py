"""Where Thompson sampling puts each item: the chance, per position, of a ``bandit``
list reaching the output through filters only.

A ``bandit`` node draws each item's click rate from its Beta posterior and ranks the
items by their draws (:func:`blending.live_sources.bandit_candidates`); filters then
drop items without reordering. An item ``x`` the list shows at served position ``p``
had its draw ``t`` above all but ``p`` of the kept items, and among the node's
``candidates`` best draws. The draws are independent, so, given ``t``, the number of
kept items above it is a Poisson-binomial count, and

    P(x at p) = integral of f_x(t) * P(exactly p kept others above t)
                                   * P(fewer than candidates - p dropped ones above t) dt.

The integral is taken on a grid that follows the shown items' own quantiles, with
the count's law linear between grid points and integrated exactly against ``f_x``
(incomplete-beta moments), so the chances agree with the bandit's own frequencies
to within a million draws' noise (``tests/unit/test_thompson_odds.py``). Items whose
draws can hardly reach the shown ones' (below ``TAIL``) are left out, items sure to
beat them are counted, and the rest are evaluated on the grid: about a microsecond
per item and grid point. Beyond :data:`MAX_WORK` (a bandit over about 60 items with
ten positions, some 7 ms a request; ``benchmarks/bandit_odds.py``) the chances are
logged as unknown rather than spend the request's budget on them: a bandit over a
handful of creatives or a shelf is priced, one over the live catalogue is not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy import special

from blending.branch import UnpricedDraw
from blending.candidates import Component
from blending.nodes import apply_filter
from blending.online import OnlineSnapshot, posterior
from blending.ranked import Ranked
from blending.request_items import RequestItems
from blending.spec import FilterNodeSpec

__all__ = ["MAX_WORK", "TAIL", "ThompsonLaw", "TooCostly", "thompson_odds"]

TAIL = 1e-10
"""Chance mass treated as nothing: the tails of a shown item's posterior beyond its
``TAIL`` quantiles, and items whose chance to beat the lowest shown draw is below it."""
MAX_WORK = 6_000
"""Incomplete-beta evaluations one list may spend (about a microsecond each)."""
_GRID = 96
"""About how many grid points the shown items' quantiles make together."""
_LEAST_EACH = 6
"""Fewest quantiles of each shown item in the grid."""
_TAILS = np.array([TAIL, 1e-5, 1e-2])
"""Levels of the quantiles in each tail of a shown item's posterior."""


class TooCostly(UnpricedDraw):
    """Pricing the list would take more than :data:`MAX_WORK` evaluations."""


def thompson_odds(
    alpha: np.ndarray,
    beta: np.ndarray,
    kept: np.ndarray,
    shown: np.ndarray,
    positions: int,
    candidates: int,
) -> np.ndarray:
    """``chances[s, p]``: the chance that the bandit's list, after its filters, shows
    item ``shown[s]`` at position ``p`` (from 0, the first ``positions``).

    Item ``j`` draws from ``Beta(alpha[j], beta[j])``; ``kept[j]`` says whether the
    filters keep it; the bandit keeps its ``candidates`` best draws before they
    filter. ``shown`` are indices of kept items.
    """
    a, b = alpha[shown], beta[shown]
    grid = _grid(a, b)
    others = np.ones(len(alpha), dtype=bool)
    others[shown] = False
    # Beyond the grid: never above the lowest point, or always above the highest.
    low = special.betaincc(alpha[others], beta[others], grid[0])
    high = special.betaincc(alpha[others], beta[others], grid[-1])
    index = np.flatnonzero(others)
    sure = index[high > 1.0 - TAIL]
    active = index[(low >= TAIL) & (high <= 1.0 - TAIL)]
    if len(active) * len(grid) > MAX_WORK:
        raise TooCostly(f"{len(active)} items could reach the shown ones: too many to price")
    # Chance that each item's draw is above each grid point.
    above = special.betaincc(alpha[active, None], beta[active, None], grid[None, :])
    above_shown = special.betaincc(a[:, None], b[:, None], grid[None, :])
    sure_kept = int(kept[sure].sum())
    width = positions - sure_kept
    if width <= 0:
        return np.zeros((len(shown), positions))
    counts = _poisson_binomial(above[kept[active]], width)
    # Each shown item's count of kept items above it: the others, plus every other shown.
    per_item = np.repeat(counts[None, :, :], len(shown), axis=0)
    for s in range(len(shown)):
        q = np.repeat(above_shown[s][None, :], len(shown), axis=0)
        q[s] = 0.0  # an item is never above itself
        per_item = _add_bernoulli(per_item, q)
    # P(the dropped items above t leave room under the cut) for each position.
    room = _room_under_cut(above[~kept[active]], candidates - int((~kept[sure]).sum()), positions)
    weights = _weights(a, b, grid)
    chances = np.zeros((len(shown), positions))
    chances[:, sure_kept:] = np.einsum("st,stc,tc->sc", weights, per_item, room[:, sure_kept:])
    return np.clip(chances, 0.0, 1.0)


def _grid(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Points where the shown items' posteriors hold their mass: each item's
    quantiles at evenly spaced levels, and a few in its tails."""
    each = max(_LEAST_EACH, _GRID // max(len(a), 1))
    levels = np.concatenate([_TAILS, (np.arange(each) + 0.5) / each, 1.0 - _TAILS])
    points = np.unique(special.betaincinv(a[:, None], b[:, None], levels[None, :]))
    if len(points) <= _GRID:
        return points
    # The shown items' quantiles crowd where their posteriors overlap: thin them
    # evenly by rank, which keeps the grid densest where the shown mass is.
    return points[np.unique(np.linspace(0, len(points) - 1, _GRID).round().astype(np.int64))]


def _poisson_binomial(above: np.ndarray, width: int) -> np.ndarray:
    """``counts[t, c]``: the chance that exactly ``c`` (< ``width``) of the items, each
    above grid point ``t`` with chance ``above[i, t]``, are above it."""
    counts = np.zeros((above.shape[1], width))
    counts[:, 0] = 1.0
    for q in above:
        counts = _add_bernoulli(counts, q)
    return counts


def _add_bernoulli(counts: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The truncated count law ``counts[..., c]`` with one more independent item,
    above with chance ``q[...]``."""
    grown = counts * (1.0 - q)[..., None]
    grown[..., 1:] += counts[..., :-1] * q[..., None]
    return grown


def _room_under_cut(dropped_above: np.ndarray, room: int, positions: int) -> np.ndarray:
    """``fits[t, p]``: the chance that fewer than ``room - p`` of the dropped items
    (each above grid point ``t`` with chance ``dropped_above[i, t]``) are above it,
    so an item at ``t`` with ``p`` kept ones above it is within the cut."""
    grid = dropped_above.shape[1]
    if len(dropped_above) < room - positions + 1:
        return np.ones((grid, positions))  # the cut cannot bind
    counts = _poisson_binomial(dropped_above, max(room, 1))
    below = np.cumsum(counts, axis=1)
    fits = np.zeros((grid, positions))
    for p in range(positions):
        limit = room - p - 1  # at most this many dropped above
        if limit >= 0:
            fits[:, p] = below[:, min(limit, counts.shape[1] - 1)]
    return fits


def _weights(a: np.ndarray, b: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``w[s, t]`` such that ``sum_t w[s, t] h(grid[t])`` integrates ``f_s h`` exactly
    for every ``h`` linear between grid points (hat functions against the Beta)."""
    below = special.betainc(a[:, None], b[:, None], grid[None, :])
    # The Beta's mean times the incomplete beta with one more success: int_0^t x f(x) dx.
    moment = (a / (a + b))[:, None] * special.betainc(a[:, None] + 1, b[:, None], grid[None, :])
    mass = np.diff(below, axis=1)
    first = np.diff(moment, axis=1)
    step = np.diff(grid)
    left = np.divide(grid[None, 1:] * mass - first, step, out=np.zeros_like(mass), where=step > 0)
    right = mass - left
    weights = np.zeros((len(a), len(grid)))
    weights[:, :-1] += left
    weights[:, 1:] += right
    return weights


@dataclass(frozen=True)
class ThompsonLaw:
    """The draws that ordered a ``bandit`` branch: the request's online snapshot, the
    node's prior and cut, the request's filter of source lists (its product rules),
    and the filter nodes the branch passed through since."""

    snapshot: OnlineSnapshot
    prior: tuple[float, float]
    candidates: int
    at_source: Callable[[Ranked], Ranked]
    filters: tuple[FilterNodeSpec, ...] = ()

    def filtered(self, node: FilterNodeSpec) -> ThompsonLaw:
        """The same draws, seen through one more filter node."""
        return replace(self, filters=(*self.filters, node))

    def odds(self, items: RequestItems, final: Ranked) -> list[dict[int, float]]:
        """Per position of ``final`` (the filtered output and the pool below it), each
        of its items -> its chance there, with this request's filters."""
        names = self.snapshot.items
        if len(names) * len(final) * _LEAST_EACH > MAX_WORK:
            raise TooCostly(f"a bandit over {len(names)} items: too many to price")
        alpha, beta = posterior(self.snapshot, names, self.prior)
        pool = items.table.indices(names)
        listed = self.at_source(Ranked(pool, np.zeros(len(pool)), _Unexplained()))
        for node in self.filters:
            listed = apply_filter(listed, items, node.drop, node.drop_unknown)
        kept = np.isin(pool, apply_filter(listed, items).items)
        if items.exclude:
            # The request's excluded ids were looked up before this law added the
            # snapshot's undrawn items to the table: match those by id.
            excluded = set(items.exclude)
            kept &= np.array([name not in excluded for name in names], dtype=bool)
        where = {item: i for i, item in enumerate(pool.tolist())}
        served = final.items.tolist()
        shown = np.array([where[item] for item in served], dtype=np.int64)
        chances = thompson_odds(alpha, beta, kept, shown, len(final), self.candidates)
        return [
            {item: float(chances[s, p]) for s, item in enumerate(served)} for p in range(len(final))
        ]


class _Unexplained:
    """Provenance of a list that is only filtered, never shown."""

    def components(self, row: int) -> tuple[Component, ...]:
        raise IndexError(f"row {row} of a list that is never shown")
