"""The columnar engine gives the old engine's answers: 1,000 random requests through
plans that use every node kind, compared item by item.

Each request draws its own model answers (overlapping lists, repeated items, tied
scores, empty lists, failing sources), catalogue (categories, unavailable and
deleted items, unknown ones), exclusions, k and node parameters. The columnar
engine (``BlendPlan.run``) and the old one (``reference_engine``) must return the
same items in the same order, the same pins and teams, scores within 1e-6, and
the same components.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from reference_engine.candidates import Candidate as OldCandidate
from reference_engine.runner import reference_run
from scripted_models import Scripted, ScriptedModels

from blending.candidates import BlendContext, Candidate
from blending.catalog import ItemInfo, LiveCatalog, StaticCatalog
from blending.dag import BlendPlan
from blending.online import OnlineSnapshot
from blending.spec import UseCaseSpec

REQUESTS = 1000
NOW = 1_800_000_000.0
UNIVERSE = [f"i{n}" for n in range(60)]
CATEGORIES = ["news", "sport", "tech", "arts", None]


def _source_items(rng: random.Random) -> list[tuple[str, float]]:
    size = rng.choice([0, 1, 3, 10, 25, 40, 60])
    items = rng.sample(UNIVERSE, min(size, len(UNIVERSE)))
    if items and rng.random() < 0.2:
        items.insert(rng.randrange(len(items)), rng.choice(items))  # a repeated item
    if rng.random() < 0.3:
        scores = [float(rng.randint(0, 5)) for _ in items]  # ties
    else:
        scores = [rng.uniform(-3, 3) for _ in items]
    pairs = list(zip(items, scores, strict=True))
    pairs.sort(key=lambda p: -p[1])
    return pairs


def _models(rng: random.Random) -> ScriptedModels:
    def source() -> Scripted:
        fails = rng.random() < 0.08
        return Scripted(
            _source_items(rng),
            version=str(rng.randint(1, 3)),
            error=RuntimeError("down") if fails else None,
        )

    picks = Scripted(
        [(i, 1.0 - n / 10) for n, i in enumerate(rng.sample(UNIVERSE, rng.randint(0, 6)))],
        curated=True,
    )
    scorer = Scripted(
        scores={
            i: float(rng.randint(0, 4)) if rng.random() < 0.5 else rng.random() for i in UNIVERSE
        },
        error=RuntimeError("scorer down") if rng.random() < 0.05 else None,
    )
    combiner = Scripted(
        scores={str(j): rng.uniform(-1, 2) for j in range(4)},
        error=RuntimeError("combiner down") if rng.random() < 0.05 else None,
    )
    return ScriptedModels(
        a=source(), b=source(), c=source(), picks=picks, scorer=scorer, combiner=combiner
    )


def _catalog(rng: random.Random) -> StaticCatalog | LiveCatalog | None:
    kind = rng.choice(["none", "static", "live"])
    if kind == "none":
        return None
    known = rng.sample(UNIVERSE, rng.randint(30, 60))  # the rest are unknown to it
    infos = {
        item: ItemInfo(
            rng.choice(CATEGORIES),
            rng.random() < 0.85,
            published_at=NOW - rng.uniform(-3600, 10 * 86400),
        )
        for item in known
    }
    if kind == "static":
        return StaticCatalog(infos)
    live = LiveCatalog()
    live.apply(1, list(infos.items()))
    deleted = rng.sample(known, rng.randint(0, 5))
    live.apply(2, [(item, None) for item in deleted])
    return live


def _online(rng: random.Random) -> OnlineSnapshot:
    items = rng.sample(UNIVERSE, rng.randint(0, 40))
    impressions = {i: rng.uniform(0, 50) for i in items}
    clicks = {i: rng.uniform(0, impressions[i]) for i in items if rng.random() < 0.7}
    return OnlineSnapshot(NOW, impressions, clicks)


def _params(rng: random.Random) -> dict[str, Any]:
    return {
        "normalize": rng.choice(["minmax", "zscore", "rank", "none"]),
        "normalize_stack": rng.choice(["minmax", "zscore", "rank", "none"]),
        "w": [round(rng.uniform(0.05, 1.0), 3) for _ in range(3)],
        "depth": rng.choice([1, 5, 20, 100]),
        "rrf_k": rng.choice([0, 1, 60]),
        "cap": rng.randint(1, 4),
        "top": rng.choice([None, 3, 12]),
        "slots": rng.choice([{"positions": [1, 5]}, {"positions": [3, 1, 30]}, {"share": 0.3}]),
        "drop": rng.choice(
            [["excluded", "duplicates", "unavailable"], ["excluded"], ["unavailable"], []]
        ),
        "drop_unknown": rng.random() < 0.3,
        "min_items": rng.randint(1, 30),
        "weights": [rng.choice([0, 1, 2]) for _ in range(3)],
        "salt": f"s{rng.randint(0, 5)}",
    }


def _blend_and_pin(p: dict[str, Any]) -> dict[str, Any]:
    """Weighted blend, nested blend, slots, filter."""
    return {
        "a": {"kind": "source", "model": "a", "candidates": 50},
        "b": {"kind": "source", "model": "b", "candidates": 50},
        "c": {"kind": "source", "model": "c", "candidates": 50},
        "picks": {"kind": "source", "model": "picks", "candidates": 10},
        "ab": {
            "kind": "blend",
            "normalize": p["normalize"],
            "weights": {"a": p["w"][0], "b": p["w"][1]},
        },
        "abc": {
            "kind": "blend",
            "normalize": p["normalize_stack"],
            "weights": {"ab": p["w"][2], "c": 0.5, "picks": 0.2},
        },
        "pinned": {"kind": "slots", "input": "abc", "curated": "picks", **p["slots"]},
        "out": {
            "kind": "filter",
            "input": "pinned",
            "drop": p["drop"],
            "drop_unknown": p["drop_unknown"],
        },
    }


def _rerank_and_diversify(p: dict[str, Any]) -> dict[str, Any]:
    """RRF, rerank, diversify, a filter in the middle."""
    return {
        "a": {"kind": "source", "model": "a", "candidates": 50},
        "b": {"kind": "source", "model": "b", "candidates": 50},
        "fused": {
            "kind": "blend",
            "method": "rrf",
            "rrf_k": p["rrf_k"],
            "weights": {"a": p["w"][0], "b": p["w"][1]},
        },
        "clean": {
            "kind": "filter",
            "input": "fused",
            "drop": p["drop"],
            "drop_unknown": p["drop_unknown"],
        },
        "reranked": {"kind": "rerank", "input": "clean", "model": "scorer", "depth": p["depth"]},
        "out": {
            "kind": "diversify",
            "input": "reranked",
            "max_per_category": p["cap"],
            "top": p["top"],
        },
    }


def _experiment(p: dict[str, Any]) -> dict[str, Any]:
    """Stack, rerank, diversify, interleave, experiment, fallback, slots by share."""
    return {
        "a": {"kind": "source", "model": "a", "candidates": 50},
        "b": {"kind": "source", "model": "b", "candidates": 50},
        "c": {"kind": "source", "model": "c", "candidates": 50},
        "picks": {"kind": "source", "model": "picks", "candidates": 10},
        "mix": {"kind": "blend", "normalize": p["normalize"], "weights": {"a": 0.8, "b": 0.2}},
        "learned": {
            "kind": "stack",
            "inputs": ["a", "b", "c"],
            "model": "combiner",
            "normalize": p["normalize_stack"],
        },
        "reranked": {"kind": "rerank", "input": "learned", "model": "scorer", "depth": p["depth"]},
        "taste": {"kind": "diversify", "input": "mix", "max_per_category": p["cap"]},
        "clicky": {
            "kind": "diversify",
            "input": "reranked",
            "max_per_category": p["cap"],
            "top": p["top"],
        },
        "h2h": {"kind": "interleave", "teams": ["taste", "clicky"]},
        "ab": {
            "kind": "experiment",
            "salt": p["salt"],
            "arms": {
                "taste": {"node": "taste", "weight": p["weights"][0] + 1},
                "clicky": {"node": "clicky", "weight": p["weights"][1]},
                "both": {"node": "h2h", "weight": p["weights"][2] + 1},
            },
        },
        "backup": {"kind": "blend", "method": "rrf", "weights": {"b": 1, "picks": 1}},
        "safe": {
            "kind": "fallback",
            "primary": "ab",
            "fallback": "backup",
            "min_items": p["min_items"],
        },
        "pinned": {"kind": "slots", "input": "safe", "curated": "picks", "share": 0.2},
        "out": {"kind": "filter", "input": "pinned"},
    }


def _live_sources(p: dict[str, Any]) -> dict[str, Any]:
    """Fresh and bandit beside a model source."""
    return {
        "new": {
            "kind": "fresh",
            "candidates": 20,
            "half_life_hours": 24,
            "max_age_hours": 200,
            "explore_share": 0.25,
        },
        "trending": {"kind": "bandit", "candidates": 15},
        "a": {"kind": "source", "model": "a", "candidates": 30},
        "mixed": {
            "kind": "blend",
            "normalize": p["normalize"],
            "weights": {"new": 0.4, "trending": 0.4, "a": 0.2},
        },
        "out": {
            "kind": "filter",
            "input": "mixed",
            "drop": p["drop"],
            "drop_unknown": p["drop_unknown"],
        },
    }


TEMPLATES = [_blend_and_pin, _rerank_and_diversify, _experiment, _live_sources]


def _same(new: list[Candidate], old: list[OldCandidate], where: str) -> None:
    assert [c.item_id for c in new] == [c.item_id for c in old], where
    for n, o in zip(new, old, strict=True):
        assert n.score == pytest.approx(o.score, abs=1e-6), where
        assert (n.pinned, n.team) == (o.pinned, o.team), where
        assert len(n.components) == len(o.components), where
        for cn, co in zip(n.components, o.components, strict=True):
            assert (cn.source, cn.model, cn.version, cn.slot, cn.curated, cn.role) == (
                co.source,
                co.model,
                co.version,
                co.slot,
                co.curated,
                co.role,
            ), where
            assert (cn.weight is None) == (co.weight is None), where
            if cn.weight is not None:
                assert cn.weight == pytest.approx(co.weight, abs=1e-6), where
            assert cn.score == pytest.approx(co.score, abs=1e-6), where
            assert cn.raw_score == pytest.approx(co.raw_score, abs=1e-6), where


def test_columnar_engine_answers_exactly_as_the_old_one() -> None:
    rng = random.Random(20261205)
    kinds_seen: set[str] = set()
    nonempty = 0
    for n in range(REQUESTS):
        template = TEMPLATES[n % len(TEMPLATES)]
        spec = UseCaseSpec.model_validate({"nodes": template(_params(rng)), "output": "out"})
        plan = BlendPlan(template.__name__, spec)
        kinds_seen |= {node.kind for node in spec.nodes.values()}
        models = _models(rng)
        exclude = frozenset(rng.sample([*UNIVERSE, "ghost"], rng.randint(0, 6)))
        ctx = BlendContext(
            f"user{rng.randint(0, 40)}",
            rng.randint(1, 15),
            exclude,
            request_id=f"req{n}",
            catalog=_catalog(rng),
            online=_online(rng) if rng.random() < 0.9 else None,
            now=NOW,
        )
        new = asyncio.run(plan.run(ctx, models)).items
        old = asyncio.run(reference_run(plan, ctx, models))
        _same(new, old, f"request {n} ({template.__name__})")
        nonempty += bool(new)
    assert kinds_seen == {
        "source",
        "fresh",
        "bandit",
        "blend",
        "rerank",
        "stack",
        "slots",
        "filter",
        "diversify",
        "experiment",
        "interleave",
        "fallback",
    }
    assert nonempty > REQUESTS * 0.8  # the comparison is about real lists, not empty ones
