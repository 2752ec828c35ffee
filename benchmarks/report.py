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

NO_MEASURABLE_COST = 1.10
"""Coalescing may cost a lone request at most this much p50."""
HOME_VS_ECHO = 0.5
P50_VS_ECHO = 2.0
P99_VS_ECHO = 3.0
DAG_MS = 0.15
CPU_MS = 1.2
COALESCED_SPEEDUP = 3.0
OIP_VS_MLSERVER = 1.5
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


def _best(results: Sequence[Measurement], prefix: str, c: int, value: Any) -> tuple[float, str]:
    """The best (highest ``value``) measurement whose key starts with ``prefix`` at ``c``."""
    found = [(value(m), m.key) for m in results if m.key.startswith(prefix) and m.concurrency == c]
    return max(found) if found else (math.nan, "")


def assess_targets(
    results: Sequence[Measurement], budget_ms: float, dag_ms: float | None = None
) -> list[Target]:
    """The performance issue's targets, each met or missed with the measured distance.

    ``dag_ms`` is the ``home`` DAG's in-process cost per request, when profiled.
    """
    return [
        _throughput_target(results),
        _latency_target(results),
        _dag_target(dag_ms),
        _cpu_target(results),
        _batching_target(results, budget_ms),
        _oip_target(results),
    ]


def _throughput_target(results: Sequence[Measurement]) -> Target:
    name, goal = "home throughput vs echo", f"(a) at c=16 >= {HOME_VS_ECHO:g}x the echo's (c)"
    a16, c16 = find(results, "a", 16), find(results, "c", 16)
    if not (a16 and c16):
        return _missing(name, goal)
    r = _div(a16.wrk.rps, c16.wrk.rps)
    best, key = _best(results, "a", 16, lambda m: _div(m.wrk.rps, c16.wrk.rps))
    return Target(
        name,
        goal,
        r >= HOME_VS_ECHO,
        f"{a16.wrk.rps:.0f} vs {c16.wrk.rps:.0f} req/s = {r:.2f}x"
        + ("" if r >= HOME_VS_ECHO else f" ({HOME_VS_ECHO / r:.1f}x short)"),
        f"best variant: `{key}` at {best:.2f}x" if key and key != "a" else "",
    )


def _latency_target(results: Sequence[Measurement]) -> Target:
    name = "home latency vs echo"
    goal = f"(a) p50 at c=1 <= {P50_VS_ECHO:g}x the echo's, p99 at c=16 <= {P99_VS_ECHO:g}x"
    a1, c1 = find(results, "a", 1), find(results, "c", 1)
    a16, c16 = find(results, "a", 16), find(results, "c", 16)
    if not (a1 and c1 and a16 and c16):
        return _missing(name, goal)
    p50 = _div(a1.wrk.p50_ms, c1.wrk.p50_ms)
    p99 = _div(a16.wrk.p99_ms, c16.wrk.p99_ms)
    return Target(
        name,
        goal,
        p50 <= P50_VS_ECHO and p99 <= P99_VS_ECHO,
        f"p50 {a1.wrk.p50_ms:.2f} vs {c1.wrk.p50_ms:.2f} ms = {p50:.1f}x; "
        f"p99 {a16.wrk.p99_ms:.2f} vs {c16.wrk.p99_ms:.2f} ms = {p99:.1f}x",
    )


def _dag_target(dag_ms: float | None) -> Target:
    name, goal = "home DAG in process", f"<= {DAG_MS:g} ms per request"
    if dag_ms is None:
        return _missing(name, goal)
    return Target(name, goal, dag_ms <= DAG_MS, f"{dag_ms:.3f} ms")


def _cpu_target(results: Sequence[Measurement]) -> Target:
    name, goal = "server CPU per home request", f"<= {CPU_MS:g} ms at c=16"
    a16 = find(results, "a", 16)
    if not a16:
        return _missing(name, goal)
    cpu = a16.cpu_ms_per_request
    best, key = _best(results, "a", 16, lambda m: -m.cpu_ms_per_request)
    return Target(
        name,
        goal,
        cpu <= CPU_MS,
        f"{cpu:.2f} ms",
        f"best variant: `{key}` at {-best:.2f} ms" if key and key != "a" else "",
    )


def _oip_target(results: Sequence[Measurement]) -> Target:
    name = "click model vs MLServer"
    goal = f"(d) OIP infer at c=16 >= {OIP_VS_MLSERVER:g}x MLServer's (e)"
    d16, e16 = find(results, "d_infer", 16), find(results, "e", 16)
    if not (d16 and e16):
        return _missing(name, goal)
    r = _div(d16.wrk.rps, e16.wrk.rps)
    predict = find(results, "d_predict", 16)
    also = f"; `/v1/predict`: {_div(predict.wrk.rps, e16.wrk.rps):.2f}x" if predict else ""
    return Target(
        name,
        goal,
        r >= OIP_VS_MLSERVER,
        f"{d16.wrk.rps:.0f} vs {e16.wrk.rps:.0f} req/s = {r:.2f}x{also}",
    )


def _batching_target(results: Sequence[Measurement], budget_ms: float) -> Target:
    name = "torch coalesced calls"
    goal = (
        f"coalesced >= {COALESCED_SPEEDUP:g}x unbatched throughput at c=64, its p99 <= the "
        f"{budget_ms:g} ms budget, and no cost at c=1 (p50 within {NO_MEASURABLE_COST - 1:.0%})"
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
    for side, m in (("coalesced", on64), ("unbatched", off64)):
        if m.wrk.errors:
            parts.append(f"{side}: {m.wrk.errors} errors at c=64")
    met = (
        speedup >= COALESCED_SPEEDUP and on64.wrk.p99_ms <= budget_ms and cost <= NO_MEASURABLE_COST
    )
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
