"""Query-time rules: attribute columns, rule checks, filters on every source, boosts
on the output, and sources over-fetching so a filter never leaves a list short."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from scripted_models import Scripted, ScriptedModels

from blending.attributes import AttributeColumns
from blending.candidates import BlendContext
from blending.catalog import ItemInfo, StaticCatalog
from blending.dag import BlendOutcome, BlendPlan
from blending.items import ItemTable
from blending.rules import BoostRule, FilterRule, RulesSpec, compile_rules
from blending.spec import UseCaseSpec

NOW = 1_800_000_000.0
KINDS = {"price": "number", "in_stock": "boolean", "brand": "text"}


def _catalog() -> StaticCatalog:
    items = {
        "a": ItemInfo("news", True, NOW - 3600, {"price": 10, "in_stock": True, "brand": "acme"}),
        "b": ItemInfo("news", True, NOW - 86400, {"price": 80, "in_stock": True, "brand": "zeta"}),
        "c": ItemInfo("sport", True, None, {"price": 30, "in_stock": False, "brand": "acme"}),
        "d": ItemInfo("sport", True, NOW - 60, {"price": "n/a", "in_stock": True}),
        "e": ItemInfo(None, True, None, {"in_stock": True, "brand": 7}),
    }
    return StaticCatalog(items, KINDS)  # type: ignore[arg-type]


def _plan(rules: dict[str, Any] | None = None, **extra: Any) -> BlendPlan:
    nodes = {
        "cf": {"kind": "source", "model": "mf", **extra},
        "picks": {"kind": "source", "model": "staff"},
        "pins": {"kind": "slots", "input": "cf", "curated": "picks", "positions": [1]},
        "out": {"kind": "filter", "input": "pins"},
    }
    spec = {"nodes": nodes, "output": "out", "rules": rules}
    return BlendPlan("shop", UseCaseSpec.model_validate(spec))


def _models(staff: list[tuple[str, float]] | None = None) -> ScriptedModels:
    cf = [("a", 0.9), ("b", 0.8), ("c", 0.7), ("d", 0.6), ("e", 0.5)]
    return ScriptedModels(mf=Scripted(cf), staff=Scripted(staff or [("c", 1.0)], curated=True))


def _run(
    plan: BlendPlan,
    catalog: StaticCatalog,
    filters: list[dict[str, Any]] = (),  # type: ignore[assignment]
    boosts: list[dict[str, Any]] = (),  # type: ignore[assignment]
    models: ScriptedModels | None = None,
    k: int = 10,
) -> BlendOutcome:
    rules = compile_rules(
        catalog.attributes,
        plan.spec.rules,
        [FilterRule.model_validate(f) for f in filters],
        [BoostRule.model_validate(b) for b in boosts],
    )
    ctx = BlendContext("u", k, catalog=catalog, now=NOW, rules=rules)
    return asyncio.run(plan.run(ctx, models or _models()))


def _ids(outcome: BlendOutcome) -> list[str]:
    return [c.item_id for c in outcome.items]


def test_columns_hold_each_kind_and_store_values_of_the_wrong_kind_as_missing() -> None:
    columns = _catalog().attributes
    at = columns.table.indices(["a", "b", "c", "d", "e"])
    prices = columns.values("price", at)
    assert prices[:3].tolist() == [10.0, 80.0, 30.0] and np.isnan(prices[3:]).all()
    assert columns.values("in_stock", at).tolist() == [1.0, 1.0, 0.0, 1.0, 1.0]
    brands = columns.values("brand", at)
    assert brands[0] == brands[2] == columns.code("brand", "acme")
    assert brands[4] == columns.code("brand", "7")  # an integer id is its text
    assert brands[3] == -1 and columns.code("brand", "nobody") == -2
    assert columns.values("published_at", at)[0] == NOW - 3600
    assert columns.values("category", at)[4] == -1


def test_iso_times_are_read_as_unix_seconds() -> None:
    columns = AttributeColumns(ItemTable(), {"sale_ends": "time"})
    columns.write(columns.table.add("x"), None, {"sale_ends": "2027-01-01T00:00:00+00:00"})
    assert columns.values("sale_ends", np.array([0]))[0] == 1798761600.0


def test_built_in_attributes_cannot_be_declared() -> None:
    with pytest.raises(ValueError, match="built in"):
        AttributeColumns(ItemTable(), {"category": "text"})


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"attribute": "colour", "equals": "red"}, "filters.0.attribute: unknown attribute"),
        ({"attribute": "brand", "min": 3}, "filters.0.min: a range needs a number or a time"),
        ({"attribute": "price", "equals": "cheap"}, "filters.0.equals: 'price' is number"),
        ({"attribute": "in_stock", "in": [1.0]}, "filters.0.in: 'in_stock' is boolean"),
        ({"attribute": "price", "max_age_s": 60}, "filters.0.max_age_s: 'price' is number"),
    ],
)
def test_a_rule_unfit_for_its_attribute_is_refused_naming_the_field(
    rule: dict[str, Any], message: str
) -> None:
    spec = RulesSpec(filters=[FilterRule.model_validate(rule)])
    kinds = {**KINDS, "category": "text", "published_at": "time"}
    with pytest.raises(ValueError, match=message):
        spec.check(kinds, "")  # type: ignore[arg-type]


def test_a_rule_sets_exactly_one_condition() -> None:
    with pytest.raises(ValidationError, match="exactly one of"):
        FilterRule.model_validate({"attribute": "price", "equals": 3, "max": 5})
    with pytest.raises(ValidationError, match="exactly one of"):
        FilterRule.model_validate({"attribute": "price"})


def test_filters_apply_to_every_source_curated_picks_included() -> None:
    # "Only in-stock items": c is out of stock, so the staff pick pinned at 1 goes too.
    outcome = _run(_plan(), _catalog(), filters=[{"attribute": "in_stock", "equals": True}])
    assert _ids(outcome) == ["a", "b", "d", "e"]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"attribute": "price", "min": 20, "max": 80}, ["c", "b"]),
        ({"attribute": "price", "max": 50, "negate": True}, ["b", "d", "e"]),
        ({"attribute": "brand", "in": ["acme", "7"]}, ["c", "a", "e"]),
        ({"attribute": "category", "equals": "sport"}, ["c", "d"]),
        ({"attribute": "published_at", "max_age_s": 7200}, ["a", "d"]),
        ({"attribute": "published_at", "min": "2027-01-14T08:00:00Z"}, ["a", "b", "d"]),
    ],
)
def test_each_condition_keeps_what_it_says(rule: dict[str, Any], expected: list[str]) -> None:
    assert _ids(_run(_plan(), _catalog(), filters=[rule])) == expected


def test_boosts_reorder_the_output_but_pinned_items_keep_their_slot() -> None:
    boosts = [{"attribute": "brand", "equals": "zeta", "multiply": 2.0}]
    outcome = _run(_plan(), _catalog(), boosts=boosts)
    # b (0.8 x 2) passes a (0.9); c stays pinned at 1.
    assert _ids(outcome) == ["c", "b", "a", "d", "e"]
    boosted = outcome.items[1]
    assert boosted.score == pytest.approx(1.6)
    (mine,) = [c for c in boosted.components if c.role == "boost"]
    assert (mine.model, mine.weight, mine.raw_score) == ("brand = 'zeta'", 2.0, 0.8)
    assert not any(c.role == "boost" for c in outcome.items[2].components)


def test_a_boost_lifts_an_item_from_below_the_k_th() -> None:
    boosts = [{"attribute": "brand", "equals": 7, "multiply": 10.0}]
    assert _ids(_run(_plan(), _catalog(), boosts=boosts, k=2)) == ["c", "e"]


def test_standing_rules_come_before_the_requests_own() -> None:
    standing = {"filters": [{"attribute": "in_stock", "equals": True}]}
    outcome = _run(_plan(standing), _catalog(), filters=[{"attribute": "price", "max": 50}])
    assert _ids(outcome) == ["a"]


def test_sources_over_fetch_by_the_share_their_filters_keep() -> None:
    # One item in five is in stock; a source cut at 4 candidates would leave at most
    # one after the filter. It is asked for 4 / 0.2 = 20 and the list is full.
    items = {f"i{n:02d}": ItemInfo("x", True, None, {"in_stock": n % 5 == 0}) for n in range(100)}
    catalog = StaticCatalog(items, {"in_stock": "boolean"})
    ranked = [(f"i{n:02d}", 1.0 - n / 100) for n in range(100)]
    models = ScriptedModels(mf=Scripted(ranked), staff=Scripted([], curated=True))
    plan = _plan(candidates=4)
    outcome = _run(
        plan, catalog, filters=[{"attribute": "in_stock", "equals": True}], models=models, k=4
    )
    assert _ids(outcome) == ["i00", "i05", "i10", "i15"]
    assert models.asked["mf"] == 20


def _live(rules: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    nodes = {"pop": {"kind": "source", "model": "popularity"}}
    return {"use_cases": {"shop": {"nodes": nodes, "output": "pop", "rules": rules, **extra}}}


def test_a_use_cases_rules_are_checked_when_the_config_loads() -> None:
    from deployments.config import parse_app_args, parse_live_config
    from models.errors import ConfigError

    models = {"popularity": {"version": "1"}}
    args = parse_app_args(
        {"models": models, "catalog": "items.parquet", "catalog_attributes": {"price": "number"}}
    )
    good = _live({"filters": [{"attribute": "price", "max": 9}]})
    assert parse_live_config(good, ["popularity"], args=args).use_cases["shop"].rules
    bad = _live({"boosts": [{"attribute": "price", "in": ["x"], "multiply": 2}]})
    with pytest.raises(
        ConfigError, match=r"use_cases\.shop\.rules\.boosts\.0\.in: 'price' is number"
    ):
        parse_live_config(bad, ["popularity"], args=args)
    unknown = _live({"filters": [{"attribute": "colour", "equals": "red"}]})
    with pytest.raises(
        ConfigError, match=r"rules\.filters\.0\.attribute: unknown attribute 'colour'"
    ):
        parse_live_config(unknown, ["popularity"], args=args)
    no_catalogue = parse_app_args({"models": models})
    with pytest.raises(ConfigError, match=r"use_cases\.shop\.rules: the app has no catalogue"):
        parse_live_config(good, ["popularity"], args=no_catalogue)
    no_log = parse_app_args({"models": models, "events": None})
    with pytest.raises(ConfigError, match=r"use_cases\.shop\.seen: needs the event log"):
        parse_live_config(_live(None, seen={"exclude": ["click"]}), ["popularity"], args=no_log)
    with pytest.raises(ConfigError, match="built in"):
        parse_app_args({"models": {"popularity": {}}, "catalog_attributes": {"category": "text"}})
