"""What a soak run reports: the requests due per window, status and error counts,
latency percentiles; built from each request's outcome after the run."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["DROPPED_BY_CLIENT", "Outcome", "SoakReport", "SoakWindow", "summarise"]

DROPPED_BY_CLIENT = "dropped_by_client"
"""Error kind of a request that was due while ``max_in_flight`` requests were outstanding."""


@dataclass(frozen=True)
class SoakWindow:
    """The requests *due* in one window ``[start_s, start_s + window_s)`` of the run."""

    start_s: float
    """Offset of the window from the start of the run, in seconds."""
    sent: int
    """Requests due in this window (including any dropped by the client)."""
    ok: int
    """2xx answers."""
    non_2xx: int
    """Answers with any other status."""
    errors: int
    """Requests without an answer (timeouts, connection errors, client drops)."""
    p50_ms: float | None
    """Median latency of the 2xx answers, or None when there were none."""
    p99_ms: float | None
    """99th-percentile latency of the 2xx answers, or None when there were none."""


@dataclass(frozen=True)
class SoakReport:
    """What one soak run sent and what came back.

    Every due request ends in exactly one of ``status_counts`` (an answer) or
    ``error_counts`` (none), so the two add up to ``sent``; ``windows`` add up to it too.
    Latencies are in milliseconds, measured from each request's due time to the end of
    its answer's body, over 2xx answers only; None when there were none.
    """

    url: str
    """The full endpoint URL that was loaded."""
    target_rate: float
    """Requested arrivals per second."""
    sent: int
    """Requests due over the run, each counted once (drops by the client included)."""
    achieved_rate: float
    """Requests actually put on the wire per second of the sending phase."""
    duration_s: float
    """Wall-clock length of the sending phase in seconds (excludes the final drain)."""
    status_counts: dict[int, int]
    """Answers per HTTP status code."""
    error_counts: dict[str, int]
    """Requests without an answer, per kind: timeout, connect, dropped_by_client, ..."""
    p50_ms: float | None
    """Median latency of the 2xx answers."""
    p90_ms: float | None
    """90th-percentile latency of the 2xx answers."""
    p99_ms: float | None
    """99th-percentile latency of the 2xx answers."""
    max_ms: float | None
    """Slowest 2xx answer."""
    degraded: int
    """2xx answers whose JSON body says ``"degraded": true``."""
    retry_after_seen: int
    """429 and 503 answers that carried a ``Retry-After`` header."""
    max_send_lag_ms: float
    """Worst delay between a request's due time and its send: this client's own health."""
    windows: list[SoakWindow] = field(default_factory=list)
    """Per-window summaries over consecutive ``window_s`` windows of due time."""
    shed_p99_ms: float | None = None
    """99th-percentile latency of the 429 and 503 answers (load shed): how fast a
    client learns to back off. None when there were none."""

    @property
    def ok(self) -> int:
        """Number of 2xx answers."""
        return sum(n for status, n in self.status_counts.items() if 200 <= status < 300)

    def ok_share(self) -> float:
        """Share of due requests that got a 2xx answer (0.0 when nothing was sent)."""
        return self.ok / self.sent if self.sent else 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (status codes as string keys) plus ``ok_share``."""
        data = asdict(self)
        data["status_counts"] = {str(k): v for k, v in sorted(self.status_counts.items())}
        data["error_counts"] = dict(sorted(self.error_counts.items()))
        data["ok"] = self.ok
        data["ok_share"] = self.ok_share()
        return data

    def render(self) -> str:
        """A short human-readable summary with one table row per window."""
        statuses = " ".join(f"{k}={v}" for k, v in sorted(self.status_counts.items())) or "-"
        errors = " ".join(f"{k}={v}" for k, v in sorted(self.error_counts.items())) or "-"
        lines = [
            f"soak POST {self.url}",
            f"  target {self.target_rate:g}/s for {self.duration_s:.1f}s: sent {self.sent}, "
            f"achieved {self.achieved_rate:.1f}/s, max send lag {self.max_send_lag_ms:.1f} ms",
            f"  ok {self.ok} ({self.ok_share():.2%})  degraded {self.degraded}  "
            f"retry-after {self.retry_after_seen}",
            f"  status  {statuses}",
            f"  errors  {errors}",
            f"  latency ms (2xx)  p50 {_fmt(self.p50_ms)}  p90 {_fmt(self.p90_ms)}  "
            f"p99 {_fmt(self.p99_ms)}  max {_fmt(self.max_ms)}",
            f"  latency ms (429/503)  p99 {_fmt(self.shed_p99_ms)}",
            "",
            f"  {'window':>8} {'sent':>7} {'ok':>7} {'non2xx':>7} {'errors':>7} "
            f"{'p50 ms':>8} {'p99 ms':>8}",
        ]
        for w in self.windows:
            lines.append(
                f"  {w.start_s:>7.1f}s {w.sent:>7} {w.ok:>7} {w.non_2xx:>7} {w.errors:>7} "
                f"{_fmt(w.p50_ms):>8} {_fmt(w.p99_ms):>8}"
            )
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    """A latency for the table: one decimal, or ``-`` when missing."""
    return "-" if value is None else f"{value:.1f}"


