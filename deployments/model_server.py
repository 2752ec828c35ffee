"""A Serve deployment that hosts one heavy model (its own CPUs or GPU) with batching.

A version that fails to load does not crash the replica (Serve would restart it in
a loop, and nobody could ask why): the replica stays up, every call raises a
``ModelError`` with the reason, ``ready`` reports it (so ``/readyz`` names the model),
and each health check retries the load at most every ``RELOAD_EVERY_S``, so a
repaired artifact comes back by itself.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Sequence
from typing import Any

from ray import serve
from ray.serve.metrics import Gauge, Histogram

from deployments.adaptive_batching import AdaptiveBatching
from deployments.config import resolve_store
from deployments.metrics import model_info_gauge, set_model_status
from models.base import ModelAdapter, Recommender, RecommendQuery, ScoredItem, Scorer
from models.errors import ModelError
from models.registry import load_failure, load_model
from models.store import ArtifactStore

__all__ = ["ModelServer"]

logger = logging.getLogger("ray.serve")

RELOAD_EVERY_S = 30.0
"""How often a replica whose model failed to load tries again."""


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
        batch_target_ms: float = 20.0,
    ) -> None:
        self.name, self.version = name, version
        self._store, self._options = store, options
        self.load_error: str | None = None
        self._last_attempt = time.monotonic()
        self._adapter: ModelAdapter | None = None
        self.model_info = model_info_gauge()
        try:
            self._adapter = self._load()
        except Exception as exc:  # noqa: BLE001 - reported by ready(), retried by check_health
            self._failed(exc)
        self.batching = AdaptiveBatching(
            max_batch_size, batch_wait_timeout_s, batch_target_ms / 1000.0
        )
        self.batch_sizes = Histogram(
            "blendserve_batch_size",
            description="Calls served by one batched forward pass.",
            boundaries=[1, 2, 4, 8, 16, 32, 64, 128, 256],
            tag_keys=("model",),
        )
        self.batch_size_limit = Gauge(
            "blendserve_batch_size_limit",
            description="The adaptive batch size cap now in force.",
            tag_keys=("model",),
        )
        self.batch_sizes.set_default_tags({"model": name})
        self.batch_size_limit.set_default_tags({"model": name})
        self._apply_batching()
        if self._adapter is not None:
            self._loaded()

    def _load(self) -> ModelAdapter:
        return load_model(
            ArtifactStore(resolve_store(self._store)), self.name, self.version, self._options
        )

    @property
    def adapter(self) -> ModelAdapter:
        """The loaded model; ``ModelError`` with the reason while it failed to load."""
        if self._adapter is None:
            raise ModelError(f"model {self.name!r}: {self.load_error}")
        return self._adapter

    def _loaded(self) -> None:
        device = getattr(self._adapter, "device", None)
        on = f" on {device}" if device else ""
        logger.info("model %s version %s loaded%s", self.name, self.version, on)
        self.load_error = None
        self._set_status("serving")
        gc.freeze()  # the loaded model lives as long as the replica; stop rescanning it

    def _failed(self, exc: BaseException) -> None:
        self.load_error = load_failure(self.version, exc)
        logger.error("model %s %s (retrying every %gs)", self.name, self.load_error, RELOAD_EVERY_S)
        self._set_status("failed")

    def _set_status(self, status: str) -> None:
        set_model_status(self.model_info, self.name, self.version, "replica", status)

    async def check_health(self) -> None:
        """Serve's periodic probe: retry a failed load now and then; else the adapter's own
        check (a GPU model verifies its device), whose failure gets the replica replaced."""
        if self._adapter is None:
            if time.monotonic() - self._last_attempt >= RELOAD_EVERY_S:
                self._last_attempt = time.monotonic()
                try:
                    self._adapter = await asyncio.to_thread(self._load)
                except Exception as exc:  # noqa: BLE001 - stays failed, reported by ready()
                    self._failed(exc)
                else:
                    self._loaded()
            return
        self._adapter.check_health()

    async def recommend(self, user_id: str, context: dict[str, Any], n: int) -> dict[str, Any]:
        """Top ``n`` items for one user, batched with concurrent calls."""
        items = await self._recommend_batch((user_id, context, n))
        return {
            "model": self.adapter.name,
            "version": self.adapter.version,
            "items": items,
            "curated": self.adapter.curated,
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
        started = time.perf_counter()
        rows = self.adapter.recommend([RecommendQuery(u, c) for u, c, _ in calls], n)
        self.batching.observe(len(calls), time.perf_counter() - started)
        self._apply_batching()
        self.batch_sizes.observe(len(calls))
        return [row[: call[2]] for row, call in zip(rows, calls, strict=True)]

    def _apply_batching(self) -> None:
        batcher: Any = self._recommend_batch  # the batch queue's setters are untyped
        batcher.set_max_batch_size(self.batching.size)
        batcher.set_batch_wait_timeout_s(self.batching.wait_s)
        self.batch_size_limit.set(self.batching.size)

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
