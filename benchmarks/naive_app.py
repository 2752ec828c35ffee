"""The naive baseline: the demo's ``home`` use case as plain Ray Serve composition.

One Serve deployment per DAG node, wired with ``DeploymentHandle``s the way Ray
Serve's model-composition guide shows: three sources (``mf``, ``popularity``,
``staff_picks``), the weighted blend, the slots node and the filter node, behind a
FastAPI ingress. The maths is blendserve's own (``models.registry.load_model``,
``blending.nodes``), so the only difference measured is the architecture: a
deployment hop per node instead of one in-process DAG. No batching, no deadline.

``serve deploy benchmarks/configs/naive.yaml`` (with the repository on
``PYTHONPATH``) serves ``POST /v1/recommend/home`` with blendserve's request and
response shapes.
"""

# No `from __future__ import annotations`: FastAPI must see real annotations to
# read the request body (as in deployments/serve/ingress.py).

import os
import secrets
import time
import uuid
from dataclasses import replace
from typing import Any

import msgspec
from fastapi import FastAPI
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from blending.candidates import Candidate, SourceResult
from blending.catalog import StaticCatalog
from blending.gateway import LocalModels
from blending.items import ItemTable
from blending.nodes import RequestItems, apply_filter, apply_slots, from_source, weighted_blend
from blending.ranked import Ranked
from blending.result_ids import ResultIdCodec, ResultRef
from deployments.api.schemas import RecommendRequest, RecommendResponse
from deployments.config import RESULT_KEY_ENV, resolve_store
from models.base import RecommendQuery
from models.registry import load_model
from models.store import ArtifactStore

__all__ = ["build_app"]

# The demo's `home` use case (configs/default.yaml), fixed here: the naive app has
# no DAG config of its own.
_SOURCES = {"cf": ("mf", 200), "popular": ("popularity", 200), "picks": ("staff_picks", 20)}
_WEIGHTS = {"cf": 0.6, "popular": 0.25, "picks": 0.15}
_NORMALIZE = "minmax"
_SLOT_POSITIONS = [1, 5]
# Small requests per replica would queue in front of every node; blendserve's
# ingress allows 256 and its model replicas 64.
_MAX_ONGOING = 256


@serve.deployment(max_ongoing_requests=_MAX_ONGOING)
class SourceNode:
    """A DAG source: one model's top-n candidates for a user."""

    def __init__(self, store: str, model: str, version: str) -> None:
        adapter = load_model(ArtifactStore(resolve_store(store)), model, version)
        self.model = model
        self.gateway = LocalModels({model: adapter})

    async def recommend(self, user_id: str, n: int) -> SourceResult:
        """Up to ``n`` scored items for ``user_id``."""
        return await self.gateway.recommend(self.model, RecommendQuery(user_id), n)


@serve.deployment(max_ongoing_requests=_MAX_ONGOING)
class BlendNode:
    """The weighted blend of the three sources (min-max normalised)."""

    def __init__(self) -> None:
        self.table = ItemTable()

    async def run(
        self, cf: SourceResult, popular: SourceResult, picks: SourceResult
    ) -> list[Candidate]:
        """The blended list, best first, every item a candidate: the next node is
        another process, so nothing can stay lazy."""
        answers = {"cf": cf, "popular": popular, "picks": picks}
        lists = [
            (_WEIGHTS[name], from_source(name, answers[name], self.table)) for name in _WEIGHTS
        ]
        return weighted_blend(lists, _NORMALIZE).candidates(self.table)


@serve.deployment(max_ongoing_requests=_MAX_ONGOING)
class SlotsNode:
    """Pins the first staff picks at positions 1 and 5."""

    def __init__(self) -> None:
        self.table = ItemTable()

    async def run(
        self, blended: list[Candidate], picks: SourceResult, exclude: list[str], k: int
    ) -> list[Candidate]:
        """``blended`` with the curated picks in their slots."""
        ranked = Ranked.from_candidates(self.table, blended)
        curated = from_source("picks", picks, self.table)
        request = RequestItems(self.table, frozenset(exclude), catalog=False)
        return apply_slots(ranked, curated, _SLOT_POSITIONS, request).candidates(self.table)


