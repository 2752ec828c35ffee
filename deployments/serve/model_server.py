"""A Serve deployment that hosts one heavy model (its own CPUs or GPU) with batching.

The model's versions live in the deployment's ``user_config`` (a ``RolloutConfig``:
the live version, an optional canary and shadow, rollback thresholds), so editing
it and running ``serve deploy`` swaps versions through ``reconfigure`` in running
replicas: the new version loads beside the old one in a worker thread, passes a
smoke test, then takes traffic in one step (``deployments/hosting/rollout.py``).

A version that fails to load does not crash the replica (Serve would restart it in
a loop, and nobody could ask why): when nothing serves yet, the replica stays up,
every call raises a ``ModelError`` with the reason, ``ready`` reports it (so
``/readyz`` names the model), and each health check retries the load at most every
``RELOAD_EVERY_S``, so a repaired artifact comes back by itself.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

from ray import serve

from blending.candidates import ScoreResult, SourceResult
from deployments.config import TracingConfig, parse_rollout, resolve_store
from deployments.config.ingress import RequestLogConfig
from deployments.config.rollout import RolloutConfig, model_deployment
from deployments.hosting.batching import AdaptiveBatching
from deployments.hosting.messages import Predictions
from deployments.hosting.rollout import ModelRollout
from deployments.hosting.rollout_records import overlap_at_k
from deployments.json_types import JsonObject
from deployments.metrics import BatchMetrics, RolloutMetrics, start_flushing
from deployments.serve.replica import flush_logs
from deployments.tracing import CallOrigin, ModelCall, configure
from models.base import ModelAdapter, Recommender, RecommendQuery, Scorer, TopItems
from models.errors import ModelError
from models.registry import load_model
from models.store import ArtifactStore

__all__ = ["ModelServer"]

logger = logging.getLogger("ray.serve")

call_logger = logging.getLogger("ray.serve.blendserve.requests")
"""Where each batch of calls writes its line (the ingress's request lines' logger)."""

RELOAD_EVERY_S = 30.0
"""How often a replica whose model failed to load tries again."""

_T = TypeVar("_T")


async def _on(adapter: ModelAdapter, work: Callable[[], _T]) -> _T:
    """Run ``work`` on the event loop, or in a worker thread for a model that waits on
    I/O (a remote service), so other calls keep flowing meanwhile."""
    if adapter.blocking:
        return await asyncio.to_thread(work)
    return work()


Call: TypeAlias = tuple[str, Mapping[str, Any], int] | tuple[str, Mapping[str, Any], int, Any]
"""A ``recommend`` call: user id, context, how many, and (from a current ingress) the
``CallOrigin`` of the request it serves."""


def _origin(call: Call) -> CallOrigin | None:
    origin = call[3] if len(call) > 3 else None
    return origin if isinstance(origin, CallOrigin) else None


def _item_ids(rows: Sequence[TopItems]) -> list[list[str]]:
    return [row.id_list() for row in rows]


@serve.deployment(max_ongoing_requests=64, health_check_period_s=10)
class ModelServer:
    """Loads one model's versions and answers batched ``recommend`` and ``predict`` calls.

    Concurrent ``recommend`` calls are grouped by ``@serve.batch`` into one forward
    pass per version; on a GPU that pass is where the speed comes from.
    """

    def __init__(
        self,
        name: str,
        store: str,
        version: str | None,
        options: dict[str, Any],
        max_batch_size: int,
        batch_wait_timeout_s: float,
        batch_target_ms: float = 20.0,
        tracing: dict[str, Any] | None = None,
        request_log: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        configure(TracingConfig.model_validate(tracing or {}), model_deployment(name))
        log = RequestLogConfig.model_validate(request_log or {})
        self._log_level = None if log.level == "OFF" else logging.getLevelName(log.level)
        self._flush_due = 0.0
        self._store, self._options = store, options
        self._last_attempt = time.monotonic()
        self.rollout = ModelRollout(name, self._load, "replica", RolloutMetrics("replica"))
        if version is not None:  # fixed in args; else the user_config names it
            self.rollout.apply(RolloutConfig(version=version))
            gc.freeze()  # the loaded model lives as long as the replica; stop rescanning it
        self.batching = AdaptiveBatching(
            max_batch_size, batch_wait_timeout_s, batch_target_ms / 1000.0
        )
        self.batch_metrics = BatchMetrics(name)
        start_flushing()
        self._apply_batching()

    def _load(self, version: str) -> ModelAdapter:
        store = ArtifactStore(resolve_store(self._store))
        return load_model(store, self.name, version, self._options)

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """A new ``user_config``: load and smoke-test new versions beside the serving ones
        (in a worker thread, so calls keep being answered), then swap them in."""
        where = f"deployment {model_deployment(self.name)!r} user_config"
        config = parse_rollout(user_config, where)
        self._last_attempt = time.monotonic()
        await asyncio.to_thread(self.rollout.apply, config)
        gc.freeze()

    @property
    def adapter(self) -> ModelAdapter:
        """The live version; ``ModelError`` with the reason while none loaded."""
        return self.rollout.live

    async def check_health(self) -> None:
        """Serve's periodic probe: retry a failed first load now and then; else each loaded
        version's own check (a GPU model verifies its device), whose failure gets the
        replica replaced."""
        flush_logs()  # the last calls' lines, when no call has come since
        config = self.rollout.config
        if self.rollout.load_error is not None and config is not None:
            if time.monotonic() - self._last_attempt >= RELOAD_EVERY_S:
                self._last_attempt = time.monotonic()
                await asyncio.to_thread(self.rollout.apply, config)
            return
        for adapter in self.rollout.versions_loaded().values():
            adapter.check_health()

    async def recommend(
        self,
        user_id: str,
        context: Mapping[str, Any],
        n: int,
        origin: CallOrigin | None = None,
    ) -> SourceResult:
        """Top ``n`` items for one user, batched with concurrent calls."""
        top, version, curated = await self._recommend_batch((user_id, context, n, origin))
        return SourceResult(self.name, version, top.ids, top.scores, curated)

    async def score(
        self,
        user_id: str,
        context: Mapping[str, Any],
        item_ids: Sequence[str],
        origin: CallOrigin | None = None,
    ) -> ScoreResult:
        """One score per item for one user (a DAG ``rerank`` in this deployment)."""
        query = RecommendQuery(user_id, context)
        traced = ModelCall(self.name, "score", [origin])

        async def call(adapter: ModelAdapter) -> list[float]:
            if not isinstance(adapter, Scorer):
                raise ModelError(f"model {self.name!r} cannot score items (not a Scorer)")
            return await _on(adapter, lambda: adapter.score(query, item_ids))

        try:
            scores, version = await self.rollout.run_one(user_id, call)
        except Exception:
            self._finished(traced, [None])
            raise
        self._finished(traced, [version])
        return ScoreResult(self.name, version, scores)

    async def recommend_many(self, calls: Sequence[Call]) -> list[SourceResult]:
        """Top ``n`` items for each ``(user_id, context, n, origin)``, in one forward
        pass: the ingress coalesces concurrent calls into this one
        (``hosting/coalescing.py``)."""
        answers = await self._recommend_all(calls)
        return [
            SourceResult(self.name, version, top.ids, top.scores, curated)
            for top, version, curated in answers
        ]

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
    async def _recommend_batch(self, calls: Sequence[Call]) -> list[tuple[TopItems, str, bool]]:
        return await self._recommend_all(calls)

    async def _recommend_all(self, calls: Sequence[Call]) -> list[tuple[TopItems, str, bool]]:
        n = max(call[2] for call in calls)
        queries = [RecommendQuery(call[0], call[1]) for call in calls]
        traced = ModelCall(self.name, "recommend", [_origin(call) for call in calls])
        started = time.perf_counter()

        async def call(adapter: ModelAdapter, indices: list[int]) -> list[TopItems]:
            if not isinstance(adapter, Recommender):
                raise ModelError(f"model {self.name!r} is not a recommender")
            group = [queries[i] for i in indices]
            return await _on(adapter, lambda: adapter.top_items(group, n))

        try:
            answers = await self.rollout.run([q.user_id for q in queries], call)
        except Exception:
            self._finished(traced, [None] * len(calls))
            raise
        self.batching.observe(len(calls), time.perf_counter() - started)
        self._apply_batching()
        self.batch_metrics.sizes.observe(len(calls))
        self._finished(traced, [version for _, version in answers])
        live_ids = _item_ids([rows for rows, _ in answers])

        def shadow(adapter: ModelAdapter) -> list[TopItems]:
            if not isinstance(adapter, Recommender):
                raise ModelError(f"shadow of {self.name!r} is not a recommender")
            return adapter.top_items(queries, n)

        self.rollout.mirror(shadow, lambda rows, k: overlap_at_k(live_ids, _item_ids(rows), k))
        curated = self.adapter.curated
        return [
            (TopItems(top.ids[: c[2]], top.scores[: c[2]]), version, curated)
            for (top, version), c in zip(answers, calls, strict=True)
        ]

    def _finished(self, traced: ModelCall, versions: Sequence[str | None]) -> None:
        """End the batch's spans and write its line: which requests it served (their
        ids: one handle call may carry several), by which versions, how long it took."""
        traced.finish(versions, len(versions))
        if self._log_level is None or not call_logger.isEnabledFor(self._log_level):
            return
        line = {
            "event": f"model_{traced.method}",
            "model": self.name,
            "request_ids": [o.request_id if o else "" for o in traced.origins],
            "versions": sorted({v for v in versions if v is not None}),
            "failed": sum(v is None for v in versions),
            "ms": round((time.time_ns() - traced.started_ns) / 1e6, 3),
        }
        call_logger.log(self._log_level, json.dumps(line, separators=(",", ":")))
        if time.monotonic() >= self._flush_due:  # throughput mode buffers replica logs
            self._flush_due = time.monotonic() + 1.0
            flush_logs()

    def _apply_batching(self) -> None:
        batcher: Any = self._recommend_batch  # the batch queue's setters are untyped
        batcher.set_max_batch_size(self.batching.size)
        batcher.set_batch_wait_timeout_s(self.batching.wait_s)
        self.batch_metrics.size_limit.set(self.batching.size)

    async def predict(
        self, instances: list[Any], version: str | None = None, origin: CallOrigin | None = None
    ) -> Predictions:
        """Predictions for a batch of instances: by the live version or the canary (drawn
        at random: there is no user to stick to), or by ``version`` when it is loaded."""
        traced = ModelCall(self.name, "predict", [origin])
        try:
            answer = await self._predict(instances, version)
        except Exception:
            self._finished(traced, [None])
            raise
        self._finished(traced, [answer.version])
        return answer

    async def _predict(self, instances: list[Any], version: str | None) -> Predictions:
        if version is not None:
            adapter = self.rollout.version_adapter(version)
            predictions = await _on(adapter, lambda: adapter.predict(instances))
            return Predictions(version, predictions)

        async def call(adapter: ModelAdapter) -> list[Any]:
            return await _on(adapter, lambda: adapter.predict(instances))

        predictions, served = await self.rollout.run_one(None, call)
        self.rollout.mirror(lambda adapter: adapter.predict(instances))
        return Predictions(served, predictions)

    async def predict_many(
        self, batches: Sequence[list[Any]], origins: Sequence[CallOrigin | None] | None = None
    ) -> list[Predictions | Exception]:
        """Predictions for several callers' instances in one model call (coalesced by the
        ingress); if that call fails, each caller's instances are tried alone, so a bad
        instance fails its own caller only, with its own index in the error."""
        traced = ModelCall(self.name, "predict", origins or [None] * len(batches))
        answers = await self._predict_each(batches)
        self._finished(traced, [a.version if isinstance(a, Predictions) else None for a in answers])
        return answers

    async def _predict_each(self, batches: Sequence[list[Any]]) -> list[Predictions | Exception]:
        together = [instance for instances in batches for instance in instances]
        try:
            joined = await self._predict(together, None)
        except Exception:  # noqa: BLE001 - answered one by one below
            answers: list[Predictions | Exception] = []
            for instances in batches:
                try:
                    answers.append(await self._predict(instances, None))
                except Exception as exc:  # noqa: BLE001 - this caller's error, for it alone
                    answers.append(exc)
            return answers
        split: list[Predictions | Exception] = []
        start = 0
        for instances in batches:
            part = joined.predictions[start : start + len(instances)]
            split.append(Predictions(joined.version, part))
            start += len(instances)
        return split

    def ready(self) -> JsonObject:
        """What the ingress's readiness check shows; raises while no version serves."""
        info: JsonObject = self.adapter.describe()
        device = getattr(self.adapter, "device", None)
        if device is not None:
            info["device"] = str(device)
        return info

    def status(self) -> JsonObject:
        """``GET /v1/models`` for this model: every version, its role, traffic share,
        status and load time, as this replica sees them. Never raises."""
        info = self.rollout.describe()
        device = getattr(
            self.rollout.versions_loaded().get(str(info.get("version", ""))), "device", None
        )
        if device is not None:
            info["device"] = str(device)
        info["replica"] = serve.get_replica_context().replica_id.unique_id
        return info
