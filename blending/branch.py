"""What a node hands the nodes above it during one request: its list, the failures
beneath it, and whether a random draw shaped it, with the draw's law when the log
can price it (the propensities it keeps: ``blending/draft_odds.py`` for team
drafts, ``blending/thompson_odds.py`` for a bandit's Thompson draws)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from blending.ranked import Ranked

if TYPE_CHECKING:
    from blending.request_items import RequestItems
    from blending.spec import FilterNodeSpec

__all__ = ["Branch", "DrawLaw", "UnpricedDraw", "drawn", "list_odds", "merge_failures"]


class UnpricedDraw(RuntimeError):
    """The draw's chances would cost more to compute than one request may spend."""


class DrawLaw(Protocol):
    """The law of the random draw that ordered a branch, seen through the filter
    nodes since: it gives each position's chances for the list a request served."""

    def filtered(self, node: FilterNodeSpec) -> DrawLaw:
        """The same draw, seen through one more filter node."""
        ...

    def odds(self, items: RequestItems, final: Ranked) -> list[dict[int, float]]:
        """Per position of ``final`` (the filtered output), item -> the chance the draw
        puts it there; raises :class:`UnpricedDraw` when that is too costly."""
        ...


@dataclass
class Branch:
    """A node's list, the failures anywhere beneath it, and whether a random draw
    shaped it (with the draw's law when the list is that draw's order, filtered)."""

    items: Ranked
    failures: dict[str, str] = field(default_factory=dict)
    random: bool = False
    law: DrawLaw | None = None


def drawn(*branches: Branch) -> bool:
    """Whether a random draw shaped any of ``branches``."""
    return any(branch.random for branch in branches)


def merge_failures(*branches: Branch) -> dict[str, str]:
    """Every failure beneath ``branches``, by node."""
    merged: dict[str, str] = {}
    for branch in branches:
        merged.update(branch.failures)
    return merged


def list_odds(
    output: Branch, items: RequestItems, final: Ranked, reordered: bool
) -> list[dict[int, float]] | None:
    """Per position of ``final`` (the output's list after boosts and the last filter),
    item -> the chance the use case's draws put it there; None when no draw shaped
    the list (each item's chance is then 1).

    The chance is given the request, its user's experiment arms included: arms are
    assigned by user, and multiplying in an arm's share would count an item once per
    arm that can show it. A draw whose law the log cannot price (a draw mixed into a
    blend, a draft of drafts, a draw reordered after it, a draw too costly to price)
    gives NaN: unknown, not 1.
    """
    if not output.random:
        return None
    law = output.law
    if law is not None and not reordered and final.pinned is None:
        try:
            return law.odds(items, final)
        except UnpricedDraw:
            pass
    return [{item: math.nan} for item in final.items.tolist()]
