"""A Serve deployment that hosts one heavy model (its own CPUs or GPU) with batching."""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from typing import Any

from ray import serve

from deployments.config import resolve_store
from models.base import Recommender, RecommendQuery, ScoredItem, Scorer
from models.errors import ModelError
from models.registry import load_model
from models.store import ArtifactStore

__all__ = ["ModelServer"]

logger = logging.getLogger("ray.serve")


@serve.deployment(max_ongoing_requests=64, health_check_period_s=10)
class ModelServer:
    """Loads one model version and answers batched ``recommend`` and ``predict`` calls.

    Concurrent ``recommend`` calls are grouped by ``@serve.batch`` into one forward
    pass; on a GPU that pass is where the speed comes from.
    """

    def __init__(
        self,
        name: str,
        store: str,
        version: str,
        options: dict[str, Any],
        max_batch_size: int,
        batch_wait_timeout_s: float,
    ) -> None:
        self.adapter = load_model(ArtifactStore(resolve_store(store)), name, version, options)
        batcher: Any = self._recommend_batch  # the batch queue's setters are untyped
        batcher.set_max_batch_size(max_batch_size)
        batcher.set_batch_wait_timeout_s(batch_wait_timeout_s)
        logger.info("model %s version %s loaded", name, version)
        gc.freeze()  # the loaded model lives as long as the replica; stop rescanning it

    async def recommend(self, user_id: str, context: dict[str, Any], n: int) -> dict[str, Any]:
        """Top ``n`` items for one user, batched with concurrent calls."""
        items = await self._recommend_batch((user_id, context, n))
        return {
            "model": self.adapter.name,
            "version": self.adapter.version,
            "items": items,
            "curated": self.adapter.format == "curated",
        }

    async def score(
        self, user_id: str, context: dict[str, Any], item_ids: list[str]
    ) -> dict[str, Any]:
        """One score per item for one user (a DAG ``rerank`` in this deployment)."""
        if not isinstance(self.adapter, Scorer):
            raise ModelError(f"model {self.adapter.name!r} cannot score items (not a Scorer)")
        scores = self.adapter.score(RecommendQuery(user_id, context), item_ids)
        return {"model": self.adapter.name, "version": self.adapter.version, "scores": scores}

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
    async def _recommend_batch(
        self, calls: Sequence[tuple[str, dict[str, Any], int]]
    ) -> list[list[ScoredItem]]:
        if not isinstance(self.adapter, Recommender):
            raise ModelError(f"model {self.adapter.name!r} is not a recommender")
        n = max(call[2] for call in calls)
        rows = self.adapter.recommend([RecommendQuery(u, c) for u, c, _ in calls], n)
        return [row[: call[2]] for row, call in zip(rows, calls, strict=True)]

    async def predict(self, instances: list[Any]) -> dict[str, Any]:
        """Predictions for a batch of instances."""
        return {"version": self.adapter.version, "predictions": self.adapter.predict(instances)}

    def ready(self) -> dict[str, Any]:
        """What the ingress's readiness check and ``/v1/models`` show for this model."""
        info = self.adapter.describe()
        device = getattr(self.adapter, "device", None)
        if device is not None:
            info["device"] = str(device)
        return info
