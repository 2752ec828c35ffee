"""The simulated population ``make power`` drives through the real service, with a
ground truth known exactly.

* **Users** of varying activity: a session's user is drawn in proportion to an
  activity weight (log-normal, so a few users have many sessions and most have one
  or two), and each user has a click propensity ``u`` (gamma, mean 1): sessions of
  one user are correlated, as on a real site, which is what sticky A/B assignment
  has to live with.
* **Position-biased clicks**: the item at position ``p`` (from 0) is examined with
  probability ``EXAMINE[p]`` and, if examined, clicked with probability ``q`` times
  ``u`` (capped at 1), where ``q`` is the quality of the ranker that put it there:
  the arm the user is in (A/B), or the team the item is credited to (interleaving,
  multileaving).
* **Rankers of known quality**: each run's rankers are real nodes of the served
  config (different sources and blends, so their lists differ); their quality is
  assigned here. A ranker's true CTR (clicks per impression, over sessions) is then
  exact: ``true_ctr``.

Use cases are generated per run (``serve_use_cases``), so many short experiments run
in parallel on one service, each with its own salt and counts.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from blending.assign import experiment_arm
from blending.experiment_specs import ExperimentNodeSpec

__all__ = [
    "EXAMINE",
    "LIFT",
    "RUN_KINDS",
    "K",
    "Population",
    "RunKind",
    "appeal",
    "qualities_of",
    "serve_use_cases",
    "session_events",
]

K = 10
"""Items per served list."""
EXAMINE = tuple(1.0 / (1.0 + p) ** 0.7 for p in range(K))
"""Chance a user looks at position p (from 0): a cascade-like position bias."""
BASE_QUALITY = 0.45
"""A ranker of quality 1's click chance per examined item, for a user with u = 1."""
LIFT = 0.11
"""The better ranker's edge in the power runs (the issue's +11% session CTR)."""

# The rankers every run chooses from: real nodes of the default models.
_RANKERS: dict[str, dict[str, Any]] = {
    "pop": {"kind": "source", "model": "popularity", "candidates": 100},
    "cf": {"kind": "source", "model": "mf", "candidates": 100},
    "rrf_mix": {
        "kind": "blend",
        "method": "rrf",
        "weights": {"cf": 1.0, "pop": 1.0},
    },
    "cf_heavy": {"kind": "blend", "normalize": "minmax", "weights": {"cf": 0.8, "pop": 0.2}},
    "pop_heavy": {"kind": "blend", "normalize": "minmax", "weights": {"cf": 0.2, "pop": 0.8}},
    # A small change: popularity's list with the staff picks mixed in (the picks the
    # list lacked enter it, the others move up).
    "picks": {"kind": "source", "model": "staff_picks", "candidates": 20},
    "pop_picks": {"kind": "blend", "normalize": "minmax", "weights": {"pop": 0.7, "picks": 0.3}},
}


@dataclass(frozen=True)
class RunKind:
    """One kind of run: how its use case is built and each ranker's quality."""

    name: str
    experiment: str
    """``experiment``, ``interleave`` or ``staged``."""
    arms: Mapping[str, str]
    """Arm (or team) -> ranker node."""
    quality: Mapping[str, float]
    """Arm (or team) -> quality (1 is the control's)."""
    item_clicks: bool = False
    """Clicks follow the items' appeal (a small change to a list: ``power_small_change.py``),
    not the quality of the ranker credited with them."""

    @property
    def best(self) -> str:
        """The arm (or team) of the highest quality: the one a verdict should pick."""
        return max(self.quality, key=lambda arm: self.quality[arm])


_STAGED_ARMS = {
    "control": "pop",
    "c1": "cf",
    "c2": "cf_heavy",
    "c3": "rrf_mix",
    "c4": "pop_heavy",
}
_STAGED_QUALITY = {"control": 1.0, "c1": 1.0 + LIFT, "c2": 1.05, "c3": 1.0, "c4": 0.95}

RUN_KINDS = {
    "aa": RunKind("aa", "experiment", {"control": "cf", "twin": "cf"}, {"control": 1, "twin": 1}),
    "ab": RunKind(
        "ab",
        "experiment",
        {"control": "pop", "challenger": "cf"},
        {"control": 1, "challenger": 1 + LIFT},
    ),
    "il": RunKind("il", "interleave", {"pop": "pop", "cf": "cf"}, {"pop": 1.0, "cf": 1.0 + LIFT}),
    "ab_small": RunKind(
        "ab_small",
        "experiment",
        {"control": "pop", "challenger": "pop_picks"},
        {"control": 1, "challenger": 1 + LIFT},
        item_clicks=True,
    ),
    "il_small": RunKind(
        "il_small",
        "interleave",
        {"pop": "pop", "pop_picks": "pop_picks"},
        {"pop": 1.0, "pop_picks": 1.0 + LIFT},
        item_clicks=True,
    ),
    "abn": RunKind("abn", "experiment", _STAGED_ARMS, _STAGED_QUALITY),
    "staged": RunKind("staged", "staged", _STAGED_ARMS, _STAGED_QUALITY),
}


