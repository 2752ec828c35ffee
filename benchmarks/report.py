"""The numbers a run produces, the ratios and issue targets derived from them, and
how they are written: ``BENCHMARKS.md`` (tables) and a JSON file (raw results).

Plain Python over :class:`Measurement` lists, so the maths is unit-tested without
starting anything.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.loadgen import WrkResult

__all__ = [
    "FINDINGS_END",
    "FINDINGS_START",
    "Measurement",
    "Ratio",
    "Target",
    "assess_targets",
    "find",
    "keep_findings",
    "ratios",
    "results_json",
    "write_json",
]

FINDINGS_START = "<!-- findings:start (hand-written; kept when make bench rewrites this file) -->"
FINDINGS_END = "<!-- findings:end -->"

NO_MEASURABLE_COST = 1.05
"""Batching costs nothing measurable at c=1 when its p50 is within 5% of unbatched."""


@dataclass(frozen=True)
class Measurement:
    """One load run against one system at one concurrency.

    ``key`` names what was measured: ``a`` (blendserve home), ``b`` (naive home),
    ``c`` (echo), ``d_predict`` / ``d_infer`` (blendserve click model), ``e``
    (MLServer), or a variant such as ``a_no_haproxy`` or ``torch_adaptive``.
    """

    key: str
    system: str
    route: str
    concurrency: int
    wrk: WrkResult
    cpu_s: float
    """Server CPU seconds (utime + stime of its session) during the measured run."""
    processes: dict[str, float] = field(default_factory=dict)
    """Server CPU seconds by process (the busiest few), same window."""

    @property
    def cpu_ms_per_request(self) -> float:
        """Server CPU milliseconds per completed request."""
        return 1000 * self.cpu_s / self.wrk.requests if self.wrk.requests else math.nan

    def to_json(self) -> dict[str, Any]:
        """Everything, flat enough to diff."""
        return {
            "key": self.key,
            "system": self.system,
            "route": self.route,
            "concurrency": self.concurrency,
            **self.wrk.to_json(),
            "server_cpu_s": self.cpu_s,
            "server_cpu_ms_per_request": self.cpu_ms_per_request,
            "server_cpu_s_by_process": self.processes,
        }


def find(results: Iterable[Measurement], key: str, concurrency: int) -> Measurement | None:
    """The measurement of ``key`` at ``concurrency``, if it was run."""
    return next((m for m in results if m.key == key and m.concurrency == concurrency), None)


def _div(a: float, b: float) -> float:
    return a / b if b else math.nan


@dataclass(frozen=True)
class Ratio:
    """``key`` against ``baseline`` at one concurrency (throughput, p50 and CPU ratios)."""

    key: str
    baseline: str
    concurrency: int
    rps: float
    p50: float
    p99: float
    cpu_per_request: float

    @classmethod
    def of(cls, a: Measurement, b: Measurement) -> Ratio:
        """``a`` over ``b``."""
        return cls(
            a.key,
            b.key,
            a.concurrency,
            _div(a.wrk.rps, b.wrk.rps),
            _div(a.wrk.p50_ms, b.wrk.p50_ms),
            _div(a.wrk.p99_ms, b.wrk.p99_ms),
            _div(a.cpu_ms_per_request, b.cpu_ms_per_request),
        )


RATIO_PAIRS: tuple[tuple[str, str], ...] = (
    ("a", "b"),
    ("a", "c"),
    ("d_infer", "e"),
    ("d_predict", "e"),
)


def ratios(results: Sequence[Measurement]) -> list[Ratio]:
    """:data:`RATIO_PAIRS` at every concurrency both sides were measured at."""
    out = []
    for key, baseline in RATIO_PAIRS:
        for a in results:
            if a.key != key:
                continue
            b = find(results, baseline, a.concurrency)
            if b is not None:
                out.append(Ratio.of(a, b))
    return out


@dataclass(frozen=True)
class Target:
    """One target of the issue: what it asks, whether it is met, what was measured."""

    name: str
    goal: str
    met: bool | None
    """``None`` when a run it needs was not part of this run."""
    measured: str
    best: str = ""
    """For a missed target: the best ratio any measured variant reached."""


def _missing(name: str, goal: str) -> Target:
    return Target(name, goal, None, "not measured in this run")


def _best_home_ratio(results: Sequence[Measurement], echo: Measurement) -> str:
    candidates = [
        (m.wrk.rps / echo.wrk.rps, m.key)
        for m in results
        if m.key.startswith("a") and m.concurrency == 16 and echo.wrk.rps
    ]
    if not candidates:
        return ""
    ratio, key = max(candidates)
    return f"best variant: `{key}` at {ratio:.2f}x"


def assess_targets(results: Sequence[Measurement], budget_ms: float) -> list[Target]:
    """The issue's targets, each met or missed with the measured distance."""
    targets = []
    goal = "(a) throughput at c=16 >= 0.8x the echo's (c)"
    a16, c16 = find(results, "a", 16), find(results, "c", 16)
    if a16 and c16:
        r = _div(a16.wrk.rps, c16.wrk.rps)
        targets.append(
            Target(
                "home throughput vs echo",
                goal,
                r >= 0.8,
                f"{a16.wrk.rps:.0f} vs {c16.wrk.rps:.0f} req/s = {r:.2f}x "
                f"({'met' if r >= 0.8 else f'{0.8 / r:.1f}x short'})",
                _best_home_ratio(results, c16),
            )
        )
    else:
        targets.append(_missing("home throughput vs echo", goal))

    goal = "(a) p50 at c=1 <= 1.3x the echo's (c)"
    a1, c1 = find(results, "a", 1), find(results, "c", 1)
    if a1 and c1:
        r = _div(a1.wrk.p50_ms, c1.wrk.p50_ms)
        best = [
            (m.wrk.p50_ms / c1.wrk.p50_ms, m.key)
            for m in results
            if m.key.startswith("a") and m.concurrency == 1 and c1.wrk.p50_ms
        ]
        targets.append(
            Target(
                "home latency vs echo",
                goal,
                r <= 1.3,
                f"{a1.wrk.p50_ms:.2f} vs {c1.wrk.p50_ms:.2f} ms = {r:.1f}x "
                f"(+{a1.wrk.p50_ms - 1.3 * c1.wrk.p50_ms:.2f} ms over the target)"
                if r > 1.3
                else f"{a1.wrk.p50_ms:.2f} vs {c1.wrk.p50_ms:.2f} ms = {r:.2f}x",
                f"best: `{min(best)[1]}` at {min(best)[0]:.1f}x"
                if r > 1.3 and best and min(best)[1] != "a"
                else "",
            )
        )
    else:
        targets.append(_missing("home latency vs echo", goal))

    targets.append(_batching_target(results, budget_ms))

    goal = "(d) OIP infer throughput at c=16 >= 1.5x MLServer's (e)"
    d16, e16 = find(results, "d_infer", 16), find(results, "e", 16)
    if d16 and e16:
        r = _div(d16.wrk.rps, e16.wrk.rps)
        predict = find(results, "d_predict", 16)
        also = f"; `/v1/predict`: {_div(predict.wrk.rps, e16.wrk.rps):.2f}x" if predict else ""
        best_ratio, best_key = max(
            (_div(d.wrk.rps, e16.wrk.rps), d.key)
            for d in results
            if d.concurrency == 16 and d.key.startswith("d_infer")
        )
        d1, e1 = find(results, "d_infer", 1), find(results, "e", 1)
        low = f"; at c=1 {_div(d1.wrk.rps, e1.wrk.rps):.2f}x" if d1 and e1 else ""
        targets.append(
            Target(
                "click model vs MLServer",
                goal,
                r >= 1.5,
                f"{d16.wrk.rps:.0f} vs {e16.wrk.rps:.0f} req/s = {r:.2f}x{also}",
                f"best at c=16: `{best_key}` {best_ratio:.2f}x{low}" if r < 1.5 else "",
            )
        )
    else:
        targets.append(_missing("click model vs MLServer", goal))
    return targets


