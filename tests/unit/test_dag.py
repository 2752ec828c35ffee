"""The DAG runner: whole plans, experiments, interleaving, fallbacks and deadlines."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from scripted_models import Scripted, ScriptedModels

from blending.candidates import BlendContext
from blending.catalog import ItemInfo, StaticCatalog
from blending.dag import BlendOutcome, BlendPlan
from blending.spec import UseCaseSpec

HOME = {
    "cf": {"kind": "source", "model": "mf"},
    "pop": {"kind": "source", "model": "popularity"},
    "picks": {"kind": "source", "model": "staff"},
    "mix": {"kind": "blend", "weights": {"cf": 0.7, "pop": 0.3}},
    "pins": {"kind": "slots", "input": "mix", "curated": "picks", "positions": [2]},
    "out": {"kind": "filter", "input": "pins"},
}


def _models(**overrides: Scripted) -> ScriptedModels:
    models = {
        "mf": Scripted([("a", 0.9), ("b", 0.5), ("c", 0.1)], version="4"),
        "popularity": Scripted([("c", 30.0), ("d", 10.0)]),
        "staff": Scripted([("e", 1.0)], version="2", curated=True),
    }
    models.update(overrides)
    return ScriptedModels(**models)


def _plan(nodes: dict[str, Any], output: str = "out", budget_ms: float = 250) -> BlendPlan:
    spec = UseCaseSpec.model_validate({"nodes": nodes, "output": output, "budget_ms": budget_ms})
    return BlendPlan("home", spec)


def _run(plan: BlendPlan, models: ScriptedModels, ctx: BlendContext) -> BlendOutcome:
    return asyncio.run(plan.run(ctx, models))


def test_plan_runs_the_whole_dag_to_top_k() -> None:
    outcome = _run(_plan(HOME), _models(), BlendContext("u", 3, frozenset({"b"})))
    # a: 0.7; c: 0.3; d: 0; b excluded; e pinned at 2
    assert [c.item_id for c in outcome.items] == ["a", "e", "c"]
    assert not outcome.degraded and outcome.answered == 3
    assert outcome.model_versions == {"mf": "4", "popularity": "1", "staff": "2"}
    pinned = outcome.items[1]
    assert pinned.pinned and [c.curated for c in pinned.components] == [True]


def test_plan_degrades_when_a_source_fails() -> None:
    models = _models(mf=Scripted(error=RuntimeError("replica died")))
    outcome = _run(_plan(HOME), models, BlendContext("u", 10))
    assert outcome.degraded
    assert outcome.failures == {"cf": "RuntimeError: replica died"}
    assert [c.item_id for c in outcome.items] == ["c", "e", "d"]
    assert "mf" not in outcome.model_versions


def test_a_late_remote_source_is_cut_at_the_budget() -> None:
    models = _models(mf=Scripted([("a", 1.0)], remote=True, delay_s=2.0))
    started = time.monotonic()
    outcome = _run(_plan(HOME, budget_ms=100), models, BlendContext("u", 10))
    elapsed = time.monotonic() - started
    assert elapsed < 0.1 + 0.08, f"answered after {elapsed:.3f}s on a 100 ms budget"
    assert outcome.degraded and outcome.late == {"cf"}
    assert "DeadlineExceeded" in outcome.failures["cf"]
    assert [c.item_id for c in outcome.items] == ["c", "e", "d"]


def test_a_request_that_arrives_past_its_budget_is_answered_from_in_process_models() -> None:
    # A request can lose its budget before the blend starts (a slow body, a busy
    # machine): the remote source is given up at once, the in-process ones still answer.
    models = _models(mf=Scripted([("a", 1.0)], remote=True, delay_s=2.0))
    started = time.monotonic()
    outcome = asyncio.run(
        _plan(HOME, budget_ms=100).run(BlendContext("u", 10), models, started - 1.0)
    )
    assert time.monotonic() - started < 0.1, "nothing waited on the remote source"
    assert outcome.late == {"cf"} and outcome.answered == 2
    assert [c.item_id for c in outcome.items] == ["c", "e", "d"]


def test_a_remote_source_that_answers_in_time_is_used() -> None:
    models = _models(mf=Scripted([("a", 1.0), ("b", 0.0)], remote=True, delay_s=0.02))
    outcome = _run(_plan(HOME, budget_ms=500), models, BlendContext("u", 10))
    assert not outcome.degraded and outcome.items[0].item_id == "a"


def _ab(weighted: float, fused: float) -> dict[str, Any]:
    return {
        "cf": HOME["cf"],
        "pop": HOME["pop"],
        "picks": HOME["picks"],
        "mix": HOME["mix"],
        "pinned": {"kind": "slots", "input": "mix", "curated": "picks", "positions": [1]},
        "rrf": {"kind": "blend", "method": "rrf", "weights": {"cf": 1, "pop": 1}},
        "ab": {
            "kind": "experiment",
            "arms": {
                "weighted": {"node": "pinned", "weight": weighted},
                "fused": {"node": "rrf", "weight": fused},
            },
        },
        "out": {"kind": "filter", "input": "ab"},
    }


def test_experiment_runs_only_the_users_arm_and_reports_it() -> None:
    models = _models()
    fused = _run(_plan(_ab(weighted=0, fused=1)), models, BlendContext("u", 10))
    assert fused.variant == {"ab": "fused"}
    assert ("recommend", "staff") not in models.calls  # only the other arm reads it
    # rrf: c is 3rd in cf and 1st in pop: 1/63 + 1/61 beats a's 1/61
    assert fused.items[0].item_id == "c"
    weighted = _run(_plan(_ab(weighted=1, fused=0)), _models(), BlendContext("u", 10))
    assert weighted.variant == {"ab": "weighted"} and weighted.items[0].item_id == "e"


def test_interleave_credits_each_item_to_one_team() -> None:
    nodes = {
        "cf": HOME["cf"],
        "pop": HOME["pop"],
        "mix": {"kind": "interleave", "teams": ["cf", "pop"]},
        "out": {"kind": "filter", "input": "mix"},
    }
    outcome = _run(_plan(nodes), _models(), BlendContext("u", 10, request_id="r1"))
    ids = [c.item_id for c in outcome.items]
    assert sorted(ids) == ["a", "b", "c", "d"]
    assert {c.team for c in outcome.items} == {"cf", "pop"}
    # same request id, same draft; the first two picks are one per team
    again = _run(_plan(nodes), _models(), BlendContext("u", 10, request_id="r1"))
    assert [(c.item_id, c.team) for c in again.items] == [
        (c.item_id, c.team) for c in outcome.items
    ]
    assert {outcome.items[0].team, outcome.items[1].team} == {"cf", "pop"}


@pytest.mark.parametrize(
    ("mf", "reason"),
    [
        (Scripted(error=RuntimeError("boom")), "RuntimeError: boom"),
        (Scripted([("a", 1.0)], remote=True, delay_s=1.0), "DeadlineExceeded"),
    ],
)
def test_fallback_replaces_a_failed_or_late_branch(mf: Scripted, reason: str) -> None:
    nodes = {
        "cf": HOME["cf"],
        "pop": HOME["pop"],
        "safe": {"kind": "fallback", "primary": "cf", "fallback": "pop"},
        "out": {"kind": "filter", "input": "safe"},
    }
    outcome = _run(_plan(nodes, budget_ms=100), _models(mf=mf), BlendContext("u", 10))
    assert [c.item_id for c in outcome.items] == ["c", "d"]
    assert outcome.fallbacks == ("safe",) and outcome.degraded
    assert reason in outcome.failures["cf"]


def test_fallback_keeps_a_healthy_primary() -> None:
    nodes = {
        "cf": HOME["cf"],
        "pop": HOME["pop"],
        "safe": {"kind": "fallback", "primary": "cf", "fallback": "pop"},
        "out": {"kind": "filter", "input": "safe"},
    }
    outcome = _run(_plan(nodes), _models(), BlendContext("u", 10))
    assert [c.item_id for c in outcome.items] == ["a", "b", "c"]
    assert outcome.fallbacks == () and not outcome.degraded


def test_rerank_reorders_by_the_scorer_and_records_it() -> None:
    nodes = {
        "cf": HOME["cf"],
        "clicks": {"kind": "rerank", "input": "cf", "model": "ctr", "depth": 2},
        "out": {"kind": "filter", "input": "clicks"},
    }
    models = _models(ctr=Scripted(scores={"a": 0.1, "b": 0.8, "c": 0.99}, version="7"))
    outcome = _run(_plan(nodes), models, BlendContext("u", 10))
    # only a and b are re-scored (depth 2); c keeps its place after them
    assert [c.item_id for c in outcome.items] == ["b", "a", "c"]
    b = outcome.items[0]
    assert b.score == 0.8 and b.components[-1].role == "rerank"
    assert outcome.model_versions["ctr"] == "7"


def test_rerank_failure_keeps_input_order_and_degrades() -> None:
    nodes = {
        "cf": HOME["cf"],
        "clicks": {"kind": "rerank", "input": "cf", "model": "ctr"},
        "out": {"kind": "filter", "input": "clicks"},
    }
    models = _models(ctr=Scripted(error=ValueError("bad features")))
    outcome = _run(_plan(nodes), models, BlendContext("u", 10))
    assert [c.item_id for c in outcome.items] == ["a", "b", "c"]
    assert outcome.failures == {"clicks": "ValueError: bad features"}


def test_stack_feeds_normalised_input_scores_to_the_combiner() -> None:
    nodes = {
        "cf": HOME["cf"],
        "pop": HOME["pop"],
        "learned": {"kind": "stack", "inputs": ["cf", "pop"], "model": "combiner"},
        "out": {"kind": "filter", "input": "learned"},
    }
    # combiner = 1 * cf_feature + 3 * pop_feature
    models = _models(combiner=Scripted(scores={"0": 1.0, "1": 3.0}))
    outcome = _run(_plan(nodes), models, BlendContext("u", 10))
    scores = {c.item_id: c.score for c in outcome.items}
    # cf minmax: a 1, b 0.5, c 0; pop minmax: c 1, d 0
    assert scores == pytest.approx({"a": 1.0, "b": 0.5, "c": 3.0, "d": 0.0})
    assert [c.item_id for c in outcome.items] == ["c", "a", "b", "d"]
    assert outcome.items[0].components[-1].role == "stack"


def test_diversify_and_filter_use_the_catalogue() -> None:
    catalog = StaticCatalog(
        {
            "a": ItemInfo("news"),
            "b": ItemInfo("news"),
            "c": ItemInfo("sport"),
            "d": ItemInfo("news", available=False),
        }
    )
    nodes = {
        "cf": HOME["cf"],
        "pop": HOME["pop"],
        "mix": {"kind": "blend", "weights": {"cf": 1, "pop": 1}},
        "varied": {"kind": "diversify", "input": "mix", "max_per_category": 1, "top": 2},
        "out": {"kind": "filter", "input": "varied"},
    }
    ctx = BlendContext("u", 10, catalog=catalog)
    outcome = _run(_plan(nodes), _models(), ctx)
    # mix: a 1, c 1 (0 + 1), b 0.5, d 0 -> top 2 holds one news (a) and c; d unavailable
    assert [c.item_id for c in outcome.items] == ["a", "c", "b"]
