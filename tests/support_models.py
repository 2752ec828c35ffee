"""Plain Python models the ``python`` format loads in tests (``support_models:Class``).

``tests/`` is on pytest's ``pythonpath``, so ``model.json`` names these classes as
``support_models:SleepyRecommender`` and so on, with no package install.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.base import RecommendQuery, ScoredItem

NOT_A_CLASS = 42
"""Something importable that is not a class, for the loader's error path."""


class SleepyRecommender:
    """Waits ``delay_s`` per call, then recommends ``items`` in order (a slow source)."""

    def __init__(self, delay_s: float, items: list[str]) -> None:
        self.delay_s = delay_s
        self.items = list(items)

    def recommend(self, queries: Sequence[RecommendQuery], n: int) -> list[list[ScoredItem]]:
        """The first ``n`` items for everyone, scored ``len(items)`` down to 1, after a sleep."""
        time.sleep(self.delay_s)
        total = len(self.items)
        row = [(item, float(total - i)) for i, item in enumerate(self.items[:n])]
        return [list(row) for _ in queries]

    def predict(self, instances: Sequence[Any]) -> list[Any]:
        """The whole item list per instance, after a sleep."""
        time.sleep(self.delay_s)
        return [list(self.items) for _ in instances]


class ConstantScorer:
    """Scores every item ``value``, except those in ``boosted`` which score ``value + 1``."""

    def __init__(self, value: float = 0.5, boosted: Sequence[str] = ()) -> None:
        self.value = value
        self.boosted = set(boosted)

    def score(self, query: RecommendQuery, item_ids: Sequence[str]) -> list[float]:
        """``value`` per item, one more for boosted items."""
        return [self.value + (item in self.boosted) for item in item_ids]

    def predict(self, instances: Sequence[Any]) -> list[Any]:
        """``value`` per instance."""
        return [self.value for _ in instances]


class ListFromFile:
    """Recommends the lines of ``items.txt`` from its own artifact directory."""

    def __init__(self, directory: Path, filename: str = "items.txt") -> None:
        self.items = (directory / filename).read_text(encoding="utf-8").split()

    def recommend(self, queries: Sequence[RecommendQuery], n: int) -> list[list[ScoredItem]]:
        """The file's first ``n`` items, scored by position."""
        return [[(item, 1.0 / (i + 1)) for i, item in enumerate(self.items[:n])] for _ in queries]


class TakesAnyKeyword:
    """Accepts ``**kwargs``, so it is handed ``directory`` too; echoes what it got."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def predict(self, instances: Sequence[Any]) -> list[Any]:
        """The sorted keyword names it was built with, per instance."""
        return [sorted(self.kwargs) for _ in instances]


class FailsToBuild:
    """Its constructor raises, as a model with a missing resource would."""

    def __init__(self) -> None:
        raise RuntimeError("weights file is missing")


class DoesNothing:
    """Defines none of predict, recommend or score."""


class Misbehaves:
    """Answers with the wrong shapes and values."""

    def predict(self, instances: Sequence[Any]) -> list[Any]:
        """One output too few."""
        return list(instances)[1:]

    def score(self, query: RecommendQuery, item_ids: Sequence[str]) -> list[float]:
        """NaN for every item."""
        return [math.nan for _ in item_ids]

    def recommend(self, queries: Sequence[RecommendQuery], n: int) -> Any:
        """Not a list at all."""
        return None


class BreaksAfter:
    """Answers its first ``ok_calls`` calls (so it passes a smoke test), then raises on
    every call: a version that breaks only under real traffic."""

    def __init__(self, items: list[str], ok_calls: int = 1) -> None:
        self.items = list(items)
        self.ok_calls = ok_calls
        self.calls = 0

    def recommend(self, queries: Sequence[RecommendQuery], n: int) -> list[list[ScoredItem]]:
        """The items in order, until the calls run out."""
        self.calls += 1
        if self.calls > self.ok_calls:
            raise RuntimeError(f"simulated fault on call {self.calls}")
        return [[(item, 1.0 / (i + 1)) for i, item in enumerate(self.items[:n])] for _ in queries]
