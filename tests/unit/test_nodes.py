"""Each node kind's maths on hand-computed cases."""

from __future__ import annotations

import random

import pytest
from ranked_lists import Lists

from blending.candidates import ScoreResult
from blending.catalog import ItemInfo, StaticCatalog
from blending.nodes import (
    apply_filter,
    apply_rerank,
    apply_slots,
    apply_stack,
    diversify,
    rrf_blend,
    share_positions,
    stack_features,
    team_draft,
)


def test_rrf_sums_weighted_reciprocal_ranks() -> None:
    lists = Lists()
    a = lists.source("a", ("x", 9.0), ("y", 5.0))
    b = lists.source("b", ("y", 0.3), ("z", 0.2))
    fused = lists.rows(rrf_blend([(1.0, a), (2.0, b)], k=1))
    scores = {c.item_id: c.score for c in fused}
    # x: 1/(1+1) = 0.5; y: 1/(1+2) + 2/(1+1) = 1.3333; z: 2/(1+2) = 0.6667
    assert scores == pytest.approx({"x": 0.5, "y": 4 / 3, "z": 2 / 3})
    assert [c.item_id for c in fused] == ["y", "z", "x"]
    y = fused[0]
    assert {(c.source, c.weight, c.raw_score) for c in y.components} == {
        ("a", 1.0, 5.0),
        ("b", 2.0, 0.3),
    }


def test_share_spreads_curated_positions_evenly() -> None:
    assert share_positions(0.2, 10) == [1, 6]
    assert share_positions(0.5, 4) == [1, 3]
    assert share_positions(0.01, 10) == [1]  # at least one
    assert share_positions(1.0, 3) == [1, 2, 3]


def test_share_slots_pin_a_fixed_share_of_the_list() -> None:
    lists = Lists()
    ranked = lists.source("cf", *[(f"r{i}", 10.0 - i) for i in range(10)])
    picks = lists.source("picks", ("p1", 1.0), ("p2", 0.9), ("p3", 0.8))
    result = apply_slots(ranked, picks, share_positions(0.2, 10), lists.request())
    top = lists.rows(result)[:10]
    assert [c.item_id for c in top if c.pinned] == ["p1", "p2"]
    assert top[0].item_id == "p1" and top[5].item_id == "p2"


def test_filter_applies_catalogue_rules_on_request() -> None:
    catalog = StaticCatalog({"p": ItemInfo("a"), "q": ItemInfo("a", available=False)})
    lists = Lists(catalog.table)
    items = lists.source("s", ("p", 3.0), ("q", 2.0), ("ghost", 1.0))
    request = lists.request(catalog=True)
    assert lists.ids(apply_filter(items, request)) == ["p", "ghost"]
    assert lists.ids(apply_filter(items, request, drop_unknown=True)) == ["p"]
    assert lists.ids(apply_filter(items, request, drop=["excluded"])) == ["p", "q", "ghost"]
    # Without a catalogue behind the request, catalogue rules have nothing to go by.
    assert lists.ids(apply_filter(items, lists.request(), drop_unknown=True)) == [
        "p",
        "q",
        "ghost",
    ]


def test_diversify_caps_each_category_in_the_top() -> None:
    catalog = StaticCatalog(
        {i: ItemInfo(c) for i, c in zip("abcdef", ["x", "x", "x", "y", "x", "y"], strict=True)}
    )
    lists = Lists(catalog.table)
    items = lists.source("s", *[(i, 6.0 - n) for n, i in enumerate("abcdef")])
    # top 4 with at most 2 of x: a, b (x), d, f (y); c and e wait, in order
    assert lists.ids(diversify(items, catalog.table, max_per_category=2, top=4)) == list("abdfce")
    assert lists.ids(diversify(items, catalog.table, max_per_category=2, top=2)) == list("abcdef")
    assert lists.ids(diversify(items, None, max_per_category=1, top=4)) == list("abcdef")


