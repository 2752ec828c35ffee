"""Exploration and propensities (issue 23): the logged propensity of each position is
the frequency with which the policy really shows that item there; protected positions
never explore; a replay draws the same; an experiment arm's share is not multiplied
in (users are assigned by user, so the draw given the request is the arm's alone)."""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np
import pytest
from ranked_lists import Lists
from scripted_models import Scripted, ScriptedModels

from blending.candidates import BlendContext
from blending.dag import BlendPlan
from blending.exploration import ExploreSpec, explore, explore_rng
from blending.ranked import Ranked
from blending.spec import UseCaseSpec

K = 5
IDS = [f"i{n:02d}" for n in range(K + 8)]
"""Five the blend ranks on top, eight below them (the pool)."""


def _ranked(lists: Lists) -> Ranked:
    return lists.source("blend", *[(item, 100.0 - n) for n, item in enumerate(IDS)])


def test_each_logged_propensity_is_how_often_that_item_is_shown_there() -> None:
    lists = Lists()
    ranked = _ranked(lists)
    spec = ExploreSpec(epsilon=0.2, pool=8)
    draws = 20_000
    shown: Counter[tuple[int, str]] = Counter()
    logged: dict[tuple[int, str], float] = {}
    for n in range(draws):
        served = explore(ranked, K, spec, explore_rng(f"r{n}", "home"))
        for position, (item, chance) in enumerate(
            zip(lists.ids(served.ranked), served.propensities.tolist(), strict=True)
        ):
            shown[position, item] += 1
            logged[position, item] = chance
    for key, chance in logged.items():
        assert shown[key] / draws == pytest.approx(chance, abs=0.01), key
    # A random ordering of 13 items (the top five and eight below) in a fifth of lists.
    assert logged[0, "i00"] == pytest.approx(0.8 + 0.2 / 13)
    assert logged[0, "i07"] == pytest.approx(0.2 / 13) and logged[4, "i01"] == logged[0, "i07"]
    assert len(logged) == K * 13, "every one of the 13 items can be at every position"


def test_kept_and_pinned_positions_never_explore_and_a_short_pool_turns_it_off() -> None:
    lists = Lists()
    ranked = _ranked(lists)
    pinned = np.zeros(len(ranked), dtype=bool)
    pinned[2] = True
    ranked.pinned = pinned
    spec = ExploreSpec(epsilon=0.5, pool=8, keep_top=1)
    for n in range(200):
        served = explore(ranked, K, spec, explore_rng(f"r{n}", "home"))
        ids = lists.ids(served.ranked)
        assert ids[0] == "i00" and ids[2] == "i02"
        assert served.propensities[0] == 1.0 and served.propensities[2] == 1.0
        assert len(set(ids)) == K
    # No pool below the top five: an explored list reorders those five.
    top = lists.source("top", *[(item, 100.0 - n) for n, item in enumerate(IDS[:K])])
    orders = set()
    for n in range(200):
        served = explore(top, K, ExploreSpec(epsilon=0.5, pool=8), explore_rng(f"r{n}", "x"))
        orders.add(tuple(lists.ids(served.ranked)))
        assert sorted(lists.ids(served.ranked)) == IDS[:K]
        moved = served.explored
        assert np.allclose(served.propensities[moved], 0.5 / K)
        assert np.allclose(served.propensities[~moved], 0.5 + 0.5 / K)
    assert len(orders) > 10


def test_a_replay_draws_what_the_request_drew() -> None:
    lists = Lists()
    ranked = _ranked(lists)
    spec = ExploreSpec(epsilon=0.3, pool=8)

    def ids(request_id: str) -> list[str]:
        return lists.ids(explore(ranked, K, spec, explore_rng(request_id, "home")).ranked)

    assert ids("req-1") == ids("req-1")
    assert len({tuple(ids(f"req-{n}")) for n in range(30)}) > 5


def test_a_plans_propensities_are_the_exploration_draw_whatever_the_users_arm() -> None:
    spec = UseCaseSpec.model_validate(
        {
            "output": "out",
            "explore": {"epsilon": 0.25, "pool": 4},  # nine items to order
            "nodes": {
                "a": {"kind": "source", "model": "m", "candidates": 20},
                "b": {"kind": "source", "model": "m", "candidates": 20},
                "ab": {
                    "kind": "experiment",
                    "arms": {"a": {"node": "a", "weight": 3}, "b": {"node": "b", "weight": 1}},
                },
                # The output filter keeps the pool below the top k for exploration.
                "out": {"kind": "filter", "input": "ab"},
            },
        }
    )
    plan = BlendPlan("home", spec)
    models = ScriptedModels(m=Scripted([(item, 100.0 - n) for n, item in enumerate(IDS)]))
    seen_explored = 0
    for n in range(40):
        user = f"u{n}"
        outcome = asyncio.run(plan.run(BlendContext(user, K, request_id=f"r{n}"), models))
        explored = set(outcome.explored)
        for position, (item, chance) in enumerate(
            zip(outcome.items, outcome.propensities, strict=True), start=1
        ):
            assert item.item_id in IDS[: K + 4]
            if position in explored:
                assert item.item_id != IDS[position - 1]
                assert chance == pytest.approx(0.25 / 9)
            else:
                assert item.item_id == IDS[position - 1]
                assert chance == pytest.approx(0.75 + 0.25 / 9)
        seen_explored += len(explored)
    assert seen_explored > 0
    plain = BlendPlan("plain", spec.model_copy(update={"explore": None}))
    outcome = asyncio.run(plain.run(BlendContext("u1", K, request_id="r"), models))
    # Both arms show the same list here: a share of 0.75 or 0.25 would price it
    # below certain and make IPS count each of its clicks once per arm.
    assert outcome.explored == () and set(outcome.propensities) == {1.0}
