"""The `precomputed` format (lists computed ahead by `blendserve batch-score`) and a
source's `fallback_model`, which scores on request the users the lists lack."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scripted_models import Scripted, ScriptedModels

from blending.candidates import BlendContext
from blending.dag import BlendPlan
from blending.spec import UseCaseSpec
from models.base import RecommendQuery
from models.errors import ModelError
from models.formats.precomputed import PrecomputedAdapter
from models.registry import load_model
from models.store import ArtifactStore


def _publish(store: ArtifactStore, scratch: Path, tables: list[pa.Table]) -> None:
    files = {}
    for n, table in enumerate(tables):  # several parts, as Ray Data writes them
        path = scratch / f"part-{n}.parquet"
        pq.write_table(table, path)
        files[path.name] = path
    extra = {"computed_at": time.time() - 3600, "source_model": "mf", "source_version": "4"}
    store.publish("mf_top", "1", "precomputed", files, extra=extra)


def _lists(users: list[str], items: list[list[str]], scores: list[list[float]]) -> pa.Table:
    return pa.table(
        {
            "user_id": users,
            "item_ids": pa.array(items, pa.list_(pa.string())),
            "scores": pa.array(scores, pa.list_(pa.float32())),
        }
    )


def test_each_user_gets_their_list_and_an_unknown_user_none(
    store: ArtifactStore, scratch: Path
) -> None:
    _publish(
        store,
        scratch,
        [
            _lists(["u1"], [["a", "b", "c"]], [[0.9, 0.5, 0.1]]),
            _lists(["u2"], [["c", "a"]], [[0.7, 0.2]]),
        ],
    )
    model = load_model(store, "mf_top", "1")
    assert isinstance(model, PrecomputedAdapter)
    queries = [RecommendQuery(u) for u in ("u2", "u1", "stranger")]
    tops = model.top_items(queries, 2)
    assert [t.id_list() for t in tops] == [["c", "a"], ["a", "b"], []]
    assert tops[1].scores.tolist() == pytest.approx([0.9, 0.5])
    assert 3590 < (model.age_s() or 0) < 3700
    described = model.describe()
    assert (described["users"], described["source_model"]) == (2, "mf")
    assert sorted(model.item_ids()) == ["a", "b", "c"]


def test_lists_and_scores_of_different_lengths_are_refused(
    store: ArtifactStore, scratch: Path
) -> None:
    _publish(store, scratch, [_lists(["u1"], [["a", "b"]], [[0.9]])])
    with pytest.raises(ModelError, match="differ in length"):
        load_model(store, "mf_top", "1")


def test_a_user_the_lists_lack_is_scored_by_the_fallback_model() -> None:
    spec = UseCaseSpec.model_validate(
        {
            "nodes": {
                "cf": {
                    "kind": "source",
                    "model": "mf_top",
                    "fallback_model": "mf",
                    "candidates": 2,
                }
            },
            "output": "cf",
        }
    )
    assert spec.models() == {"mf_top", "mf"}
    plan = BlendPlan("home", spec)
    precomputed = {"known": [("a", 0.9), ("b", 0.5)]}

    class Lists(ScriptedModels):
        async def recommend(self, model: str, query: RecommendQuery, n: int):  # type: ignore[no-untyped-def]
            if model == "mf_top":
                self.models[model].items = precomputed.get(query.user_id, [])
            return await super().recommend(model, query, n)

    models = Lists(mf_top=Scripted([], version="7"), mf=Scripted([("z", 3.0)], version="4"))
    known = asyncio.run(plan.run(BlendContext("known", 2), models))
    assert [c.item_id for c in known.items] == ["a", "b"]
    assert known.model_versions == {"mf_top": "7"} and not known.fallbacks
    assert ("recommend", "mf") not in models.calls
    stranger = asyncio.run(plan.run(BlendContext("stranger", 2), models))
    assert [c.item_id for c in stranger.items] == ["z"]
    assert stranger.model_versions == {"mf": "4"} and stranger.fallbacks == ("cf",)
    assert stranger.items[0].components[0].model == "mf"


def test_the_benchmark_measures_both_ways_on_the_same_users(
    store: ArtifactStore, scratch: Path
) -> None:
    from builders import USERS, publish_tiny_mf

    from benchmarks.precomputed import measure, render

    publish_tiny_mf(store, scratch)
    mf = load_model(store, "mf", "1")
    tops = mf.top_items([RecommendQuery(u) for u in USERS], 4)  # type: ignore[attr-defined]
    lists = _lists(USERS, [t.id_list() for t in tops], [t.scores.tolist() for t in tops])
    pq.write_table(lists, scratch / "lists.parquet")
    extra = {"computed_at": time.time() - 60, "users": 3, "seconds": 2.0}
    files = {"lists.parquet": scratch / "lists.parquet"}
    store.publish("mf_precomputed", "1", "precomputed", files, extra=extra)
    result = measure(store, "mf", "mf_precomputed", k=4, rounds=2)
    assert result["requests"] == 2 * len(USERS)
    assert result["on_request_p50_ms"] > 0 and result["precomputed_p50_ms"] > 0
    assert 59 < result["age_s"] < 120
    text = render(result, "make bench-precomputed")
    assert "faster per request at the median" in text and "3 users in 2.0 s" in text
