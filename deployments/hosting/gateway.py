"""The ingress's model gateway: models in process, or in their own deployments."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

import numpy as np
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

from blending.candidates import ScoreResult, SourceResult
from blending.gateway import LocalModels
from deployments.config import AppArgs, LiveConfig, ModelConfig, resolve_store
from deployments.config.rollout import RolloutConfig, model_deployment
from deployments.hosting.coalescing import CallCoalescer, CallCoalescing
from deployments.hosting.messages import Predictions
from deployments.hosting.rollout import ModelRollout
from deployments.hosting.rollout_records import RolloutObserver, overlap_at_k
from deployments.json_types import JsonObject
from deployments.tracing import CallOrigin, model_call
from models.base import ModelAdapter, RecommendQuery
from models.errors import ConfigError, ModelError, ModelOverloadedError, describe_error
from models.registry import load_model
from models.store import ArtifactStore

__all__ = ["CPU_POOL_SUFFIX", "IngressModels", "RemoteModel", "build_gateway"]


_T = TypeVar("_T")

RecommendCall: TypeAlias = tuple[str, Any, int, CallOrigin]
"""One ``recommend`` call as it crosses to the model's deployment: user id, context,
how many items, and which request it serves."""

PredictCall: TypeAlias = tuple[list[Any], CallOrigin]
"""One ``predict`` call: its instances, and which request it serves."""

CPU_POOL_SUFFIX = "-cpu"
"""Appended to a model's name for its CPU overflow pool's handle and deployment."""


class RemoteModel:
    """A model in its own deployment, called through a handle with a deadline.

    With a CPU pool, calls beyond ``spill_above`` in flight to the main (GPU) pool,
    or refused by it with ``BackPressureError``, go to the CPU pool instead.
    """

    placement = "replica"

    def __init__(
        self,
        name: str,
        handle: DeploymentHandle[Any],
        timeout_s: float,
        cpu_pool: DeploymentHandle[Any] | None = None,
        spill_above: int = 0,
        coalesce: CallCoalescing | None = None,
    ) -> None:
        self.name = name
        self.handle = handle
        self.timeout_s = timeout_s
        self.cpu_pool = cpu_pool
        self.spill_above = spill_above
        self.in_flight = 0
        self.spilled = 0
        """Calls sent to the CPU pool so far."""
        self.recommends: CallCoalescer[RecommendCall, SourceResult] | None = None
        self.predicts: CallCoalescer[PredictCall, Predictions] | None = None
        if coalesce is not None:
            self.recommends = CallCoalescer(
                self._recommend_many, coalesce.max_batch, coalesce.in_flight
            )
            self.predicts = CallCoalescer(
                self._predict_many, coalesce.max_batch, coalesce.in_flight
            )

    async def _call(self, method: str, *args: Any, timeout_s: float | None = None) -> Any:
        limit = timeout_s or self.timeout_s
        if self.cpu_pool is not None and self.in_flight >= self.spill_above:
            return await self._send(self.cpu_pool, method, args, limit, spilled=True)
        self.in_flight += 1
        try:
            return await self._send(self.handle, method, args, limit)
        except ModelOverloadedError:
            if self.cpu_pool is None:
                raise
            return await self._send(self.cpu_pool, method, args, limit, spilled=True)
        finally:
            self.in_flight -= 1

    async def _send(
        self,
        handle: DeploymentHandle[Any],
        method: str,
        args: tuple[Any, ...],
        limit: float,
        spilled: bool = False,
    ) -> Any:
        if spilled:
            self.spilled += 1
        response = getattr(handle, method).remote(*args)
        try:
            return await asyncio.wait_for(response, limit)
        except BackPressureError as exc:
            # Serve answers its own BackPressureError inside the route (a bare 503 with
            # no Retry-After); as a blendserve error the ingress decides the answer.
            raise ModelOverloadedError(f"model {self.name!r} is at capacity: {exc}") from None
        except TimeoutError:
            response.cancel()
            raise TimeoutError(
                f"model {self.name!r} did not answer {method} within {limit}s"
            ) from None
        except asyncio.CancelledError:
            # The blend stopped waiting (its budget ran out): free the replica too.
            response.cancel()
            raise

    async def recommend(self, query: RecommendQuery, n: int) -> SourceResult:
        """Ask the deployment, with the calls around this one when coalescing."""
        with model_call(self.name, "recommend") as origin:
            call = (query.user_id, dict(query.context), n, origin)
            if self.recommends is not None:
                return await self.recommends.call(call)
            answer: SourceResult = await self._call("recommend", *call)
            return answer

    async def _recommend_many(self, calls: list[RecommendCall]) -> list[SourceResult]:
        answers: list[SourceResult] = await self._call("recommend_many", calls)
        return answers

    async def _predict_many(self, calls: list[PredictCall]) -> list[Predictions | Exception]:
        batches = [instances for instances, _ in calls]
        origins = [origin for _, origin in calls]
        answers: list[Predictions | Exception] = await self._call("predict_many", batches, origins)
        return answers

    async def score(self, query: RecommendQuery, item_ids: Sequence[str]) -> ScoreResult:
        """Score items in the deployment."""
        with model_call(self.name, "score") as origin:
            answer: ScoreResult = await self._call(
                "score", query.user_id, query.context, item_ids, origin
            )
            return answer

    async def predict(self, instances: list[Any], version: str | None = None) -> Predictions:
        """Predict remotely (by ``version`` when given and loaded there), with the calls
        around this one when coalescing and no version is asked for."""
        with model_call(self.name, "predict") as origin:
            if self.predicts is not None and version is None:
                return await self.predicts.call((instances, origin))
            result: Predictions = await self._call("predict", instances, version, origin)
            return result

    async def describe(self, timeout_s: float = 2.0) -> JsonObject:
        """The replica's description; raises when it does not answer in time."""
        info: JsonObject = await self._call("ready", timeout_s=timeout_s)
        return self._with_pool({**info, "placement": self.placement})

    async def status(self, timeout_s: float = 2.0) -> JsonObject:
        """One replica's view of the model's versions (``ModelServer.status``)."""
        try:
            info: JsonObject = await self._call("status", timeout_s=timeout_s)
        except Exception as exc:  # noqa: BLE001 - a status page shows why, never fails
            return {"name": self.name, "placement": self.placement, "error": describe_error(exc)}
        return self._with_pool(info)

    def _with_pool(self, info: JsonObject) -> JsonObject:
        """The replica's answer, with what this ingress replica saw of its own calls."""
        if self.cpu_pool is not None:
            info["cpu_pool"] = {"spill_above": self.spill_above, "spilled_calls": self.spilled}
        coalesced = [c for c in (self.recommends, self.predicts) if c is not None]
        if coalesced:
            info["coalescing"] = {
                "handle_calls": sum(c.calls for c in coalesced),
                "requests": sum(c.requests for c in coalesced),
            }
        return info


