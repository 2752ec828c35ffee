"""Measure a trained scorer on a split, with the metrics ``blendserve evaluate`` uses.

A scorer gives ``[B, n_items]`` scores for rows of training users; each user's
training items are excluded before the top k is taken, so every user gets k unseen
items, and the lists go through :func:`models.metrics.evaluate_lists`: one
definition of every metric for the manifests and the evaluator.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import sparse

from models.metrics import evaluate_lists
from models.topk import top_k_columns
from models.training.split import Split

__all__ = ["ScoreRows", "metric_names", "score_split", "top_k_unseen"]

ScoreRows = Callable[[np.ndarray], np.ndarray]
"""Scores ``[len(rows), n_items]`` for an array of training-user row indices."""


def top_k_unseen(
    score_rows: ScoreRows, rows: np.ndarray, seen: sparse.csr_matrix, k: int, chunk: int = 512
) -> np.ndarray:
    """The ``k`` best unseen item columns per user row, best first ``[len(rows), k]``
    (ties to the lower column; fewer than k unseen items leave -1 at the end)."""
    out = np.full((len(rows), k), -1, dtype=np.int64)
    for start in range(0, len(rows), chunk):
        batch = rows[start : start + chunk]
        scores = np.array(score_rows(batch), dtype=np.float64)
        scores[seen[batch].nonzero()] = -np.inf
        best = top_k_columns(scores, k)
        best[np.take_along_axis(scores, best, axis=1) == -np.inf] = -1
        out[start : start + len(batch), : best.shape[1]] = best
    return out


def metric_names(k: int) -> dict[str, str]:
    """Manifest metric names (``recall_at_10``) by ``evaluate_lists`` key."""
    return {m: f"{m}_at_{k}" for m in ("precision", "recall", "ndcg", "map", "coverage")}


def score_split(
    split: Split, score_rows: ScoreRows, k: int, catalogue_size: int | None = None
) -> dict[str, float]:
    """``recall_at_k``, ``ndcg_at_k``, ``precision_at_k``, ``map_at_k`` and
    ``coverage_at_k`` on the held-out pairs, training items excluded. Coverage is the
    share of the catalogue (``catalogue_size`` items, default the training items)
    recommended to anyone, as ``blendserve evaluate`` counts it."""
    users, items = split.users, split.items
    held = split.held_out()
    evaluated = sorted(held)
    rows = users.get_indexer(evaluated)
    best = top_k_unseen(score_rows, rows, split.matrix(binary=True), k)
    item_ids = items.to_numpy()
    lists = {
        user: [str(item_ids[c]) for c in best[i] if c >= 0] for i, user in enumerate(evaluated)
    }
    counts = split.train.groupby("item_id")["user_id"].nunique().to_dict()
    result = evaluate_lists(lists, held, k, catalogue_size or len(items), counts, len(users))
    named = {name: float(result[key]) for key, name in metric_names(k).items()}
    named["heldout_users"] = float(len(evaluated))
    return named
