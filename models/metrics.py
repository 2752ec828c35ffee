"""Offline ranking metrics: how well top-k lists recover held-out interactions.

Pure functions with binary relevance (an item is relevant to a user when it is in
their held-out set). An item recommended twice in one list counts once, at its first
position. Definitions follow Manning, Raghavan & Schütze, *Introduction to
Information Retrieval* (2008), ch. 8 (precision, recall, MAP) and Järvelin &
Kekäläinen (2002), "Cumulated gain-based evaluation of IR techniques" (nDCG);
coverage and novelty follow Castells, Hurley & Vargas, "Novelty and Diversity in
Recommender Systems", *Recommender Systems Handbook* (2nd ed., 2015), ch. 26.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence

__all__ = [
    "PER_USER_METRICS",
    "average_precision_at_k",
    "catalogue_coverage",
    "evaluate_lists",
    "mean_interval",
    "ndcg_at_k",
    "novelty",
    "per_user",
    "precision_at_k",
    "recall_at_k",
]


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k: expected at least 1, got {k}")


def _hits(recommended: Sequence[str], relevant: Collection[str], k: int) -> list[bool]:
    """For each of the first ``k`` positions, whether it holds a new relevant item."""
    _check_k(k)
    seen: set[str] = set()
    hits = []
    for item in recommended[:k]:
        hits.append(item in relevant and item not in seen)
        seen.add(item)
    return hits


def precision_at_k(recommended: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Relevant items in the top ``k``, divided by ``k`` (a short list is not excused)."""
    return sum(_hits(recommended, relevant, k)) / k


def recall_at_k(recommended: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Share of the relevant items found in the top ``k``; 0 when nothing is relevant."""
    if not relevant:
        return 0.0
    return sum(_hits(recommended, relevant, k)) / len(relevant)


def ndcg_at_k(recommended: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Normalised discounted cumulative gain at ``k``, binary gains, log2 discount.

    ``DCG = sum over hits at 1-based rank i of 1 / log2(i + 1)``, divided by the DCG
    of an ideal list with ``min(k, |relevant|)`` hits on top; 0 when nothing is
    relevant.
    """
    if not relevant:
        return 0.0
    hits = _hits(recommended, relevant, k)
    dcg = sum(1.0 / math.log2(rank + 1) for rank, hit in enumerate(hits, start=1) if hit)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, len(relevant)) + 1))
    return dcg / ideal


def average_precision_at_k(recommended: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Average precision at ``k``: precision at each hit's rank, summed, divided by
    ``min(k, |relevant|)`` (so a perfect top k scores 1); 0 when nothing is relevant.
    MAP@k is its mean over users."""
    if not relevant:
        return 0.0
    found = 0
    total = 0.0
    for rank, hit in enumerate(_hits(recommended, relevant, k), start=1):
        if hit:
            found += 1
            total += found / rank
    return total / min(k, len(relevant))


def catalogue_coverage(recommendations: Iterable[Sequence[str]], catalogue_size: int) -> float:
    """Share of the catalogue recommended to anyone: distinct items over all lists
    (each already cut to its top k) divided by ``catalogue_size``."""
    if catalogue_size < 1:
        raise ValueError(f"catalogue_size: expected at least 1, got {catalogue_size}")
    distinct = {item for items in recommendations for item in items}
    return len(distinct) / catalogue_size


def novelty(
    recommendations: Iterable[Sequence[str]], item_counts: Mapping[str, int], n_users: int
) -> float:
    """Mean self-information ``-log2(count / n_users)`` of every recommended item.

    ``count`` is how many of ``n_users`` users interacted with the item (an unknown
    item, or a count of 0, counts as 1: seen by almost nobody; a count above
    ``n_users`` as ``n_users``). Higher means less obvious recommendations. The mean
    is over all list positions together; 0 when the lists are empty.
    """
    if n_users < 1:
        raise ValueError(f"n_users: expected at least 1, got {n_users}")
    total = 0.0
    count = 0
    for items in recommendations:
        for item in items:
            seen_by = min(max(int(item_counts.get(item, 1)), 1), n_users)
            total += -math.log2(seen_by / n_users)
            count += 1
    return total / count if count else 0.0


PER_USER_METRICS = ("precision", "recall", "ndcg", "map")
"""The metrics that are means over users (and so have an interval over users)."""


def per_user(
    recommendations: Mapping[str, Sequence[str]], held_out: Mapping[str, set[str]], k: int
) -> dict[str, list[float]]:
    """Each of :data:`PER_USER_METRICS` for every user with a held-out item, in the
    order of ``held_out`` (a missing user has an empty list)."""
    _check_k(k)
    users = [user for user, items in held_out.items() if items]
    lists = {user: list(recommendations.get(user, ()))[:k] for user in users}
    functions = {
        "precision": precision_at_k,
        "recall": recall_at_k,
        "ndcg": ndcg_at_k,
        "map": average_precision_at_k,
    }
    return {
        name: [metric(lists[u], held_out[u], k) for u in users]
        for name, metric in functions.items()
    }


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """The mean of per-user values and the half-width of its ``confidence`` interval
    (Student's t over users; 0 with fewer than two users)."""
    n = len(values)
    if n == 0:
        return 0.0, 0.0
    mean = math.fsum(values) / n
    if n < 2:
        return mean, 0.0
    from scipy.stats import t  # deferred: only intervals need it

    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, float(t.ppf(0.5 + confidence / 2, n - 1)) * math.sqrt(variance / n)


def evaluate_lists(
    recommendations: Mapping[str, Sequence[str]],
    held_out: Mapping[str, set[str]],
    k: int,
    catalogue_size: int,
    item_counts: Mapping[str, int],
    n_users: int,
) -> dict[str, float]:
    """Every metric of one blend's lists, as means over the users with a held-out item.

    ``recommendations`` maps a user to their list (a missing user has an empty one);
    each is cut to its top ``k``. Returns ``precision``, ``recall``, ``ndcg``, ``map``,
    ``coverage``, ``novelty`` (over those users' top-k lists), ``users`` (how many
    users were averaged over; every metric is 0 when there is none) and, for each of
    the first four, ``<metric>_ci``: the half-width of its 95% interval over users.
    """
    values = per_user(recommendations, held_out, k)
    users = [user for user, items in held_out.items() if items]
    lists = [list(recommendations.get(user, ()))[:k] for user in users]
    result: dict[str, float] = {}
    for name in PER_USER_METRICS:
        result[name], result[f"{name}_ci"] = mean_interval(values[name])
    result["coverage"] = catalogue_coverage(lists, catalogue_size)
    result["novelty"] = novelty(lists, item_counts, n_users)
    result["users"] = float(len(users))
    return result
