"""Counters and histograms add up in process and reach Ray once per flush.

No flushing thread runs here (deployments start it), so each flush is the test's.
"""

from __future__ import annotations

from typing import Any

from deployments.metric_buffers import Counter, Gauge, Histogram, flush_metrics


class _Recorder:
    """Stands in for Ray's own recorder: what was handed over, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, dict[str, str]]] = []

    def inc(self, value: float, tags: dict[str, str]) -> None:
        self.calls.append((value, dict(tags)))

    def record(self, value: float, tags: dict[str, str]) -> None:
        self.calls.append((value, dict(tags)))


def test_increments_reach_ray_as_one_total_per_label_set() -> None:
    counter = Counter("blendserve_test_buffered_total", "test", tag_keys=("use_case",))
    recorder = _Recorder()
    counter._metric = recorder  # type: ignore[assignment]
    for _ in range(5):
        counter.inc(tags={"use_case": "home"})
    counter.inc(2.0, tags={"use_case": "latest"})
    assert recorder.calls == []  # nothing on the request path
    flush_metrics()
    assert sorted(recorder.calls, key=lambda c: c[1]["use_case"]) == [
        (5.0, {"use_case": "home"}),
        (2.0, {"use_case": "latest"}),
    ]
    flush_metrics()
    assert len(recorder.calls) == 2  # a flush hands each record over once


def test_every_observation_reaches_ray_with_its_tags() -> None:
    histogram = Histogram(
        "blendserve_test_buffered_ms", "test", boundaries=[1, 10], tag_keys=("node",)
    )
    inner: Any = histogram._metric
    recorder = _Recorder()
    inner._metric = recorder
    histogram.set_default_tags({"node": "default"})
    for value in (0.5, 3.0, 12.0):
        histogram.observe(value, tags={"node": "cf"})
    histogram.observe(7.0)
    flush_metrics()
    assert recorder.calls == [
        (0.5, {"node": "cf"}),
        (3.0, {"node": "cf"}),
        (12.0, {"node": "cf"}),
        (7.0, {"node": "default"}),
    ]


def test_records_survive_when_ray_lacks_the_fast_recorder() -> None:
    histogram = Histogram("blendserve_test_fallback_ms", "test", boundaries=[1], tag_keys=("n",))
    observed: list[tuple[float, dict[str, str]]] = []
    inner: Any = histogram._metric
    inner._metric = None
    inner.observe = lambda value, tags: observed.append((value, tags))
    histogram.observe(4.0, tags={"n": "x"})
    flush_metrics()
    assert observed == [(4.0, {"n": "x"})]


class _GaugeRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[float, dict[str, str]]] = []

    def set(self, value: float, tags: dict[str, str]) -> None:
        self.calls.append((value, dict(tags)))


def test_a_gauge_set_once_is_handed_to_ray_on_every_flush() -> None:
    # Ray's metrics agent forgets a gauge series no report refreshed within a few
    # export periods: a model version serving for an hour must not vanish.
    gauge = Gauge("blendserve_test_buffered_gauge", "test", tag_keys=("model",))
    recorder = _GaugeRecorder()
    gauge._metric = recorder  # type: ignore[assignment]
    gauge.set(1, tags={"model": "mf"})
    gauge.set(3, tags={"model": "mf"})  # the last value wins
    assert recorder.calls == []
    for _ in range(3):
        flush_metrics()
    assert recorder.calls == [(3.0, {"model": "mf"})] * 3
