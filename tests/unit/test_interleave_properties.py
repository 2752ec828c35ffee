"""Property tests of team-draft interleaving and sticky experiment assignment."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from ranked_lists import Lists

from blending.assign import bucket, pick_arm
from blending.candidates import Candidate
from blending.nodes import team_draft
from blending.ranked import Ranked

_items = st.lists(st.integers(0, 30).map(str), unique=True, max_size=20)
_lists = Lists()


def _ranking(ids: list[str]) -> Ranked:
    return _lists.source("r", *((i, float(len(ids) - n)) for n, i in enumerate(ids)))


def _draft(a: list[str], b: list[str], seed: int) -> list[Candidate]:
    return _lists.rows(team_draft((("A", _ranking(a)), ("B", _ranking(b))), random.Random(seed)))


@given(_items, _items, st.integers(0, 2**32))
def test_interleaving_never_shows_an_item_twice_and_loses_none(
    a: list[str], b: list[str], seed: int
) -> None:
    merged = _draft(a, b, seed)
    ids = [c.item_id for c in merged]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(a) | set(b)
    assert all(
        (c.team == "A" and c.item_id in a) or (c.team == "B" and c.item_id in b) for c in merged
    )


@given(_items, _items, st.integers(0, 2**32))
def test_teams_stay_balanced_while_both_have_items(a: list[str], b: list[str], seed: int) -> None:
    merged = _draft(a, b, seed)
    n_a = n_b = 0
    for candidate in merged:
        # while both teams could still pick, no team leads by more than one
        remaining_a = [i for i in a if i not in {c.item_id for c in merged[: n_a + n_b]}]
        remaining_b = [i for i in b if i not in {c.item_id for c in merged[: n_a + n_b]}]
        if remaining_a and remaining_b:
            assert abs(n_a - n_b) <= 1
        n_a += candidate.team == "A"
        n_b += candidate.team == "B"


@settings(max_examples=25, deadline=None)
@given(_items.filter(lambda x: len(x) >= 4), _items.filter(lambda x: len(x) >= 4))
def test_each_team_gets_an_equal_expected_share_of_the_top(a: list[str], b: list[str]) -> None:
    # Over many requests, team A's share of every top-k position prefix is 1/2.
    rankings = (("A", _ranking(a)), ("B", _ranking(b)))
    trials = 2000
    top = 3
    shares = [0.0] * top
    for seed in range(trials):
        merged = team_draft(rankings, random.Random(seed))
        assert merged.team is not None or not len(merged)
        for position in range(min(top, len(merged))):
            shares[position] += merged.team_at(position) == "A"
    disjoint_first = a[0] != b[0]
    if disjoint_first:  # with the same top item, the first pick's credit still halves
        for position in range(top):
            assert abs(shares[position] / trials - 0.5) < 0.06, (position, shares)
    assert abs(sum(shares[:2]) / trials - 1.0) < 0.06


def test_assignment_is_sticky_per_user() -> None:
    arms = [("control", 1.0), ("treatment", 1.0)]
    for user in ("u1", "u2", "someone@example"):
        first = pick_arm(arms, bucket("exp", user))
        assert all(pick_arm(arms, bucket("exp", user)) == first for _ in range(5))


def test_assignment_proportions_match_weights_over_10000_users() -> None:
    arms = [("a", 50.0), ("b", 30.0), ("c", 20.0), ("off", 0.0)]
    counts = dict.fromkeys(("a", "b", "c", "off"), 0)
    for n in range(10_000):
        counts[pick_arm(arms, bucket("home-ab", f"user-{n}"))] += 1
    assert counts["off"] == 0
    for arm, weight in (("a", 0.5), ("b", 0.3), ("c", 0.2)):
        assert abs(counts[arm] / 10_000 - weight) < 0.02, counts


def test_a_new_salt_reshuffles_users() -> None:
    arms = [("a", 1.0), ("b", 1.0)]
    same = sum(
        pick_arm(arms, bucket("s1", f"u{n}")) == pick_arm(arms, bucket("s2", f"u{n}"))
        for n in range(2000)
    )
    assert 0.4 < same / 2000 < 0.6


def test_assignment_ignores_the_order_arms_are_listed_in() -> None:
    forward = [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    for n in range(500):
        point = bucket("s", f"u{n}")
        assert pick_arm(forward, point) == pick_arm(list(reversed(forward)), point)
