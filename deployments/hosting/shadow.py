"""A shadow version's mirrored calls: run after the live answer, off the request
path, at most one at a time, their latency, errors and agreement recorded."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from deployments.hosting.rollout_records import CallWindow, RolloutObserver, WindowStats
from models.base import ModelAdapter

__all__ = ["ShadowMirror"]

logger = logging.getLogger("ray.serve")

_T = TypeVar("_T")


class ShadowMirror:
    """Mirrors calls of one model to its shadow version and keeps their record."""

    def __init__(self, model: str, observer: RolloutObserver, clock: Callable[[], float]) -> None:
        self.model = model
        self._observer = observer
        self._clock = clock
        self._window: CallWindow | None = None
        self._overlaps: deque[float] = deque(maxlen=1000)
        self._busy = False
        self._tasks: set[asyncio.Task[None]] = set()

    def reset(self, window_s: float | None) -> None:
        """A new shadow (a fresh window of ``window_s``), or none (``None``)."""
        self._window = CallWindow(window_s) if window_s is not None else None
        self._overlaps.clear()

    def mirror(
        self,
        shadow: ModelAdapter | None,
        share_percent: float,
        k: int,
        work: Callable[[ModelAdapter], _T],
        compare: Callable[[_T, int], float | None] | None = None,
    ) -> None:
        """Run ``work`` on ``shadow`` in a worker thread for ``share_percent`` of calls;
        ``compare(shadow_answer, k)`` scores its agreement with the live answer.

        At most one mirrored call runs at a time: under load the shadow sees fewer
        calls rather than slow the live ones.
        """
        if shadow is None or self._busy or random.random() * 100 >= share_percent:
            return
        self._busy = True
        task = asyncio.get_running_loop().create_task(self._call(shadow, k, work, compare))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(
        self,
        shadow: ModelAdapter,
        k: int,
        work: Callable[[ModelAdapter], _T],
        compare: Callable[[_T, int], float | None] | None,
    ) -> None:
        started = time.perf_counter()
        overlap = None
        error = False
        try:
            answer = await asyncio.to_thread(work, shadow)
            overlap = compare(answer, k) if compare is not None else None
        except Exception as exc:  # noqa: BLE001 - a shadow's failure is only recorded
            error = True
            logger.warning("model %s shadow %s failed: %s", self.model, shadow.version, exc)
        finally:
            self._busy = False
        ms = (time.perf_counter() - started) * 1000.0
        if self._window is not None:
            self._window.add(self._clock(), ms, error)
        if overlap is not None:
            self._overlaps.append(overlap)
        self._observer.on_shadow(self.model, shadow.version, ms, error, overlap)

    def summary(self) -> tuple[WindowStats, float | None] | None:
        """The window of recent mirrored calls and the mean overlap@k; None without a
        shadow."""
        if self._window is None:
            return None
        self._window.prune(self._clock())
        overlap = round(float(np.mean(self._overlaps)), 4) if self._overlaps else None
        return self._window.summary(), overlap
