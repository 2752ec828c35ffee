"""Score normalisation, so sources on different scales can be weighted together."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

__all__ = ["NORMALIZERS", "minmax", "none", "rank", "zscore"]


def minmax(scores: Sequence[float]) -> list[float]:
    """Map scores linearly onto [0, 1]; all-equal scores all become 1."""
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high == low:
        return [1.0] * len(scores)
    span = high - low
    return [(s - low) / span for s in scores]


def zscore(scores: Sequence[float]) -> list[float]:
    """Centre on the mean and divide by the (population) standard deviation."""
    if not scores:
        return []
    mean = sum(scores) / len(scores)
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
    if std == 0:
        return [0.0] * len(scores)
    return [(s - mean) / std for s in scores]


def rank(scores: Sequence[float]) -> list[float]:
    """Replace scores by rank: best ``1``, then ``(n - r) / n`` for 0-based rank ``r``.

    Ties share the better rank, so equal scores stay equal.
    """
    n = len(scores)
    order = sorted(range(n), key=lambda i: -scores[i])
    out = [0.0] * n
    current_rank = 0
    for position, index in enumerate(order):
        if position and scores[index] != scores[order[position - 1]]:
            current_rank = position
        out[index] = (n - current_rank) / n
    return out


def none(scores: Sequence[float]) -> list[float]:
    """Keep scores as they are (for sources already on a shared scale)."""
    return [float(s) for s in scores]


NORMALIZERS: dict[str, Callable[[Sequence[float]], list[float]]] = {
    "minmax": minmax,
    "zscore": zscore,
    "rank": rank,
    "none": none,
}
