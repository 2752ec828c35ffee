"""Propensities of random draws (issue 23, item 1): an interleaved or multileaved
list logs, per position, the exact chance the draft puts that item there (checked
against how often the draft really does, filters and exploration included); a
draft whose order a later blend re-scores, whose law the log cannot price, is
logged as unknown, not as 1 (a bandit's: ``test_fresh_bandit_nodes.py``)."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from typing import Any

import pytest
from ranked_lists import Lists
from scripted_models import Scripted, ScriptedModels

from blending.candidates import BlendContext
from blending.dag import BlendPlan
from blending.draft_odds import draft_odds
from blending.nodes import team_draft
from blending.spec import UseCaseSpec

DRAWS = 6000


def _frequencies(teams: list[list[int]], positions: int, dropped: set[int]) -> Counter[Any]:
    """How often the real draft, then a filter dropping ``dropped``, puts each item
    (as the tests number them) at each position, over ``DRAWS`` draws."""
    lists = Lists()
    ranked = [
        (str(n), lists.source(str(n), *((str(item), 1.0 - r / 100) for r, item in enumerate(t))))
        for n, t in enumerate(teams)
    ]
    seen: Counter[tuple[int, int]] = Counter()
    for seed in range(DRAWS):
        merged = [int(item) for item in lists.ids(team_draft(ranked, random.Random(seed)))]
        shown = [item for item in merged if item not in dropped][:positions]
        seen.update(enumerate(shown))
    return seen


@pytest.mark.parametrize(
    ("teams", "dropped"),
    [
        # Two rankings that share items in different orders.
        ([[1, 2, 3, 4, 5, 6], [3, 1, 7, 8, 2, 9]], set()),
        # Three teams, one short, and a filter after the draft dropping item 2.
        ([[1, 2, 3, 4, 5], [2, 6, 1, 7], [8, 9, 3, 1, 10, 11]], {2}),
    ],
)
def test_the_drafts_odds_are_how_often_the_draft_puts_each_item_there(
    teams: list[list[int]], dropped: set[int]
) -> None:
    positions = 6
    odds = draft_odds(teams, positions, lambda item: item not in dropped)
    seen = _frequencies(teams, positions, dropped)
    for position in range(positions):
        assert sum(odds[position].values()) == pytest.approx(1.0)
        for item in set(odds[position]) | {i for p, i in seen if p == position}:
            frequency = seen[position, item] / DRAWS
            assert odds[position].get(item, 0.0) == pytest.approx(frequency, abs=0.02), (
                position,
                item,
            )


def _plan(nodes: dict[str, Any], output: str, **extra: Any) -> BlendPlan:
    spec = UseCaseSpec.model_validate({"nodes": nodes, "output": output, **extra})
    return BlendPlan("case", spec)


def _models() -> ScriptedModels:
    # Two rankers over overlapping items, in different orders.
    return ScriptedModels(
        left=Scripted([(f"i{n}", 1.0 - n / 20) for n in range(12)]),
        right=Scripted([(f"i{n}", 1.0 - n / 20) for n in (3, 0, 12, 13, 1, 14, 2, 15, 16, 4)]),
    )


_SOURCES = {
    "left": {"kind": "source", "model": "left", "candidates": 20},
    "right": {"kind": "source", "model": "right", "candidates": 20},
}


def _logged_and_shown(plan: BlendPlan, requests: int) -> tuple[dict[Any, float], Counter[Any]]:
    """Each (position, item)'s logged propensity and how often it was served, over
    ``requests`` requests of one user."""
    logged: dict[tuple[int, str], float] = {}
    shown: Counter[tuple[int, str]] = Counter()
    for n in range(requests):
        outcome = asyncio.run(plan.run(BlendContext("u1", 5, request_id=f"r{n}"), _models()))
        for position, (item, chance) in enumerate(
            zip(outcome.items, outcome.propensities, strict=True)
        ):
            key = (position, item.item_id)
            shown[key] += 1
            assert logged.setdefault(key, chance) == pytest.approx(chance), key
    return logged, shown


@pytest.mark.parametrize("explore", [None, {"epsilon": 0.3, "pool": 3}])
def test_an_interleaved_use_case_logs_each_positions_true_chance(
    explore: dict[str, Any] | None,
) -> None:
    nodes = {**_SOURCES, "duel": {"kind": "interleave", "teams": ["left", "right"]}}
    nodes["out"] = {"kind": "filter", "input": "duel"}
    plan = _plan(nodes, "out", **({"explore": explore} if explore else {}))
    requests = 3000
    logged, shown = _logged_and_shown(plan, requests)
    assert min(logged.values()) < 0.6, "the draft is random: no position is certain"
    for key, chance in logged.items():
        assert shown[key] / requests == pytest.approx(chance, abs=0.03), key


def test_a_draft_reshuffled_by_a_blend_is_logged_as_unknown_and_a_plain_blend_as_certain() -> None:
    nodes = {**_SOURCES, "mix": {"kind": "blend", "weights": {"left": 1.0, "right": 1.0}}}
    plain = asyncio.run(_plan(nodes, "mix").run(BlendContext("u1", 5, request_id="r"), _models()))
    assert plain.propensities == [1.0] * 5
    # A draft fed into a blend: its order is re-scored, the law is lost.
    nodes = {
        **_SOURCES,
        "duel": {"kind": "interleave", "teams": ["left", "right"]},
        "mix": {"kind": "blend", "weights": {"duel": 1.0, "left": 1.0}},
    }
    mixed = asyncio.run(_plan(nodes, "mix").run(BlendContext("u1", 5, request_id="r"), _models()))
    assert len(mixed.propensities) == 5 and all(math.isnan(p) for p in mixed.propensities)
