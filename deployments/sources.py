"""Getting a source's answer: in process, or from a model deployment by deadline."""

from __future__ import annotations

import asyncio
from typing import Any

from ray.serve.handle import DeploymentHandle

from blending.candidates import SourceResult
from models.base import ModelAdapter, Recommender, RecommendQuery
from models.errors import ModelError

__all__ = ["InlineModel", "RemoteModel"]


class InlineModel:
    """A cheap model loaded in the ingress process: no hop, no serialisation."""

    placement = "inline"

    def __init__(self, adapter: ModelAdapter) -> None:
        self.adapter = adapter

    @property
    def version(self) -> str:
        """The loaded version."""
        return self.adapter.version

    def recommend(self, query: RecommendQuery, n: int) -> SourceResult:
        """Ask the model directly."""
        if not isinstance(self.adapter, Recommender):
            raise ModelError(f"model {self.adapter.name!r} is not a recommender")
        items = self.adapter.recommend([query], n)[0]
        return SourceResult(self.adapter.name, self.adapter.version, items)

    async def predict(self, instances: list[Any]) -> dict[str, Any]:
        """Predict in process."""
        return {"version": self.adapter.version, "predictions": self.adapter.predict(instances)}

    async def describe(self) -> dict[str, Any]:
        """The adapter's description."""
        return {**self.adapter.describe(), "placement": self.placement}


class RemoteModel:
    """A model in its own deployment, called through a handle with a deadline."""

    placement = "deployment"

    def __init__(self, name: str, handle: DeploymentHandle[Any], timeout_s: float) -> None:
        self.name = name
        self.handle = handle
        self.timeout_s = timeout_s

    async def _call(self, method: str, *args: Any, timeout_s: float | None = None) -> Any:
        response = getattr(self.handle, method).remote(*args)
        try:
            return await asyncio.wait_for(response, timeout_s or self.timeout_s)
        except TimeoutError:
            response.cancel()
            raise TimeoutError(
                f"model {self.name!r} did not answer {method} within {timeout_s or self.timeout_s}s"
            ) from None

    async def recommend(self, query: RecommendQuery, n: int) -> SourceResult:
        """Ask the deployment; its calls are batched there."""
        answer = await self._call("recommend", query.user_id, dict(query.context), n)
        items = [(str(item), float(score)) for item, score in answer["items"]]
        return SourceResult(answer["model"], answer["version"], items)

    async def predict(self, instances: list[Any]) -> dict[str, Any]:
        """Predict remotely."""
        result: dict[str, Any] = await self._call("predict", instances)
        return result

    async def describe(self, timeout_s: float = 2.0) -> dict[str, Any]:
        """The replica's description; raises when it does not answer in time."""
        info: dict[str, Any] = await self._call("ready", timeout_s=timeout_s)
        return {**info, "placement": self.placement}