def test_diversify_never_caps_items_without_a_category() -> None:
    catalog = StaticCatalog({"u1": ItemInfo(None), "u2": ItemInfo(None)})
    lists = Lists(catalog.table)
    items = lists.source("s", ("u1", 2.0), ("u2", 1.0), ("u3", 0.5))
    assert lists.ids(diversify(items, catalog.table, max_per_category=1, top=3)) == [
        "u1",
        "u2",
        "u3",
    ]


def test_rerank_rescores_the_top_and_keeps_the_tail() -> None:
    lists = Lists()
    ranked = lists.source("cf", ("a", 3.0), ("b", 2.0), ("c", 1.0))
    scored = ScoreResult("ctr", "2", [0.2, 0.9])
    result = lists.rows(apply_rerank(ranked, scored, "clicks", depth=2))
    assert [c.item_id for c in result] == ["b", "a", "c"]
    assert [c.score for c in result] == [0.9, 0.2, 1.0]
    assert result[0].components[-1].model == "ctr" and result[2].components[-1].role is None
    with pytest.raises(ValueError, match="returned 1 scores for 2 items"):
        apply_rerank(ranked, ScoreResult("ctr", "2", [0.1]), "clicks", depth=2)


def test_stack_features_are_normalised_scores_with_zero_for_absent() -> None:
    lists = Lists()
    a = lists.source("a", ("x", 10.0), ("y", 0.0))
    b = lists.source("b", ("y", 4.0), ("z", 2.0), ("w", 0.0))
    items, rows = stack_features([a, b], "minmax")
    assert lists.ids(items) == ["x", "y", "z", "w"]
    assert rows.tolist() == [[1.0, 0.0], [0.0, 1.0], [0.0, 0.5], [0.0, 0.0]]
    scored = ScoreResult("lr", "1", [0.4, 0.7, 0.1, 0.9])
    stacked = lists.rows(apply_stack(items, scored, "learned"))
    assert [c.item_id for c in stacked] == ["w", "y", "x", "z"]
    assert {c.source for c in stacked[1].components} == {"a", "b", "learned"}


def test_team_draft_alternates_and_credits_teams() -> None:
    lists = Lists()
    a = lists.source("A", ("1", 1.0), ("2", 0.9), ("3", 0.8))
    b = lists.source("B", ("2", 1.0), ("4", 0.9), ("1", 0.8))
    merged = lists.rows(team_draft((("A", a), ("B", b)), random.Random(0)))
    assert sorted(c.item_id for c in merged) == ["1", "2", "3", "4"]
    for pair in (merged[0:2], merged[2:4]):
        assert {c.team for c in pair} == {"A", "B"}
    # whoever picks first takes its own best item
    first = merged[0]
    assert first.item_id == ("1" if first.team == "A" else "2")


def test_team_draft_fills_from_the_longer_ranking() -> None:
    lists = Lists()
    a = lists.source("A", ("1", 1.0))
    b = lists.source("B", ("2", 1.0), ("3", 0.5), ("4", 0.1))
    merged = lists.rows(team_draft((("A", a), ("B", b)), random.Random(3)))
    assert sorted(c.item_id for c in merged) == ["1", "2", "3", "4"]
    assert [c.team for c in merged].count("A") == 1


def test_candidates_from_another_process_keep_their_provenance() -> None:
    from blending.nodes import apply_filter
    from blending.ranked import Ranked

    lists = Lists()
    made = lists.rows(rrf_blend([(1.0, lists.source("a", ("x", 2.0), ("y", 1.0)))], k=1))
    elsewhere = Lists()
    again = Ranked.from_candidates(elsewhere.table, made)
    kept = elsewhere.rows(apply_filter(again, elsewhere.request(exclude={"x"})))
    assert [(c.item_id, c.score) for c in kept] == [("y", made[1].score)]
    assert kept[0].components == made[1].components
