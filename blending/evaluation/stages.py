"""When a staged experiment's first stage ends, and which candidate survives it.

The first stage multileaves every candidate in each list (``blending/nodes.py``,
``team_draft``); each clicked list is a comparison between every pair of candidates
(the one whose items got more clicks wins it, Schuth et al. 2014). The leader is the
candidate with the most pairwise wins. It survives once the always-valid test
(``sequential.py``, safe to read after every list) shows it beats every other
candidate, each pair at ``alpha / (candidates - 1)``; or, at the latest, after
``max_sessions`` clicked lists, when it survives as the best guess. Plain Python: the
event log decides once and every ingress replica reads the same decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from blending.evaluation.sequential import sequential_interleaving
from blending.experiment_specs import PruneStageSpec

__all__ = ["PruneState", "prune_decision"]


@dataclass(frozen=True)
class PruneState:
    """Where a staged experiment's first stage stands."""

    survivor: str | None
    """The candidate the second stage A/B tests against the control; ``None`` while
    the first stage goes on."""
    leader: str | None
    """The candidate with the most pairwise wins so far."""
    clicked: int
    """Clicked lists of the first stage."""
    reason: str
    pairs: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """``pairs[a][b]``: the clicked lists in which ``a`` beat ``b`` (what it was
    decided on)."""

    def as_dict(self) -> dict[str, object]:
        """JSON-able, for the experiment API."""
        return {
            "stage": "prune" if self.survivor is None else "ab",
            "survivor": self.survivor,
            "leader": self.leader,
            "clicked_lists": self.clicked,
            "reason": self.reason,
            "pairwise_wins": {a: dict(b) for a, b in self.pairs.items()},
        }


def _beats(leader: str, other: str, won: int, lost: int, alpha: float) -> bool:
    """Whether the always-valid test shows ``leader`` beating ``other``."""
    return sequential_interleaving(won, lost, (leader, other), alpha).winner == leader


def prune_decision(
    candidates: Sequence[str],
    pairs: Mapping[str, Mapping[str, int]],
    clicked: int,
    spec: PruneStageSpec,
) -> PruneState:
    """The state of the first stage given ``pairs[a][b]``, the clicked lists in which
    ``a``'s items got more clicks than ``b``'s, and ``clicked`` lists in all."""
    if len(candidates) < 2:
        raise ValueError(f"candidates: expected at least two, got {list(candidates)}")

    def wins(a: str, b: str) -> int:
        return int(pairs.get(a, {}).get(b, 0))

    # Most pairwise wins; ties go to the first by name, so every reader agrees.
    leader = max(sorted(candidates), key=lambda a: sum(wins(a, b) for b in candidates))
    alpha = spec.alpha / (len(candidates) - 1)
    beaten = [
        other
        for other in candidates
        if other != leader
        and _beats(leader, other, wins(leader, other), wins(other, leader), alpha)
    ]
    if len(beaten) == len(candidates) - 1:
        reason = f"{leader} beats every other candidate (always valid, {alpha:.3g} per pair)"
        return PruneState(leader, leader, clicked, reason, pairs)
    if clicked >= spec.max_sessions:
        reason = (
            f"{leader} leads after {clicked} clicked lists (max_sessions), "
            f"beating {len(beaten)} of {len(candidates) - 1} others significantly"
        )
        return PruneState(leader, leader, clicked, reason, pairs)
    reason = (
        f"{leader} leads, beating {len(beaten)} of {len(candidates) - 1} others "
        f"significantly after {clicked} clicked lists"
    )
    return PruneState(None, leader, clicked, reason, pairs)
