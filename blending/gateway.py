"""How the blender reaches models: one async interface, in process or remote.

The DAG runner only sees a :class:`ModelGateway`. In process, :class:`LocalModels`
calls loaded adapters directly (their coroutines finish without suspending, so an
inline model costs no event-loop round trip); the ingress adds models reached in
other deployments behind the same interface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar

import numpy as np

from blending.candidates import ScoreResult, SourceResult
from models.base import ModelAdapter, Recommender, RecommendQuery, Scorer
from models.errors import ModelError

__all__ = ["LocalModels", "ModelGateway"]

_T = TypeVar("_T")


class ModelGateway(Protocol):
    """The model calls a blend makes."""

    def is_inline(self, model: str) -> bool:
        """Whether calls to ``model`` run in this process (and cannot be cut short)."""
        ...

    async def recommend(self, model: str, query: RecommendQuery, n: int) -> SourceResult:
        """Up to ``n`` scored candidates for the query's user."""
        ...

    async def score(
        self, model: str, query: RecommendQuery, item_ids: Sequence[str]
    ) -> ScoreResult:
        """One score per item for the query's user."""
        ...

    async def predict(self, model: str, rows: np.ndarray) -> ScoreResult:
        """One numeric prediction per row of a float feature matrix."""
        ...


class LocalModels:
    """A gateway over adapters loaded in this process."""

    def __init__(self, adapters: Mapping[str, ModelAdapter]) -> None:
        self.adapters = dict(adapters)

    def is_inline(self, model: str) -> bool:
        """Always: every model here is in process."""
        return True

    def _adapter(self, model: str) -> ModelAdapter:
        try:
            return self.adapters[model]
        except KeyError:
            raise ModelError(f"model {model!r} is not loaded here") from None

    async def _call(
        self, model: str, user_id: str | None, work: Callable[[ModelAdapter], _T]
    ) -> _T:
        """Run ``work`` on the adapter that answers ``user_id`` for ``model`` (here, the
        only one; a host with several versions of a model picks among them)."""
        return work(self._adapter(model))

    async def recommend(self, model: str, query: RecommendQuery, n: int) -> SourceResult:
        """Ask the adapter directly."""

        def work(adapter: ModelAdapter) -> SourceResult:
            if not isinstance(adapter, Recommender):
                raise ModelError(f"model {model!r} is not a recommender")
            top = adapter.top_items([query], n)[0]
            return SourceResult(model, adapter.version, top.ids, top.scores, adapter.curated)

        return await self._call(model, query.user_id, work)

    async def score(
        self, model: str, query: RecommendQuery, item_ids: Sequence[str]
    ) -> ScoreResult:
        """Score items with the adapter directly."""

        def work(adapter: ModelAdapter) -> ScoreResult:
            if not isinstance(adapter, Scorer):
                raise ModelError(f"model {model!r} cannot score items (it is not a Scorer)")
            return ScoreResult(model, adapter.version, adapter.score(query, item_ids))

        return await self._call(model, query.user_id, work)

    async def predict(self, model: str, rows: np.ndarray) -> ScoreResult:
        """Predict with the adapter directly."""
        # Rows come from the blender's own maths: the adapter may skip per-value checks.
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)

        def work(adapter: ModelAdapter) -> ScoreResult:
            return ScoreResult(model, adapter.version, adapter.predict_array(matrix))

        return await self._call(model, None, work)
