"""The propensities of a ``bandit`` list: the chance Thompson sampling puts each item
at each position, checked against how often the bandit itself does."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

from blending.candidates import BlendContext
from blending.catalog import ItemInfo, StaticCatalog
from blending.dag import BlendOutcome, BlendPlan
from blending.online import OnlineSnapshot
from blending.rules import FilterRule, compile_rules
from blending.spec import UseCaseSpec
from blending.thompson_odds import MAX_WORK, TooCostly, thompson_odds

NOW = 1_800_000_000.0


def _posteriors(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Beta posteriors of ``n`` items: a few well measured, most barely seen."""
    rng = np.random.default_rng(seed)
    shown = rng.lognormal(3.0, 1.5, n)
    clicks = rng.binomial(shown.astype(int) + 1, rng.beta(2, 30, n))
    return 1.0 + clicks, 19.0 + np.maximum(shown - clicks, 0.0)


def _frequencies(
    alpha: np.ndarray, beta: np.ndarray, kept: np.ndarray, cut: int, positions: int, draws: int
) -> np.ndarray:
    """``freq[j, p]``: how often the bandit's own draws, cut to ``cut`` and filtered,
    show item ``j`` at position ``p``."""
    rng = np.random.default_rng(11)
    counts = np.zeros((len(alpha), positions))
    for _ in range(draws // 50_000):
        order = np.argsort(-rng.beta(alpha, beta, size=(50_000, len(alpha))), axis=1)[:, :cut]
        survives = kept[order]
        position = np.cumsum(survives, axis=1) - 1
        hit = survives & (position < positions)
        np.add.at(counts, (order[hit], position[hit]), 1)
    return counts / draws


@pytest.mark.parametrize(
    ("items", "kept_share", "cut", "positions"),
    [(30, 1.0, 100, 10), (60, 0.8, 100, 10), (40, 0.5, 12, 8)],
    ids=["all-kept", "some-filtered", "cut-binds"],
)
def test_each_chance_is_how_often_the_bandit_shows_that_item_there(
    items: int, kept_share: float, cut: int, positions: int
) -> None:
    alpha, beta = _posteriors(items, seed=items)
    kept = np.random.default_rng(items).random(items) < kept_share
    draws = 400_000
    freq = _frequencies(alpha, beta, kept, cut, positions, draws)
    # The items of one list the bandit served.
    order = np.argsort(-np.random.default_rng(3).beta(alpha, beta))[:cut]
    shown = np.array([j for j in order if kept[j]][:positions])
    chances = thompson_odds(alpha, beta, kept, shown, positions, cut)
    seen = freq[shown]
    error = np.sqrt(np.maximum(seen, 1e-5) * (1 - seen) / draws)
    assert np.all(np.abs(chances - seen) <= 5 * error + 5e-4), np.abs(chances - seen).max()
    # The chances are of one law: no item is more than certain, no position overfull.
    assert np.all(chances.sum(axis=0) <= 1 + 1e-6) and np.all(chances.sum(axis=1) <= 1 + 1e-6)


def test_a_bandit_over_more_items_than_one_request_may_price_says_so() -> None:
    alpha, beta = _posteriors(MAX_WORK // 10, seed=1)
    with pytest.raises(TooCostly):
        thompson_odds(alpha, beta, np.ones(len(alpha), dtype=bool), np.arange(10), 10, 100)


SNAPSHOT = OnlineSnapshot(
    at=NOW,
    impressions={"a": 40.0, "b": 30.0, "c": 20.0, "d": 10.0, "e": 5.0, "f": 2.0},
    clicks={"a": 6.0, "b": 5.0, "c": 3.0, "d": 2.0, "e": 1.0},
)
_BANDIT = {"hot": {"kind": "bandit", "candidates": 4, "prior_impressions": 4}}


def _plan(nodes: dict[str, Any], **spec: Any) -> BlendPlan:
    return BlendPlan("news", UseCaseSpec.model_validate({"nodes": nodes, "output": "out", **spec}))


def _served(plan: BlendPlan, requests: int, **context: Any) -> list[BlendOutcome]:
    return [
        asyncio.run(
            plan.run(BlendContext("u", 3, request_id=f"r{n}", online=SNAPSHOT, **context), None)  # type: ignore[arg-type]
        )
        for n in range(requests)
    ]


def _check_logged_chances(outcomes: list[BlendOutcome]) -> dict[tuple[int, str], float]:
    """Every (position, item)'s logged chance, checked against how often it was served."""
    logged: dict[tuple[int, str], float] = {}
    shown: Counter[tuple[int, str]] = Counter()
    for outcome in outcomes:
        for position, (item, chance) in enumerate(
            zip(outcome.items, outcome.propensities, strict=True)
        ):
            shown[position, item.item_id] += 1
            # The chance is a property of the request's law, the same whatever was
            # drawn (up to the integral's grid, which follows the items shown).
            # The chance is a property of the request's law, the same whatever was drawn
            # (up to the integral's grid, which follows the items shown).
            assert logged.setdefault((position, item.item_id), chance) == pytest.approx(
                chance, abs=2e-3
            )
    for key, chance in logged.items():
        assert shown[key] / len(outcomes) == pytest.approx(chance, abs=0.035), key
    return logged


def test_a_bandit_use_case_logs_each_positions_true_chance_with_the_requests_filters() -> None:
    plan = _plan({**_BANDIT, "out": {"kind": "filter", "input": "hot"}})
    logged = _check_logged_chances(_served(plan, 3000, exclude=frozenset({"b"})))
    assert all(item != "b" for _, item in logged)
    assert min(logged.values()) > 0 and max(logged.values()) < 0.9


def test_a_product_rule_at_the_source_counts_in_the_chances() -> None:
    # "c" and "d" are out of stock: a rule drops them at the source, before any filter node.
    stock = {item: item not in "cd" for item in "abcdef"}
    catalog = StaticCatalog(
        {item: ItemInfo(None, True, None, {"in_stock": ok}) for item, ok in stock.items()},
        {"in_stock": "boolean"},
    )
    plan = _plan({**_BANDIT, "out": {"kind": "filter", "input": "hot"}})
    rules = compile_rules(
        catalog.attributes,
        None,
        [FilterRule.model_validate({"attribute": "in_stock", "equals": True})],
    )
    logged = _check_logged_chances(_served(plan, 3000, catalog=catalog, rules=rules, now=NOW))
    assert {item for _, item in logged} <= {"a", "b", "e", "f"}


def test_a_bandit_mixed_into_a_blend_is_logged_as_unknown_not_certain() -> None:
    # A blend re-scores the draws with another list: no law per position is kept.
    nodes = {
        **_BANDIT,
        "other": {"kind": "bandit", "candidates": 4},
        "mix": {"kind": "blend", "weights": {"hot": 1.0, "other": 1.0}},
        "out": {"kind": "filter", "input": "mix"},
    }
    outcome = _served(_plan(nodes), 1)[0]
    assert len(outcome.propensities) == 3
    assert all(math.isnan(chance) for chance in outcome.propensities)