def _agreement(live: Any, shadow: Any, k: int) -> float | None:
    """Overlap@k of two candidate lists (recommendations); None for other answers."""
    if isinstance(live, SourceResult) and isinstance(shadow, SourceResult):
        return overlap_at_k([live.id_list()], [shadow.id_list()], k)
    return None


class IngressModels(LocalModels):
    """Every model of the app: the versions of each inline model (a ``ModelRollout``
    in this process: live, canary, shadow) and the models in their own deployments."""

    def __init__(self, inline: Mapping[str, ModelRollout], remote: Mapping[str, RemoteModel]):
        super().__init__({})
        self.inline = dict(inline)
        self.remote = dict(remote)

    def live_adapters(self) -> dict[str, ModelAdapter]:
        """The live version of each inline model that has one."""
        return {
            name: rollout.live
            for name, rollout in self.inline.items()
            if rollout.config is not None and rollout.load_error is None
        }

    def names(self) -> list[str]:
        """Every model name, inline first."""
        return [*self.inline, *self.remote]

    def is_inline(self, model: str) -> bool:
        """Whether ``model`` is loaded in this process."""
        return model not in self.remote

    async def _call(
        self, model: str, user_id: str | None, work: Callable[[ModelAdapter], _T]
    ) -> _T:
        """Run ``work`` on the live or canary version for ``user_id``, then mirror it to
        the shadow version (off the request path) when there is one."""
        rollout = self.inline.get(model)
        if rollout is None:
            raise ModelError(f"model {model!r} is not loaded here")

        async def call(adapter: ModelAdapter) -> _T:
            if adapter.blocking:
                return await asyncio.to_thread(work, adapter)
            return work(adapter)

        answer, _ = await rollout.run_one(user_id, call)
        rollout.mirror(work, lambda shadow, k: _agreement(answer, shadow, k))
        return answer

    async def recommend(self, model: str, query: RecommendQuery, n: int) -> SourceResult:
        """Candidates from an inline adapter or the model's deployment."""
        if model in self.remote:
            return await self.remote[model].recommend(query, n)
        return await super().recommend(model, query, n)

    async def score(
        self, model: str, query: RecommendQuery, item_ids: Sequence[str]
    ) -> ScoreResult:
        """Scores from an inline adapter or the model's deployment."""
        if model in self.remote:
            return await self.remote[model].score(query, item_ids)
        return await super().score(model, query, item_ids)

    async def predict(self, model: str, rows: np.ndarray) -> ScoreResult:
        """Numeric predictions from an inline adapter or the model's deployment."""
        if model in self.remote:
            answer = await self.remote[model].predict(rows.tolist())
            return ScoreResult(model, answer.version, [float(p) for p in answer.predictions])
        return await super().predict(model, rows)

    async def predict_any(
        self, model: str, instances: list[Any], version: str | None = None
    ) -> Predictions:
        """``/v1/predict``: the model's own output per instance, and the version that
        gave it (``version`` asks for one loaded version explicitly)."""
        if model in self.remote:
            return await self.remote[model].predict(instances, version)
        if version is not None:
            adapter = self.inline[model].version_adapter(version)
            return Predictions(version, adapter.predict(instances))

        def work(adapter: ModelAdapter) -> Predictions:
            return Predictions(adapter.version, adapter.predict(instances))

        return await self._call(model, None, work)

    async def apply_versions(self, live: LiveConfig) -> None:
        """Move the inline models named in the Ingress's ``user_config.models`` to their
        new versions, loading in worker threads while requests keep being answered."""
        for name, versions in live.models.items():
            if name in self.remote:
                raise ConfigError(
                    f"Ingress user_config.models.{name}: the model runs in deployment "
                    f"{model_deployment(name)!r}; set its versions in that deployment's "
                    "user_config"
                )
            if name not in self.inline:
                raise ConfigError(f"Ingress user_config.models.{name}: no such model")
            await asyncio.to_thread(self.inline[name].apply, versions)

    async def describe(self, model: str) -> JsonObject:
        """The live version's description; raises when none serves (``/readyz``)."""
        if model in self.remote:
            return await self.remote[model].describe()
        return {**self.inline[model].live.describe(), "placement": "inline"}

    async def status(self, model: str) -> JsonObject:
        """``GET /v1/models`` for ``model``: its versions, roles, traffic and status."""
        if model in self.remote:
            return await self.remote[model].status()
        return self.inline[model].describe()


