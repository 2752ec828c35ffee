"""Buffered Ray Serve metrics: a record on the request path is a dict update, and a
background thread (:func:`start_flushing`, called by each deployment) hands the
totals and values to Ray every :data:`FLUSH_EVERY_S`, through the metric's own
recorder with its tags resolved once per label set. Ray's own ``observe`` resolves
and validates tags and reads the request context on every call (about 5 us each, a
dozen per request). The metrics themselves are declared in ``metrics.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from ray.serve import metrics as serve_metrics

__all__ = ["FLUSH_EVERY_S", "Counter", "Gauge", "Histogram", "flush_metrics", "start_flushing"]

FLUSH_EVERY_S = 1.0
"""How often buffered counters and histograms reach Ray (and so Prometheus)."""

_TagKey = tuple[tuple[str, str], ...]
_LOCK = threading.Lock()
_BUFFERED: list[Counter | Gauge | Histogram] = []
_flusher: threading.Thread | None = None


def _key(tags: dict[str, str] | None) -> _TagKey:
    return tuple(tags.items()) if tags else ()


def start_flushing() -> None:
    """Flush this process's buffered metrics every :data:`FLUSH_EVERY_S` from now on,
    in a daemon thread (once per process; each deployment calls it when it starts)."""
    global _flusher
    with _LOCK:
        if _flusher is not None:
            return
        _flusher = threading.Thread(target=_flush_forever, name="metrics-flush", daemon=True)
        _flusher.start()


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_EVERY_S)
        flush_metrics()


def flush_metrics() -> None:
    """Hand every buffered record of this process to Ray now."""
    with _LOCK:
        metrics = list(_BUFFERED)
    for metric in metrics:
        metric.flush()


class Counter:
    """A Ray Serve counter whose increments add up in process until the next flush."""

    def __init__(self, name: str, description: str, tag_keys: tuple[str, ...] = ()) -> None:
        self.name = name
        self._metric = serve_metrics.Counter(
            name,
            description=description,
            tag_keys=tag_keys,  # type: ignore[arg-type]
        )
        self._pending: dict[_TagKey, float] = {}
        with _LOCK:
            _BUFFERED.append(self)

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        """Add ``value`` for the label set ``tags``."""
        key = _key(tags)
        with _LOCK:
            self._pending[key] = self._pending.get(key, 0.0) + value

    def flush(self) -> None:
        """Hand the totals since the last flush to Ray, one increment per label set."""
        with _LOCK:
            pending, self._pending = self._pending, {}
        for key, total in pending.items():
            self._metric.inc(total, tags=dict(key))


class Gauge:
    """A Ray Serve gauge whose last value per label set is handed to Ray again on every
    flush: Ray's metrics agent drops a gauge series that no report has refreshed
    within a few export periods, so a value set once (a model version that has been
    serving for an hour) would vanish from Prometheus while still true."""

    def __init__(self, name: str, description: str, tag_keys: tuple[str, ...] = ()) -> None:
        self.name = name
        self._metric = serve_metrics.Gauge(
            name,
            description=description,
            tag_keys=tag_keys,  # type: ignore[arg-type]
        )
        self._values: dict[_TagKey, float] = {}
        with _LOCK:
            _BUFFERED.append(self)

    def set_default_tags(self, tags: dict[str, str]) -> None:
        """Labels every value gets unless ``set`` names them."""
        self._metric.set_default_tags(tags)

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        """The value of the label set ``tags`` from now on."""
        with _LOCK:
            self._values[_key(tags)] = float(value)

    def flush(self) -> None:
        """Hand every label set's value to Ray (again)."""
        with _LOCK:
            values = list(self._values.items())
        for key, value in values:
            self._metric.set(value, tags=dict(key))


class Histogram:
    """A Ray Serve histogram whose observations wait in process until the next flush."""

    def __init__(
        self,
        name: str,
        description: str,
        boundaries: Sequence[float],
        tag_keys: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self._metric = serve_metrics.Histogram(
            name,
            description=description,
            boundaries=list(boundaries),
            tag_keys=tag_keys,  # type: ignore[arg-type]
        )
        self._pending: dict[_TagKey, list[float]] = {}
        self._resolved: dict[_TagKey, dict[str, str]] = {}
        with _LOCK:
            _BUFFERED.append(self)

    def set_default_tags(self, tags: dict[str, str]) -> None:
        """Labels every value gets unless ``observe`` names them."""
        self._metric.set_default_tags(tags)
        self._resolved.clear()

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        """Record one value for the label set ``tags``."""
        key = _key(tags)
        with _LOCK:
            values = self._pending.get(key)
            if values is None:
                self._pending[key] = [value]
            else:
                values.append(value)

    def flush(self) -> None:
        """Hand the values since the last flush to Ray."""
        with _LOCK:
            pending, self._pending = self._pending, {}
        recorder: Any = getattr(self._metric, "_metric", None)
        for key, values in pending.items():
            if recorder is None:  # a Ray without the recorder this relies on: the slow way
                for value in values:
                    self._metric.observe(value, tags=dict(key))
                continue
            tags = self._resolved.get(key)
            if tags is None:
                # The same tags Ray's observe would build: defaults (deployment,
                # replica, application) under ours, validated once.
                metric: Any = self._metric  # Ray's tag helpers are untyped
                tags = self._resolved[key] = metric._get_final_tags(dict(key))
                metric._validate_tags(tags)
            for value in values:
                recorder.record(value, tags=tags)
