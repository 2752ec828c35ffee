"""Score normalisation, so sources on different scales can be weighted together.

Each normaliser maps one source's score array to a new float64 array, in one pass
of numpy over the whole list.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["NORMALIZERS", "minmax", "none", "rank", "zscore"]


def minmax(scores: np.ndarray) -> np.ndarray:
    """Map scores linearly onto [0, 1]; all-equal scores all become 1."""
    scores = np.asarray(scores, dtype=np.float64)
    if not len(scores):
        return scores
    low, high = scores.min(), scores.max()
    if high == low:
        return np.ones(len(scores))
    scaled: np.ndarray = (scores - low) / (high - low)
    return scaled


def zscore(scores: np.ndarray) -> np.ndarray:
    """Centre on the mean and divide by the (population) standard deviation."""
    scores = np.asarray(scores, dtype=np.float64)
    if not len(scores):
        return scores
    centred = scores - scores.mean()
    std = np.sqrt(np.mean(centred * centred))
    if std == 0:
        return np.zeros(len(scores))
    standard: np.ndarray = centred / std
    return standard


def rank(scores: np.ndarray) -> np.ndarray:
    """Replace scores by rank: best ``1``, then ``(n - r) / n`` for 0-based rank ``r``.

    Ties share the better rank, so equal scores stay equal.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    order = np.argsort(-scores, kind="stable")
    descending = -scores[order]
    # Each score's rank is where the first equal score sits in the sorted list.
    first = np.searchsorted(descending, descending, side="left")
    out = np.empty(n)
    out[order] = (n - first) / n
    return out


def none(scores: np.ndarray) -> np.ndarray:
    """Keep scores as they are (for sources already on a shared scale)."""
    return np.asarray(scores, dtype=np.float64)


NORMALIZERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "minmax": minmax,
    "zscore": zscore,
    "rank": rank,
    "none": none,
}