def _batching_target(results: Sequence[Measurement], budget_ms: float) -> Target:
    name = "torch adaptive batching"
    goal = (
        f"adaptive >= 5x unbatched throughput at c=64, its p99 <= the {budget_ms:g} ms "
        f"budget, and no measurable cost at c=1 (p50 within {NO_MEASURABLE_COST - 1:.0%})"
    )
    on64, off64 = find(results, "torch_adaptive", 64), find(results, "torch_unbatched", 64)
    on1, off1 = find(results, "torch_adaptive", 1), find(results, "torch_unbatched", 1)
    if not (on64 and off64 and on1 and off1):
        return _missing(name, goal)
    speedup = _div(on64.wrk.rps, off64.wrk.rps)
    cost = _div(on1.wrk.p50_ms, off1.wrk.p50_ms)
    parts = [
        f"throughput {on64.wrk.rps:.0f} vs {off64.wrk.rps:.0f} req/s = {speedup:.2f}x",
        f"p99 {on64.wrk.p99_ms:.1f} ms at c=64",
        f"c=1 p50 {on1.wrk.p50_ms:.2f} vs {off1.wrk.p50_ms:.2f} ms ({cost:.2f}x)",
    ]
    for side, m in (("adaptive", on64), ("unbatched", off64)):
        if m.wrk.errors:
            parts.append(f"{side}: {m.wrk.errors} errors at c=64")
    met = speedup >= 5 and on64.wrk.p99_ms <= budget_ms and cost <= NO_MEASURABLE_COST
    return Target(name, goal, met, "; ".join(parts))


def keep_findings(previous: str | None) -> str:
    """The hand-written findings block of the previous report, or an empty one."""
    if previous and FINDINGS_START in previous and FINDINGS_END in previous:
        start = previous.index(FINDINGS_START)
        end = previous.index(FINDINGS_END) + len(FINDINGS_END)
        return previous[start:end]
    return f"{FINDINGS_START}\n_No findings written yet._\n{FINDINGS_END}"


def results_json(
    meta: dict[str, Any],
    results: Sequence[Measurement],
    targets: Sequence[Target],
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The raw results: metadata, every measurement, the ratios and the targets."""
    return {
        "meta": meta,
        "measurements": [m.to_json() for m in results],
        "ratios": [r.__dict__ for r in ratios(results)],
        "targets": [t.__dict__ for t in targets],
        **extra,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON (NaN as null), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_no_nan(data), indent=2) + "\n", encoding="utf-8")


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value