@dataclass
class Outcome:
    """What happened to one due request (mutable while it is in flight)."""

    due_s: float
    """Due time as an offset from the start of the run."""
    status: int | None = None
    error: str | None = None
    latency_ms: float | None = None
    degraded: bool = False
    retry_after: bool = False


def _percentiles(values: Sequence[float], qs: Sequence[float]) -> list[float | None]:
    """Linear-interpolated percentiles ``qs`` (0-100) of ``values``; Nones when empty."""
    if not values:
        return [None for _ in qs]
    result = np.percentile(np.asarray(values, dtype=np.float64), list(qs))
    return [float(v) for v in result]


def summarise(
    *,
    endpoint: str,
    rate: float,
    outcomes: list[Outcome],
    duration_s: float,
    window_s: float,
    nominal_duration_s: float,
    max_lag_s: float,
) -> SoakReport:
    """Fold per-request outcomes into a report."""
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    ok_latencies: list[float] = []
    shed_latencies: list[float] = []
    n_windows = max(1, math.ceil(nominal_duration_s / window_s - 1e-9))
    win_sent = [0] * n_windows
    win_ok = [0] * n_windows
    win_non2xx = [0] * n_windows
    win_errors = [0] * n_windows
    win_latencies: list[list[float]] = [[] for _ in range(n_windows)]
    degraded = retry_after = 0
    for o in outcomes:
        # The tolerance keeps a request due exactly on a boundary (0.2 s in 0.1 s windows)
        # out of the previous window despite float rounding.
        w = min(math.floor(o.due_s / window_s + 1e-9), n_windows - 1)
        win_sent[w] += 1
        if o.status is None:
            errors[o.error or "unknown"] += 1
            win_errors[w] += 1
            continue
        statuses[o.status] += 1
        if 200 <= o.status < 300:
            win_ok[w] += 1
            if o.latency_ms is not None:
                ok_latencies.append(o.latency_ms)
                win_latencies[w].append(o.latency_ms)
            degraded += o.degraded
        else:
            win_non2xx[w] += 1
            retry_after += o.retry_after
            if o.status in (429, 503) and o.latency_ms is not None:
                shed_latencies.append(o.latency_ms)
    windows = []
    for w in range(n_windows):
        p50, p99 = _percentiles(win_latencies[w], (50, 99))
        windows.append(
            SoakWindow(
                start_s=w * window_s,
                sent=win_sent[w],
                ok=win_ok[w],
                non_2xx=win_non2xx[w],
                errors=win_errors[w],
                p50_ms=p50,
                p99_ms=p99,
            )
        )
    p50, p90, p99, pmax = _percentiles(ok_latencies, (50, 90, 99, 100))
    on_wire = len(outcomes) - errors[DROPPED_BY_CLIENT]
    return SoakReport(
        url=endpoint,
        target_rate=rate,
        sent=len(outcomes),
        achieved_rate=on_wire / duration_s if duration_s > 0 else 0.0,
        duration_s=duration_s,
        status_counts=dict(statuses),
        error_counts=dict(errors),
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        max_ms=pmax,
        degraded=degraded,
        retry_after_seen=retry_after,
        max_send_lag_ms=max_lag_s * 1000.0,
        windows=windows,
        shed_p99_ms=_percentiles(shed_latencies, (99,))[0],
    )
