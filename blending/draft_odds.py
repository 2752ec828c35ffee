"""Where a team draft puts each item: the exact chance, per position.

Counterfactual evaluation needs, for every position of an interleaved (or
multileaved) list, the probability that the draft would have put the shown item
there. The draft (:func:`blending.nodes.team_draft`) is random only in which of the
teams tied for fewest picks goes next, so its law is a walk over states: the items
shown so far and each team's picks. Those two fix everything ahead (each team's
next item is its best one not yet shown), so paths that reach the same state merge
and the walk stays small: for two teams a few states per position, for eight a few
hundred. The walk follows ``team_draft`` draw for draw, so the chances are exact
(tested against the empirical frequencies of the draft itself).

Filters after the draft drop items without reordering; an item they drop takes a
draft turn but no served position, which the walk counts the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from blending.branch import UnpricedDraw
from blending.nodes import apply_filter, draft_turn
from blending.ranked import Ranked
from blending.request_items import RequestItems
from blending.spec import FilterNodeSpec

__all__ = ["MAX_STATES", "DraftLaw", "TooManyStates", "draft_odds"]

MAX_STATES = 20_000
"""More states than this at one step and the walk gives up (the chances are then
logged as unknown rather than spend the request's budget on them)."""


class TooManyStates(UnpricedDraw):
    """The draft's law has more states than :data:`MAX_STATES` at some step."""


def draft_odds(
    rankings: Sequence[Sequence[int]],
    positions: int,
    kept: Callable[[int], bool] | None = None,
) -> list[dict[int, float]]:
    """For each of the first ``positions`` served positions, item -> the chance the
    team draft of ``rankings`` puts it there.

    ``kept(item)`` says whether the filters after the draft keep ``item`` (default:
    all kept); a dropped item uses its team's turn but no position. A position the
    draft may leave empty (the rankings run out) has chances summing to below 1.
    """
    odds: list[dict[int, float]] = [{} for _ in range(positions)]
    teams = len(rankings)
    # State: (items shown, picks per team) -> (chance, position reached, cursors).
    states: dict[tuple[frozenset[int], tuple[int, ...]], tuple[float, int, tuple[int, ...]]] = {
        (frozenset(), (0,) * teams): (1.0, 0, (0,) * teams)
    }
    while states:
        if len(states) > MAX_STATES:
            raise TooManyStates(f"a draft of {teams} teams has over {MAX_STATES} states")
        following: dict[
            tuple[frozenset[int], tuple[int, ...]], tuple[float, int, tuple[int, ...]]
        ] = {}
        for (shown, picks), (chance, position, cursors) in states.items():
            due = draft_turn(rankings, cursors, picks)
            if not due:
                continue
            share = chance / len(due)
            for side in due:
                item = rankings[side][cursors[side]]
                reached = position
                if kept is None or kept(item):
                    odds[position][item] = odds[position].get(item, 0.0) + share
                    reached += 1
                if reached == positions:
                    continue
                now_shown = shown | {item}
                now_picks = (*picks[:side], picks[side] + 1, *picks[side + 1 :])
                key = (now_shown, now_picks)
                held = following.get(key)
                if held is not None:
                    following[key] = (held[0] + share, reached, held[2])
                else:
                    following[key] = (share, reached, _advanced(rankings, cursors, now_shown))
        states = following
    return odds


def _advanced(
    rankings: Sequence[Sequence[int]], cursors: tuple[int, ...], shown: frozenset[int]
) -> tuple[int, ...]:
    """Each team's cursor moved past the items already shown."""
    moved = []
    for ranking, cursor in zip(rankings, cursors, strict=True):
        while cursor < len(ranking) and ranking[cursor] in shown:
            cursor += 1
        moved.append(cursor)
    return tuple(moved)


@dataclass(frozen=True)
class DraftLaw:
    """The draft that ordered a branch: each team's ranking (item indices), the full
    merged list it drew, and the filter nodes the branch passed through since."""

    rankings: list[list[int]]
    merged: Ranked
    filters: tuple[FilterNodeSpec, ...] = ()

    def filtered(self, node: FilterNodeSpec) -> DraftLaw:
        """The same draft, seen through one more filter node."""
        return replace(self, filters=(*self.filters, node))

    def odds(self, items: RequestItems, final: Ranked) -> list[dict[int, float]]:
        """Per position of ``final`` (the filtered output), item -> chance, with this
        request's filters (every filter node since the draft, then the output's)."""
        kept = self.merged
        for node in self.filters:
            kept = apply_filter(kept, items, node.drop, node.drop_unknown)
        survivors = set(apply_filter(kept, items).items.tolist())
        return draft_odds(self.rankings, len(final), survivors.__contains__)
