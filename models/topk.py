"""The k best columns of a score matrix, in one order everywhere: best first, equal
scores by lower column (item order).

Serving (every recommender format) and training (the metrics written into the
manifests) both rank through :func:`top_k_columns`, so the lists ``blendserve
evaluate`` gets from a published model are the lists its manifest was measured on,
ties included.
"""

from __future__ import annotations

import numpy as np

__all__ = ["top_k_columns"]


def top_k_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """``[rows, min(k, columns)]`` column indices, best first, ties by lower column.

    Linear in the number of columns (``argpartition``); rows whose k-th best score is
    shared beyond the cut are settled exactly, one row at a time.
    """
    rows, columns = scores.shape
    k = min(k, columns)
    if k <= 0 or rows == 0:
        return np.zeros((rows, 0), dtype=np.int64)
    if k < columns:
        picks = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(scores, picks, axis=1).min(axis=1)
        greater = (scores > kth[:, None]).sum(axis=1)
        equal = (scores == kth[:, None]).sum(axis=1)
        for row in np.flatnonzero(greater + equal > k):
            above = np.flatnonzero(scores[row] > kth[row])
            tied = np.flatnonzero(scores[row] == kth[row])[: k - len(above)]
            picks[row] = np.concatenate([above, tied])
        picks.sort(axis=1)
    else:
        picks = np.tile(np.arange(columns), (rows, 1))
    order = np.argsort(-np.take_along_axis(scores, picks, axis=1), axis=1, kind="stable")
    return np.take_along_axis(picks, order, axis=1)
