"""What a node hands the nodes above it during one request: its list, the failures
beneath it, and whether a random draw shaped it (for the propensities the log
keeps, ``blending/draft_odds.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from blending.ranked import Ranked

if TYPE_CHECKING:
    from blending.draft_odds import DraftLaw

__all__ = ["Branch", "drawn", "merge_failures"]


@dataclass
class Branch:
    """A node's list, the failures anywhere beneath it, and whether a random draw
    shaped it (with the draft's law when the list is a team draft's order, kept)."""

    items: Ranked
    failures: dict[str, str] = field(default_factory=dict)
    random: bool = False
    law: DraftLaw | None = None


def drawn(*branches: Branch) -> bool:
    """Whether a random draw shaped any of ``branches``."""
    return any(branch.random for branch in branches)


def merge_failures(*branches: Branch) -> dict[str, str]:
    """Every failure beneath ``branches``, by node."""
    merged: dict[str, str] = {}
    for branch in branches:
        merged.update(branch.failures)
    return merged
