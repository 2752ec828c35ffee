"""Sticky, weighted assignment of users to experiment arms by a salted hash.

A user's bucket depends only on the salt and their id, so every replica, and every
restart, puts them in the same arm. Arms own consecutive slices of [0, 1) in name
order (never config order: re-saving a YAML file may reorder keys), so changing a
split moves only the users whose bucket changes owner.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from blending.experiment_specs import ExperimentNodeSpec

__all__ = ["PRUNE", "arm_share", "bucket", "experiment_arm", "live_arms", "pick_arm"]

PRUNE = "_prune"
"""A staged experiment's arm for everyone in its first stage (no arm name can start
with ``_``): the served list multileaves every candidate."""

_SCALE = float(1 << 64)


def bucket(salt: str, user_id: str) -> float:
    """A uniform number in [0, 1) fixed by ``salt`` and ``user_id``."""
    digest = hashlib.blake2b(f"{salt}\x00{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def pick_arm(arms: Sequence[tuple[str, float]], point: float) -> str:
    """The arm whose slice of [0, 1) holds ``point``; slices are weight-proportional.

    Slices follow the arms' names in sorted order, whatever order they come in.
    Arms with weight 0 get no users. At least one weight must be positive.
    """
    arms = sorted(arms)
    total = sum(weight for _, weight in arms)
    if total <= 0:
        raise ValueError("at least one arm needs a positive weight")
    edge = 0.0
    chosen = None
    for name, weight in arms:
        if weight <= 0:
            continue
        chosen = name
        edge += weight / total
        if point < edge:
            return name
    assert chosen is not None
    return chosen  # rounding left the top sliver: it belongs to the last arm


def live_arms(node: ExperimentNodeSpec, survivor: str | None) -> list[str]:
    """The arms users are split between: all of them, or in a staged experiment's
    second stage the control and the ``survivor``."""
    if node.prune is None:
        return list(node.arms)
    if survivor is None:
        raise ValueError("a staged experiment splits users only once a candidate survived")
    return [node.control_arm(), survivor]


def experiment_arm(name: str, node: ExperimentNodeSpec, user_id: str, survivor: str | None) -> str:
    """The arm of experiment ``name`` that ``user_id`` is in (sticky); a staged
    experiment's is ``PRUNE`` until its first stage has a ``survivor``, then the
    control or the survivor."""
    if node.prune is not None and survivor is None:
        return PRUNE
    arms = [(arm, node.arms[arm].weight) for arm in live_arms(node, survivor)]
    return pick_arm(arms, bucket(node.salt or name, user_id))


def arm_share(node: ExperimentNodeSpec, arm: str, survivor: str | None) -> float:
    """The share of users ``arm`` gets (1 for a first stage's multileaved list)."""
    if arm == PRUNE:
        return 1.0
    arms = live_arms(node, survivor)
    return node.arms[arm].weight / sum(node.arms[a].weight for a in arms)
