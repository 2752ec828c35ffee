"""The ingress's model gateway: models in process, or in their own deployments."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

from blending.candidates import ScoreResult, SourceResult
from blending.gateway import LocalModels
from models.base import ModelAdapter, RecommendQuery
from models.errors import ModelError, ModelOverloadedError

__all__ = ["CPU_POOL_SUFFIX", "IngressModels", "RemoteModel"]


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
    ) -> None:
        self.name = name
        self.handle = handle
        self.timeout_s = timeout_s
        self.cpu_pool = cpu_pool
        self.spill_above = spill_above
        self.in_flight = 0
        self.spilled = 0
        """Calls sent to the CPU pool so far."""

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
        """Ask the deployment; its calls are batched there."""
        answer = await self._call("recommend", query.user_id, dict(query.context), n)
        items = [(str(item), float(score)) for item, score in answer["items"]]
        return SourceResult(answer["model"], answer["version"], items, curated=answer["curated"])

    async def score(self, query: RecommendQuery, item_ids: Sequence[str]) -> ScoreResult:
        """Score items in the deployment."""
        answer = await self._call("score", query.user_id, dict(query.context), list(item_ids))
        return ScoreResult(answer["model"], answer["version"], answer["scores"])

    async def predict(self, instances: list[Any]) -> dict[str, Any]:
        """Predict remotely."""
        result: dict[str, Any] = await self._call("predict", instances)
        return result

    async def describe(self, timeout_s: float = 2.0) -> dict[str, Any]:
        """The replica's description; raises when it does not answer in time."""
        info: dict[str, Any] = await self._call("ready", timeout_s=timeout_s)
        info = {**info, "placement": self.placement}
        if self.cpu_pool is not None:
            info["cpu_pool"] = {"spill_above": self.spill_above, "spilled_calls": self.spilled}
        return info


class IngressModels(LocalModels):
    """Every model of the app: adapters loaded in process, remote deployments, and the
    in-process ones that failed to load (their calls raise ``ModelError`` with why)."""

    def __init__(
        self,
        inline: Mapping[str, ModelAdapter],
        remote: Mapping[str, RemoteModel],
        failed: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(inline)
        self.remote = dict(remote)
        self.failed = dict(failed or {})

    def names(self) -> list[str]:
        """Every model name, inline first, failed ones included."""
        return [*self.adapters, *self.failed, *self.remote]

    def _adapter(self, model: str) -> ModelAdapter:
        if model in self.failed:
            raise ModelError(f"model {model!r}: {self.failed[model]}")
        return super()._adapter(model)

    def is_inline(self, model: str) -> bool:
        """Whether ``model`` is loaded in this process."""
        return model not in self.remote

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

    async def predict(self, model: str, rows: Sequence[Sequence[float]]) -> ScoreResult:
        """Numeric predictions from an inline adapter or the model's deployment."""
        if model in self.remote:
            answer = await self.remote[model].predict([list(row) for row in rows])
            return ScoreResult(model, answer["version"], [float(p) for p in answer["predictions"]])
        return await super().predict(model, rows)

    async def predict_any(self, model: str, instances: list[Any]) -> dict[str, Any]:
        """``/v1/predict``: the model's own output per instance, and its version."""
        if model in self.remote:
            return await self.remote[model].predict(instances)
        adapter = self._adapter(model)
        return {"version": adapter.version, "predictions": adapter.predict(instances)}

    async def describe(self, model: str) -> dict[str, Any]:
        """What ``/v1/models`` shows for ``model``."""
        if model in self.remote:
            return await self.remote[model].describe()
        return {**self._adapter(model).describe(), "placement": "inline"}