def build_gateway(
    config: AppArgs, handles: Mapping[str, DeploymentHandle[Any]], observer: RolloutObserver
) -> IngressModels:
    """The ingress's models: a handle for each model in its own deployment, a rollout
    for each inline one. Inline models whose version is fixed in ``args`` load now (a
    failure is kept, not raised); the others load from the ``user_config``."""
    store = ArtifactStore(resolve_store(config.store))
    remote: dict[str, RemoteModel] = {}
    inline: dict[str, ModelRollout] = {}
    for name, spec in config.models.items():
        if name in handles:
            remote[name] = RemoteModel(
                name,
                handles[name],
                spec.timeout_s,
                handles.get(f"{name}{CPU_POOL_SUFFIX}"),
                spec.cpu_pool.spill_above if spec.cpu_pool else 0,
                # A bounded queue asks for an at-once refusal when the model is full,
                # which only a call per request gets from Serve: no coalescing then.
                _coalescing(spec) if spec.coalesce and spec.max_queued_requests < 0 else None,
            )
            continue
        inline[name] = ModelRollout(name, _loader(store, name, spec.options), "inline", observer)
        if spec.version is not None:
            inline[name].apply(RolloutConfig(version=spec.version))
    return IngressModels(inline, remote)


def _coalescing(spec: ModelConfig) -> CallCoalescing:
    """Up to ``max_batch_size`` calls per handle call and ``calls_in_flight`` handle
    calls out; with a CPU pool, ``spill_above`` more, which go to the pool."""
    in_flight = spec.calls_in_flight + (spec.cpu_pool.spill_above if spec.cpu_pool else 0)
    return CallCoalescing(spec.max_batch_size, in_flight)


def _loader(
    store: ArtifactStore, name: str, options: Mapping[str, Any]
) -> Callable[[str], ModelAdapter]:
    """Loads a version of ``name`` from ``store`` (checksums verified)."""
    return lambda version: load_model(store, name, version, options)
