"""The ``fresh`` and ``bandit`` nodes: validation, and whole plans that use them."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from pydantic import ValidationError
from scripted_models import Scripted, ScriptedModels

from blending.candidates import BlendContext, Component
from blending.catalog import ItemInfo, StaticCatalog
from blending.dag import BlendOutcome, BlendPlan
from blending.items import ItemTable
from blending.online import OnlineSnapshot
from blending.spec import UseCaseSpec

NOW = 1_700_000_000.0
HOUR = 3600.0


class RecentCatalog:
    """A catalogue of items by publication time, answering ``get`` and ``recent`` as
    the live catalogue does; records each ``recent`` call."""

    def __init__(self, ages_h: dict[str, float]) -> None:
        self.published = {item: NOW - hours * HOUR for item, hours in ages_h.items()}
        self.calls: list[tuple[float, float, int]] = []
        self.table = ItemTable()
        for item in self.published:
            self.table.set_facts(item, known=True, available=True, category=None)

    def get(self, item_id: str) -> ItemInfo | None:
        return ItemInfo() if item_id in self.published else None

    def recent(self, now: float, max_age_s: float, limit: int) -> list[tuple[str, float]]:
        self.calls.append((now, max_age_s, limit))
        within = [(i, at) for i, at in self.published.items() if now - max_age_s <= at <= now]
        return sorted(within, key=lambda pair: -pair[1])[:limit]


def _plan(nodes: dict[str, Any], output: str = "out") -> BlendPlan:
    return BlendPlan("news", UseCaseSpec.model_validate({"nodes": nodes, "output": output}))


def _run(plan: BlendPlan, ctx: BlendContext, models: ScriptedModels | None = None) -> BlendOutcome:
    return asyncio.run(plan.run(ctx, models or ScriptedModels()))


def _ctx(request_id: str = "r1", k: int = 10, **kwargs: Any) -> BlendContext:
    return BlendContext("u", k, request_id=request_id, now=NOW, **kwargs)


def _fresh(**settings: Any) -> dict[str, Any]:
    return {"fresh": {"kind": "fresh", **settings}, "out": {"kind": "filter", "input": "fresh"}}


def _bandit(**settings: Any) -> dict[str, Any]:
    return {"hot": {"kind": "bandit", **settings}, "out": {"kind": "filter", "input": "hot"}}


def _error(nodes: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        UseCaseSpec.model_validate({"nodes": nodes, "output": "out"})
    return str(info.value)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"half_life_hours": 0}, "half_life_hours\n  Input should be greater than 0"),
        ({"half_life_hours": -2}, "half_life_hours\n  Input should be greater than 0"),
        ({"max_age_hours": 0}, "max_age_hours\n  Input should be greater than 0"),
        ({"explore_share": 1.5}, "explore_share\n  Input should be less than or equal to 1"),
        ({"explore_share": -0.1}, "explore_share\n  Input should be greater than or equal to 0"),
        ({"candidates": 0}, "candidates\n  Input should be greater than or equal to 1"),
        ({"half_life": 24}, "half_life\n  Extra inputs are not permitted"),
    ],
)
def test_bad_fresh_settings_name_the_node_and_field(
    settings: dict[str, Any], expected: str
) -> None:
    message = _error(_fresh(**settings))
    assert "nodes.fresh.fresh." in message and expected in message


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"prior_clicks": 0}, "prior_clicks\n  Input should be greater than 0"),
        ({"prior_impressions": -1}, "prior_impressions\n  Input should be greater than 0"),
        (
            {"prior_clicks": 5, "prior_impressions": 5},
            "node 'hot': prior_impressions must be > prior_clicks (5), got 5",
        ),
    ],
)
def test_a_bad_bandit_prior_names_the_node(settings: dict[str, Any], expected: str) -> None:
    assert expected in _error(_bandit(**settings))


def test_live_sources_are_sources_but_not_models() -> None:
    nodes = {
        "cf": {"kind": "source", "model": "mf"},
        "fresh": {"kind": "fresh"},
        "hot": {"kind": "bandit"},
        "out": {"kind": "blend", "weights": {"cf": 1, "fresh": 1, "hot": 1}},
    }
    spec = UseCaseSpec.model_validate({"nodes": nodes, "output": "out"})
    assert spec.models() == {"mf"}
    assert set(spec.sources()) == {"cf"} and set(spec.live_sources()) == {"fresh", "hot"}
    spec.check_models("news", ["mf"])  # no unknown model reported for them
    fresh = spec.nodes["fresh"]
    assert fresh.model_dump() == {
        "kind": "fresh",
        "candidates": 50,
        "half_life_hours": 24,
        "max_age_hours": 168,
        "explore_share": 0.1,
    }


def test_fresh_lists_the_newest_first_scored_by_half_life_and_cut_at_max_age() -> None:
    catalog = RecentCatalog({"a": 0, "b": 24, "c": 48, "d": 6, "old": 200})
    plan = _plan(_fresh(half_life_hours=24, max_age_hours=168, explore_share=0))
    outcome = _run(plan, _ctx(catalog=catalog))
    assert [c.item_id for c in outcome.items] == ["a", "d", "b", "c"]
    scores = [c.score for c in outcome.items]
    assert scores == pytest.approx([1.0, 0.5**0.25, 0.5, 0.25])
    assert catalog.calls == [(NOW, 168 * HOUR, 50)]  # no exploration: no extra pool
    assert not outcome.degraded and outcome.answered == 1
    (component,) = outcome.items[2].components
    assert component == Component(
        source="fresh", model="freshness", version="live", weight=1.0, score=0.5, raw_score=0.5
    )
    assert "fresh" in outcome.node_ms and outcome.model_versions == {}


def test_fresh_drops_items_past_max_age_even_if_the_catalogue_returns_them() -> None:
    catalog = RecentCatalog({"a": 1, "b": 30, "future": -1})
    catalog.recent = lambda now, max_age_s, limit: [  # type: ignore[method-assign]
        (i, at) for i, at in catalog.published.items()
    ]
    plan = _plan(_fresh(max_age_hours=24, explore_share=0))
    assert [c.item_id for c in _run(plan, _ctx(catalog=catalog)).items] == ["a"]


def test_fresh_reserves_a_share_for_items_without_feedback() -> None:
    # 20 items an hour apart; the 8 newest have been shown already.
    catalog = RecentCatalog({f"i{h:02}": h for h in range(20)})
    seen = {f"i{h:02}": 10.0 for h in range(8)}
    online = OnlineSnapshot(at=NOW, impressions=seen, clicks={})
    plan = _plan(_fresh(candidates=5, explore_share=0.4))
    outcome = _run(plan, _ctx(catalog=catalog, online=online))
    models = {c.item_id: c.components[0].model for c in outcome.items}
    explored = sorted(item for item, model in models.items() if model == "freshness+explore")
    assert len(outcome.items) == 5 and len(explored) == 2  # 0.4 x 5
    assert all(item not in seen for item in explored)
    assert [item for item, m in models.items() if m == "freshness"] == ["i00", "i01", "i02"]
    ages = [NOW - catalog.published[c.item_id] for c in outcome.items]
    assert ages == sorted(ages), "still ordered by freshness"
    assert catalog.calls[0][2] == 20  # the pool: 4 x candidates


def test_fresh_exploration_is_at_least_one_and_varies_by_request() -> None:
    catalog = RecentCatalog({f"i{h:02}": h for h in range(20)})
    online = OnlineSnapshot(at=NOW, impressions={f"i{h:02}": 1.0 for h in range(10)})
    plan = _plan(_fresh(candidates=5, explore_share=0.01))

    def explored(request_id: str) -> list[str]:
        items = _run(plan, _ctx(request_id, catalog=catalog, online=online)).items
        return [c.item_id for c in items if c.components[0].model == "freshness+explore"]

    picks = {request_id: explored(request_id) for request_id in ("r1", "r2", "r3", "r4", "r5")}
    assert all(len(p) == 1 for p in picks.values())  # floor(0.05) = 0, but at least one
    assert explored("r1") == picks["r1"], "one request's draw is reproducible"
    assert len({p[0] for p in picks.values()}) > 1, "requests spread the exploration"


def test_fresh_without_a_snapshot_treats_every_item_as_unseen() -> None:
    catalog = RecentCatalog({f"i{h}": h for h in range(10)})
    plan = _plan(_fresh(candidates=4, explore_share=0.5))
    models = [c.components[0].model for c in _run(plan, _ctx(catalog=catalog)).items]
    assert models.count("freshness+explore") == 2 and len(models) == 4


def test_fresh_explores_nothing_when_every_item_has_feedback() -> None:
    catalog = RecentCatalog({"a": 0, "b": 1, "c": 2})
    online = OnlineSnapshot(at=NOW, impressions={"a": 1.0, "b": 1.0, "c": 1.0})
    plan = _plan(_fresh(candidates=2, explore_share=0.5))
    outcome = _run(plan, _ctx(catalog=catalog, online=online))
    assert [(c.item_id, c.components[0].model) for c in outcome.items] == [
        ("a", "freshness"),
        ("b", "freshness"),
    ]


@pytest.mark.parametrize("catalog", [None, StaticCatalog({})], ids=["none", "static"])
def test_fresh_without_a_live_catalogue_fails_like_a_source(catalog: StaticCatalog | None) -> None:
    outcome = _run(_plan(_fresh()), _ctx(catalog=catalog))
    assert outcome.degraded and outcome.answered == 0 and outcome.items == []
    assert "expected a catalogue that lists recent items" in outcome.failures["fresh"]


HOT = OnlineSnapshot(
    at=NOW,
    impressions={"hot": 100.0, "cold": 100.0, "meh": 100.0, "new": 1.0},
    clicks={"hot": 30.0, "cold": 1.0, "meh": 3.0},
)


def test_bandit_is_reproducible_per_request() -> None:
    plan = _plan(_bandit(candidates=3))

    def ranking(request_id: str) -> list[tuple[str, float]]:
        outcome = _run(plan, _ctx(request_id, online=HOT))
        return [(c.item_id, c.score) for c in outcome.items]

    assert ranking("r1") == ranking("r1")
    assert len(ranking("r1")) == 3
    assert len({tuple(ranking(f"r{i}")) for i in range(10)}) > 1


def test_bandit_favours_clicked_items_over_many_requests() -> None:
    plan = _plan(_bandit())
    firsts = [_run(plan, _ctx(f"r{i}", online=HOT)).items[0].item_id for i in range(200)]
    assert firsts.count("hot") >= 180
    assert "cold" not in firsts
    item = _run(plan, _ctx("r0", online=HOT)).items[0]
    (component,) = item.components
    assert (component.source, component.model, component.version, component.weight) == (
        "hot",
        "bandit",
        "live",
        1.0,
    )


def test_bandit_with_nothing_learned_yet_answers_nothing_without_degrading() -> None:
    nodes = {
        "cf": {"kind": "source", "model": "mf"},
        "hot": {"kind": "bandit"},
        "mix": {"kind": "blend", "weights": {"cf": 0.5, "hot": 0.5}},
        "out": {"kind": "filter", "input": "mix"},
    }
    models = ScriptedModels(mf=Scripted([("a", 1.0), ("b", 0.5)]))
    outcome = _run(_plan(nodes), _ctx(online=OnlineSnapshot(at=NOW)), models)
    assert not outcome.degraded and [c.item_id for c in outcome.items] == ["a", "b"]


@pytest.mark.parametrize("online", [None], ids=["none"])
def test_bandit_without_a_snapshot_degrades_the_answer(online: OnlineSnapshot | None) -> None:
    nodes = {
        "cf": {"kind": "source", "model": "mf"},
        "hot": {"kind": "bandit"},
        "mix": {"kind": "blend", "weights": {"cf": 0.5, "hot": 0.5}},
        "out": {"kind": "filter", "input": "mix"},
    }
    models = ScriptedModels(mf=Scripted([("a", 1.0), ("b", 0.5)]))
    outcome = _run(_plan(nodes), _ctx(online=online), models)
    assert outcome.degraded and outcome.answered == 1
    assert "online snapshot" in outcome.failures["hot"]
    assert [c.item_id for c in outcome.items] == ["a", "b"]
    alone = _run(_plan(_bandit()), _ctx(online=online))
    assert alone.answered == 0 and alone.items == [], "every source failed: a 503"


def test_fresh_and_bandit_blend_with_a_model_source() -> None:
    nodes = {
        "cf": {"kind": "source", "model": "mf"},
        "fresh": {"kind": "fresh", "explore_share": 0},
        "hot": {"kind": "bandit"},
        "mix": {"kind": "blend", "weights": {"cf": 0.5, "fresh": 0.3, "hot": 0.2}},
        "out": {"kind": "filter", "input": "mix"},
    }
    catalog = RecentCatalog({"new": 0, "hot": 12})
    models = ScriptedModels(mf=Scripted([("a", 1.0), ("hot", 0.5), ("b", 0.0)], version="3"))
    outcome = _run(_plan(nodes), _ctx(catalog=catalog, online=HOT), models)
    assert not outcome.degraded and outcome.answered == 3
    assert outcome.model_versions == {"mf": "3"}
    assert {"cf", "fresh", "hot"} <= set(outcome.node_ms)
    by_id = {c.item_id: c for c in outcome.items}
    assert {(c.source, c.model, c.weight) for c in by_id["hot"].components} == {
        ("cf", "mf", 0.5),
        ("fresh", "freshness", 0.3),
        ("hot", "bandit", 0.2),
    }
    total = sum((c.weight or 0.0) * c.score for c in by_id["hot"].components)
    assert by_id["hot"].score == pytest.approx(total)


def test_live_sources_feed_slots_and_experiments() -> None:
    nodes = {
        "cf": {"kind": "source", "model": "mf"},
        "fresh": {"kind": "fresh", "explore_share": 0},
        "hot": {"kind": "bandit"},
        "pinned": {"kind": "slots", "input": "cf", "curated": "fresh", "positions": [1]},
        "ab": {
            "kind": "experiment",
            "arms": {
                "pins": {"node": "pinned", "weight": 1},
                "bandit": {"node": "hot", "weight": 0},
            },
        },
        "out": {"kind": "filter", "input": "ab"},
    }
    catalog = RecentCatalog({"new": 0})
    models = ScriptedModels(mf=Scripted([("a", 1.0)]))
    outcome = _run(_plan(nodes), _ctx(catalog=catalog, online=HOT), models)
    assert [(c.item_id, c.pinned) for c in outcome.items] == [("new", True), ("a", False)]
    assert outcome.variant == {"ab": "pins"} and "hot" not in outcome.node_ms


def test_an_exploring_fresh_list_logs_certainty_where_every_draw_shows_the_same_items() -> None:
    # 30 unseen items an hour apart; 5 of the 20 candidates are drawn from all of them,
    # the 15 newest are listed whatever is drawn, and they come first.
    catalog = RecentCatalog({f"i{h:02}": h for h in range(30)})
    plan = _plan(_fresh(candidates=20, explore_share=0.25))
    served = set()
    for n in range(40):
        outcome = _run(plan, _ctx(f"r{n}", k=5, catalog=catalog, exclude=frozenset({"i01"})))
        served.add(tuple(c.item_id for c in outcome.items))
        assert outcome.propensities == [1.0] * 5
    assert served == {("i00", "i02", "i03", "i04", "i05")}


def test_an_exploring_fresh_list_that_shows_a_drawn_item_logs_unknown() -> None:
    # Half of 4 candidates are drawn from 10 unseen items: the draw reaches the list.
    catalog = RecentCatalog({f"i{h}": h for h in range(10)})
    plan = _plan(_fresh(candidates=4, explore_share=0.5))
    for n in range(10):
        outcome = _run(plan, _ctx(f"r{n}", k=4, catalog=catalog))
        assert len(outcome.propensities) == 4
        assert all(math.isnan(chance) for chance in outcome.propensities)