@serve.deployment(max_ongoing_requests=_MAX_ONGOING)
class FilterNode:
    """Drops excluded, repeated and unavailable items; keeps the top k."""

    def __init__(self, catalog: str | None) -> None:
        self.catalog = StaticCatalog.from_parquet(resolve_store(catalog)) if catalog else None

    async def run(self, items: list[Candidate], exclude: list[str], k: int) -> list[Candidate]:
        """The filtered top ``k``."""
        table = self.catalog.table if self.catalog else ItemTable()
        request = RequestItems(table, frozenset(exclude), catalog=self.catalog is not None)
        ranked = Ranked.from_candidates(table, items)
        return apply_filter(ranked, request, limit=k).candidates(table)


api = FastAPI(title="naive composition")


@serve.deployment(max_ongoing_requests=_MAX_ONGOING)
@serve.ingress(api)
class NaiveIngress:
    """Validates the request, chains the node deployments, shapes the answer."""

    def __init__(
        self,
        versions: dict[str, str],
        sources: dict[str, DeploymentHandle[Any]],
        blend: DeploymentHandle[Any],
        slots: DeploymentHandle[Any],
        final: DeploymentHandle[Any],
    ) -> None:
        self.versions = versions
        self.sources = sources
        self.blend = blend
        self.slots = slots
        self.final = final
        key = os.environ.get(RESULT_KEY_ENV, "")
        self.codec = ResultIdCodec(key.encode() if len(key) >= 16 else secrets.token_bytes(32))

    @api.post("/v1/recommend/home", response_model=RecommendResponse)
    async def recommend(self, request: RecommendRequest) -> Any:
        """The ``home`` use case: sources in parallel, then blend, slots and filter."""
        # Responses are passed on unawaited: Serve resolves them in the callee.
        answers = {
            name: self.sources[name].recommend.remote(request.user_id, n)
            for name, (_, n) in _SOURCES.items()
        }
        blended = self.blend.run.remote(answers["cf"], answers["popular"], answers["picks"])
        pinned = self.slots.run.remote(blended, answers["picks"], request.exclude, request.k)
        items: list[Candidate] = await self.final.run.remote(pinned, request.exclude, request.k)
        request_id = uuid.uuid4().hex
        served = ResultRef(request_id, "home", 0, "", int(time.time()))
        return {
            "request_id": request_id,
            "use_case": "home",
            "items": [self._item(served, i, c) for i, c in enumerate(items, start=1)],
            "model_versions": self.versions,
            "degraded": False,
        }

    def _item(self, served: ResultRef, position: int, candidate: Candidate) -> dict[str, Any]:
        ref = replace(
            served,
            position=position,
            item_id=candidate.item_id,
            model_versions={c.model: c.version for c in candidate.components},
        )
        return {
            "item_id": candidate.item_id,
            "result_id": self.codec.encode(ref),
            "score": candidate.score,
            "pinned": candidate.pinned,
            "components": msgspec.to_builtins(candidate.components),
        }


def build_app(args: dict[str, Any]) -> Application:
    """The naive app: ``args`` has ``store``, ``catalog``, ``models`` (name -> version)
    and optionally ``num_cpus`` per deployment name."""
    store = str(args.get("store", "artifacts"))
    versions = {str(k): str(v) for k, v in args["models"].items()}
    cpus: dict[str, float] = {str(k): float(v) for k, v in (args.get("num_cpus") or {}).items()}

    def placed(deployment: Any, name: str) -> Any:
        return deployment.options(
            name=name, ray_actor_options={"num_cpus": cpus.get(name, cpus.get("default", 0.1))}
        )

    sources = {
        node: placed(SourceNode, f"source-{model}").bind(store, model, versions[model])
        for node, (model, _) in _SOURCES.items()
    }
    app: Application = placed(NaiveIngress, "NaiveIngress").bind(
        versions,
        sources,
        placed(BlendNode, "blend").bind(),
        placed(SlotsNode, "slots").bind(),
        placed(FilterNode, "filter").bind(args.get("catalog")),
    )
    return app
