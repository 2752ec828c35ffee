"""The blend maths on hand-computed cases."""

from __future__ import annotations

import pytest

from blending.candidates import BlendContext, Candidate, SourceResult
from blending.nodes import apply_filter, apply_slots, from_source, weighted_blend
from blending.normalize import minmax, rank, zscore


def _source(name: str, *items: tuple[str, float]) -> list[Candidate]:
    return from_source(name, SourceResult(name, "1", list(items)))


def test_minmax_maps_onto_unit_interval() -> None:
    assert minmax([2.0, 4.0, 3.0]) == [0.0, 1.0, 0.5]
    assert minmax([7.0, 7.0]) == [1.0, 1.0]


def test_zscore_uses_population_std() -> None:
    # mean 2, population std sqrt(2/3)
    assert zscore([1.0, 2.0, 3.0]) == pytest.approx([-1.224744871, 0.0, 1.224744871])
    assert zscore([5.0, 5.0]) == [0.0, 0.0]


def test_rank_scores_best_one_and_shares_ties() -> None:
    assert rank([0.1, 0.9, 0.5, 0.5]) == [0.25, 1.0, 0.75, 0.75]


def test_weighted_blend_sums_normalised_scores() -> None:
    cf = _source("cf", ("x", 10.0), ("y", 6.0), ("z", 2.0))  # minmax -> 1, 0.5, 0
    pop = _source("pop", ("z", 100.0), ("y", 50.0))  # minmax -> 1, 0
    blended = weighted_blend([(0.6, cf), (0.4, pop)], "minmax")
    scores = {c.item_id: c.score for c in blended}
    # x: 0.6*1 = 0.6; y: 0.6*0.5 + 0.4*0 = 0.3; z: 0.6*0 + 0.4*1 = 0.4
    assert scores == pytest.approx({"x": 0.6, "y": 0.3, "z": 0.4})
    assert [c.item_id for c in blended] == ["x", "z", "y"]


def test_blend_components_explain_the_score() -> None:
    cf = _source("cf", ("x", 10.0), ("y", 6.0), ("z", 2.0))
    pop = _source("pop", ("z", 100.0), ("y", 50.0))
    for candidate in weighted_blend([(0.6, cf), (0.4, pop)], "minmax"):
        total = sum(c.weight * c.score for c in candidate.components if c.weight is not None)
        assert total == pytest.approx(candidate.score)
    y = next(c for c in weighted_blend([(0.6, cf), (0.4, pop)], "minmax") if c.item_id == "y")
    assert {(c.source, c.raw_score) for c in y.components} == {("cf", 6.0), ("pop", 50.0)}


def test_rank_blend_ignores_score_scale() -> None:
    a = _source("a", ("p", 1000.0), ("q", 1.0))
    b = _source("b", ("q", 0.2), ("p", 0.1))
    blended = weighted_blend([(1.0, a), (1.0, b)], "rank")
    assert {c.item_id: c.score for c in blended} == {"p": 1.5, "q": 1.5}


def test_slots_pin_curated_items_at_positions() -> None:
    ranked = _source("cf", ("a", 5.0), ("b", 4.0), ("c", 3.0), ("d", 2.0))
    picks = _source("picks", ("c", 1.0), ("e", 0.5))
    result = apply_slots(ranked, picks, [1, 3], BlendContext("u", 10))
    assert [c.item_id for c in result] == ["c", "a", "e", "b", "d"]
    assert [c.pinned for c in result] == [True, False, True, False, False]
    c = result[0]
    assert {comp.source for comp in c.components} == {"cf", "picks"}
    assert [comp.slot for comp in c.components if comp.source == "picks"] == [1]


def test_slots_skip_excluded_picks() -> None:
    ranked = _source("cf", ("a", 5.0), ("b", 4.0))
    picks = _source("picks", ("x", 1.0), ("y", 0.5))
    result = apply_slots(ranked, picks, [1], BlendContext("u", 10, frozenset({"x"})))
    assert [c.item_id for c in result] == ["y", "a", "b"]


def test_filter_drops_excluded_and_duplicate_items() -> None:
    items = _source("a", ("p", 3.0)) + _source("b", ("q", 2.0), ("p", 1.0), ("r", 0.5))
    kept = apply_filter(items, BlendContext("u", 10, frozenset({"r"})))
    assert [c.item_id for c in kept] == ["p", "q"]
    assert kept[0].score == 3.0
