"""Sticky, weighted assignment of users to experiment arms by a salted hash.

A user's bucket depends only on the salt and their id, so every replica, and every
restart, puts them in the same arm. Arms own consecutive slices of [0, 1) in name
order (never config order: re-saving a YAML file may reorder keys), so changing a
split moves only the users whose bucket changes owner.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["bucket", "pick_arm"]

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
