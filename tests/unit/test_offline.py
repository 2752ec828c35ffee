"""Offline ranking metrics on a tiny dataset whose every value is worked out by hand.

k = 3, catalogue a-f (6 items). log2(3) = 1.5849625, so 1/log2(3) = 0.6309298.

=====  ===============  ============  =====================================================
user   list             held out      at 3
=====  ===============  ============  =====================================================
u1     a b c f          {a, c}        hits 1 0 1 (f is cut off at k)
                                      P 2/3  R 2/2  DCG 1 + 1/2 = 1.5
                                      IDCG (2 hits) 1 + 0.6309298 = 1.6309298
                                      nDCG 0.9197208  AP (1/1 + 2/3) / 2 = 0.8333333
u2     d e a            {e, f, b, a}  hits 0 1 1
                                      P 2/3  R 2/4  DCG 0.6309298 + 0.5 = 1.1309298
                                      IDCG (3 hits) 1 + 0.6309298 + 0.5 = 2.1309298
                                      nDCG 0.5307213  AP (1/2 + 2/3) / 3 = 0.3888889
u3     b c              {f}           no hit: P 0 (a short list is not excused), R, nDCG, AP 0
u4     a a b            {}            no held-out item: left out of every mean
=====  ===============  ============  =====================================================

Means over u1-u3: P 4/9, R 0.5, nDCG 1.4504421 / 3 = 0.4834807, MAP 1.2222222 / 3 =
0.4074074. Coverage: u1-u3's top-3 lists hold {a, b, c, d, e}: 5 of 6.

Novelty with n_users 4 and counts a 4, b 2, c 1, e 2, d unknown (counts as 1):
self-information a 0, b 1, c 2, d 2, e 1 bits. Positions u1 a b c = 3, u2 d e a = 3,
u3 b c = 3: 9 bits over 8 positions = 1.125.
"""

from __future__ import annotations

import pytest

from models.metrics import (
    PER_USER_METRICS,
    average_precision_at_k,
    catalogue_coverage,
    evaluate_lists,
    mean_interval,
    ndcg_at_k,
    novelty,
    precision_at_k,
    recall_at_k,
)

K = 3
LISTS = {
    "u1": ["a", "b", "c", "f"],
    "u2": ["d", "e", "a"],
    "u3": ["b", "c"],
    "u4": ["a", "a", "b"],
}
HELD_OUT: dict[str, set[str]] = {
    "u1": {"a", "c"},
    "u2": {"e", "f", "b", "a"},
    "u3": {"f"},
    "u4": set(),
}
COUNTS = {"a": 4, "b": 2, "c": 1, "e": 2, "f": 1}
N_USERS = 4


@pytest.mark.parametrize(
    ("user", "precision", "recall", "ndcg", "ap"),
    [
        ("u1", 2 / 3, 1.0, 1.5 / 1.6309298, 0.8333333),
        ("u2", 2 / 3, 0.5, 1.1309298 / 2.1309298, 0.3888889),
        ("u3", 0.0, 0.0, 0.0, 0.0),
    ],
)
def test_per_user_metrics_match_the_hand_computation(
    user: str, precision: float, recall: float, ndcg: float, ap: float
) -> None:
    items, relevant = LISTS[user], HELD_OUT[user]
    assert precision_at_k(items, relevant, K) == pytest.approx(precision)
    assert recall_at_k(items, relevant, K) == pytest.approx(recall)
    assert ndcg_at_k(items, relevant, K) == pytest.approx(ndcg, abs=1e-7)
    assert average_precision_at_k(items, relevant, K) == pytest.approx(ap, abs=1e-7)


def test_a_repeated_item_counts_once() -> None:
    # a a c against {a}: one hit at rank 1; the second a is not a new hit.
    assert precision_at_k(["a", "a", "c"], {"a"}, 3) == pytest.approx(1 / 3)
    assert ndcg_at_k(["a", "a", "c"], {"a"}, 3) == pytest.approx(1.0)
    assert average_precision_at_k(["a", "a", "c"], {"a"}, 3) == pytest.approx(1.0)


def test_nothing_relevant_scores_zero_and_k_must_be_positive() -> None:
    assert recall_at_k(["a"], set(), 3) == 0.0
    assert ndcg_at_k(["a"], set(), 3) == 0.0
    assert average_precision_at_k(["a"], set(), 3) == 0.0
    with pytest.raises(ValueError, match="k: expected at least 1"):
        precision_at_k(["a"], {"a"}, 0)


def test_coverage_counts_distinct_items_over_the_catalogue() -> None:
    top = [items[:K] for items in LISTS.values()]
    assert catalogue_coverage(top, 6) == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="catalogue_size"):
        catalogue_coverage(top, 0)


def test_novelty_is_mean_self_information_with_unknown_items_as_rare() -> None:
    top = [LISTS[u][:K] for u in ("u1", "u2", "u3")]
    assert novelty(top, COUNTS, N_USERS) == pytest.approx(1.125)
    assert novelty([], COUNTS, N_USERS) == 0.0


def test_evaluate_lists_averages_over_users_with_held_out_items() -> None:
    metrics = evaluate_lists(LISTS, HELD_OUT, K, catalogue_size=6, item_counts=COUNTS, n_users=4)
    intervals = {name: metrics.pop(f"{name}_ci") for name in PER_USER_METRICS}
    assert all(width > 0 for width in intervals.values())
    assert metrics == pytest.approx(
        {
            "precision": 4 / 9,
            "recall": 0.5,
            "ndcg": 0.4834807,
            "map": 0.4074074,
            "coverage": 5 / 6,
            "novelty": 1.125,
            "users": 3.0,
        },
        abs=1e-7,
    )


def test_the_interval_over_users_is_students_t() -> None:
    # Four users, recall 0, 1, 1, 0: mean 0.5, standard error 0.2887, t(0.975, 3) 3.182.
    mean, half_width = mean_interval([0.0, 1.0, 1.0, 0.0])
    assert mean == 0.5 and half_width == pytest.approx(0.9187, abs=1e-4)
    assert mean_interval([0.3]) == (0.3, 0.0) and mean_interval([]) == (0.0, 0.0)


def test_a_user_without_a_list_counts_as_a_miss() -> None:
    metrics = evaluate_lists({}, {"u1": {"a"}}, 2, catalogue_size=1, item_counts={}, n_users=1)
    assert metrics["precision"] == 0.0 and metrics["users"] == 1.0
    assert metrics["coverage"] == 0.0 and metrics["novelty"] == 0.0
