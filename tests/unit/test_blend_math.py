"""The blend maths on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from ranked_lists import Lists

from blending.nodes import apply_filter, apply_slots, weighted_blend
from blending.normalize import minmax, rank, zscore


def test_minmax_maps_onto_unit_interval() -> None:
    assert minmax(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    assert minmax(np.array([7.0, 7.0])).tolist() == [1.0, 1.0]


def test_zscore_uses_population_std() -> None:
    # mean 2, population std sqrt(2/3)
    assert zscore(np.array([1.0, 2.0, 3.0])).tolist() == pytest.approx(
        [-1.224744871, 0.0, 1.224744871]
    )
    assert zscore(np.array([5.0, 5.0])).tolist() == [0.0, 0.0]


def test_rank_scores_best_one_and_shares_ties() -> None:
    assert rank(np.array([0.1, 0.9, 0.5, 0.5])).tolist() == [0.25, 1.0, 0.75, 0.75]


def test_weighted_blend_sums_normalised_scores() -> None:
    lists = Lists()
    cf = lists.source("cf", ("x", 10.0), ("y", 6.0), ("z", 2.0))  # minmax -> 1, 0.5, 0
    pop = lists.source("pop", ("z", 100.0), ("y", 50.0))  # minmax -> 1, 0
    blended = lists.rows(weighted_blend([(0.6, cf), (0.4, pop)], "minmax"))
    scores = {c.item_id: c.score for c in blended}
    # x: 0.6*1 = 0.6; y: 0.6*0.5 + 0.4*0 = 0.3; z: 0.6*0 + 0.4*1 = 0.4
    assert scores == pytest.approx({"x": 0.6, "y": 0.3, "z": 0.4})
    assert [c.item_id for c in blended] == ["x", "z", "y"]


def test_blend_components_explain_the_score() -> None:
    lists = Lists()
    cf = lists.source("cf", ("x", 10.0), ("y", 6.0), ("z", 2.0))
    pop = lists.source("pop", ("z", 100.0), ("y", 50.0))
    blended = lists.rows(weighted_blend([(0.6, cf), (0.4, pop)], "minmax"))
    for candidate in blended:
        total = sum(c.weight * c.score for c in candidate.components if c.weight is not None)
        assert total == pytest.approx(candidate.score)
    y = next(c for c in blended if c.item_id == "y")
    assert {(c.source, c.raw_score) for c in y.components} == {("cf", 6.0), ("pop", 50.0)}


def test_rank_blend_ignores_score_scale() -> None:
    lists = Lists()
    a = lists.source("a", ("p", 1000.0), ("q", 1.0))
    b = lists.source("b", ("q", 0.2), ("p", 0.1))
    blended = lists.rows(weighted_blend([(1.0, a), (1.0, b)], "rank"))
    assert {c.item_id: c.score for c in blended} == {"p": 1.5, "q": 1.5}


def test_slots_pin_curated_items_at_positions() -> None:
    lists = Lists()
    ranked = lists.source("cf", ("a", 5.0), ("b", 4.0), ("c", 3.0), ("d", 2.0))
    picks = lists.source("picks", ("c", 1.0), ("e", 0.5))
    result = lists.rows(apply_slots(ranked, picks, [1, 3], lists.request()))
    assert [c.item_id for c in result] == ["c", "a", "e", "b", "d"]
    assert [c.pinned for c in result] == [True, False, True, False, False]
    c = result[0]
    assert {comp.source for comp in c.components} == {"cf", "picks"}
    assert [comp.slot for comp in c.components if comp.source == "picks"] == [1]


def test_slots_skip_excluded_picks() -> None:
    lists = Lists()
    ranked = lists.source("cf", ("a", 5.0), ("b", 4.0))
    picks = lists.source("picks", ("x", 1.0), ("y", 0.5))
    result = apply_slots(ranked, picks, [1], lists.request(exclude={"x"}))
    assert lists.ids(result) == ["y", "a", "b"]


def test_a_source_keeps_the_first_score_of_a_repeated_item() -> None:
    lists = Lists()
    items = lists.rows(lists.source("a", ("p", 3.0), ("q", 2.0), ("p", 1.0), ("r", 0.5)))
    assert [(c.item_id, c.score) for c in items] == [("p", 3.0), ("q", 2.0), ("r", 0.5)]


def test_filter_drops_excluded_items_and_stops_at_the_limit() -> None:
    lists = Lists()
    items = lists.source("b", ("q", 2.0), ("p", 1.0), ("r", 0.5), ("s", 0.2))
    assert lists.ids(apply_filter(items, lists.request(exclude={"r", "ghost"}))) == [
        "q",
        "p",
        "s",
    ]
    assert lists.ids(apply_filter(items, lists.request(exclude={"q"}), limit=2)) == ["p", "r"]