def serve_use_cases(runs: Sequence[tuple[str, RunKind]], max_sessions: int) -> dict[str, Any]:
    """The Ingress ``use_cases`` of every run: ``(use case, kind)``; each use case's
    output is its experiment node, named ``exp``."""
    cases: dict[str, Any] = {}
    for use_case, kind in runs:
        nodes: dict[str, Any] = {}
        for ranker in set(kind.arms.values()):
            nodes.update(ranker_nodes(ranker))
        if kind.experiment == "interleave":
            nodes["exp"] = {"kind": "interleave", "teams": list(kind.arms)}
        else:
            nodes["exp"] = {
                "kind": "experiment",
                "salt": use_case,  # every run splits the users its own way
                "control": "control",
                "arms": {arm: {"node": node, "weight": 1} for arm, node in kind.arms.items()},
            }
            if kind.experiment == "staged":
                nodes["exp"]["prune"] = {"max_sessions": max_sessions}
        cases[use_case] = {"budget_ms": 500, "output": "exp", "nodes": nodes}
    return cases


def ranker_nodes(ranker: str) -> dict[str, Any]:
    """The nodes one ranker needs: itself and the nodes it reads."""
    spec = _RANKERS[ranker]
    reads = [*spec.get("weights", {}), *(spec[key] for key in ("input", "curated") if key in spec)]
    return {ranker: spec, **{read: _RANKERS[read] for read in reads}}


class Population:
    """Users with an activity weight and a click propensity; sessions and clicks."""

    def __init__(self, size: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.ids = [f"sim{seed}-{n}" for n in range(size)]
        self.activity = rng.lognormal(0.0, 1.0, size)
        self.propensity = rng.gamma(4.0, 0.25, size)
        self._cumulative = np.cumsum(self.activity) / self.activity.sum()

    def user(self, rng: random.Random) -> int:
        """A session's user (by activity)."""
        return int(np.searchsorted(self._cumulative, rng.random(), side="right"))

    def clicks(self, rng: random.Random, user: int, qualities: Sequence[float]) -> list[int]:
        """The positions ``user`` clicks in a list whose position p came from a ranker
        of quality ``qualities[p]``."""
        u = float(self.propensity[user])
        return [
            p
            for p, q in enumerate(qualities)
            if rng.random() < EXAMINE[p] and rng.random() < min(1.0, BASE_QUALITY * q * u)
        ]

    def item_clicks(
        self,
        rng: random.Random,
        user: int,
        items: Sequence[str],
        appeal_of: Callable[[str], float] | None = None,
    ) -> list[int]:
        """The positions ``user`` clicks in a list of ``items``, whose appeal (not a
        ranker's quality) sets the click chance: the counterfactual runs (``appeal``)
        and the small-change runs (``appeal_of``)."""
        chances = self.item_chances(user, items, appeal_of)
        return [p for p, chance in enumerate(chances) if rng.random() < chance]

    def expected_clicks(self, user: int, items: Sequence[str]) -> float:
        """The clicks ``user`` makes on ``items`` on average (exact)."""
        return float(sum(self.item_chances(user, items)))

    def item_chances(
        self, user: int, items: Sequence[str], appeal_of: Callable[[str], float] | None = None
    ) -> list[float]:
        """Each position's click chance: examined by position, clicked by appeal."""
        u = float(self.propensity[user])
        of = appeal if appeal_of is None else appeal_of
        return [EXAMINE[p] * min(1.0, BASE_QUALITY * of(item) * u) for p, item in enumerate(items)]

    def true_ctr(self, quality: float, users: np.ndarray | None = None) -> float:
        """Clicks per impression of a ranker of ``quality`` over sessions (users
        weighted by activity, every list K long): exact, not simulated. ``users`` (a
        mask) restricts it to the users an experiment arm holds."""
        chance = np.minimum(1.0, BASE_QUALITY * quality * self.propensity)
        per_user = chance * (sum(EXAMINE) / K)
        if users is None:
            return float(np.average(per_user, weights=self.activity))
        return float(np.average(per_user[users], weights=self.activity[users]))

    def arm_users(self, use_case: str, kind: RunKind) -> dict[str, np.ndarray]:
        """Arm -> mask of the users the service puts in it (the sticky assignment of
        ``use_case``'s experiment node, computed as the service computes it)."""
        spec = ExperimentNodeSpec.model_validate(
            serve_use_cases([(use_case, kind)], 1)[use_case]["nodes"]["exp"]
        )
        arms = np.array([experiment_arm("exp", spec, user, None) for user in self.ids])
        return {arm: arms == arm for arm in kind.arms}


def appeal(item: str) -> float:
    """An item's fixed appeal, between 0.5 and 1.5 (a hash of its id): what makes
    one ordering of items click better than another in the counterfactual runs."""
    digest = hashlib.blake2b(item.encode(), digest_size=8).digest()
    return 0.5 + int.from_bytes(digest, "big") / 2**64


def session_events(answer: Mapping[str, Any], clicked: Sequence[int]) -> list[dict[str, str]]:
    """The feedback of one served ``answer``: an impression per item, a click at each
    position in ``clicked`` (from 0)."""
    events = []
    for position, item in enumerate(answer["items"]):
        events.append({"result_id": item["result_id"], "event": "impression"})
        if position in clicked:
            events.append({"result_id": item["result_id"], "event": "click"})
    return events


def qualities_of(kind: RunKind, answer: Mapping[str, Any]) -> list[float]:
    """Each position's ranker quality in one served answer: the user's arm, or the
    team the item is credited to (interleaving and a first stage)."""
    arm = (answer.get("variant") or {}).get("exp")
    qualities = []
    for item in answer["items"]:
        team = item.get("team")
        owner = team if team is not None else arm
        if owner is None or owner not in kind.quality:
            raise ValueError(f"{kind.name}: cannot tell who ranked {item['item_id']}: {answer}")
        qualities.append(float(kind.quality[owner]))
    return qualities
