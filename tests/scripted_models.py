"""A model gateway for unit tests of the DAG runner: canned answers, chosen delays.

It stands in for the network between the ingress and model deployments (remote
models really await), so deadlines can be tested without Ray; the integration
suite runs the same runner against real Serve deployments.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from blending.candidates import ScoreResult, SourceResult
from models.base import RecommendQuery


@dataclass
class Scripted:
    """One model's behaviour: its items or scorer, whether remote, how slow, or failing."""

    items: list[tuple[str, float]] = field(default_factory=list)
    version: str = "1"
    remote: bool = False
    delay_s: float = 0.0
    error: Exception | None = None
    scores: dict[str, float] = field(default_factory=dict)
    curated: bool = False


class ScriptedModels:
    """A ``ModelGateway`` whose models answer as scripted; records every call."""

    def __init__(self, **models: Scripted) -> None:
        self.models = models
        self.calls: list[tuple[str, str]] = []
        self.asked: dict[str, int] = {}
        """How many items each model was last asked to recommend."""

    def is_inline(self, model: str) -> bool:
        return not self.models[model].remote

    async def _behave(self, name: str, method: str) -> Scripted:
        self.calls.append((method, name))
        script = self.models[name]
        if script.delay_s:
            await asyncio.sleep(script.delay_s)
        if script.error is not None:
            raise script.error
        return script

    async def recommend(self, model: str, query: RecommendQuery, n: int) -> SourceResult:
        self.asked[model] = n
        script = await self._behave(model, "recommend")
        return SourceResult.from_pairs(model, script.version, script.items[:n], script.curated)

    async def score(
        self, model: str, query: RecommendQuery, item_ids: Sequence[str]
    ) -> ScoreResult:
        script = await self._behave(model, "score")
        return ScoreResult(model, script.version, [script.scores.get(i, 0.0) for i in item_ids])

    async def predict(self, model: str, rows: np.ndarray) -> ScoreResult:
        # A linear "combiner": the sum of the features weighted by `scores` by position.
        script = await self._behave(model, "predict")
        weights = [script.scores.get(str(j), 1.0) for j in range(rows.shape[1])]
        return ScoreResult(
            model,
            script.version,
            [sum(w * x for w, x in zip(weights, row, strict=True)) for row in rows.tolist()],
        )
