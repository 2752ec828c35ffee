"""An open-loop load-and-soak client for the recommend endpoint.

It sends ``POST {url}/v1/recommend/{use_case}`` with ``{"user_id": ..., "k": ...}`` at a
fixed arrival rate for a fixed time and reports what came back: answers per HTTP status,
client-side errors per kind (``timeout``, ``connect``, ``dropped_by_client``, or the
exception's class name), latency percentiles of the successful (2xx) answers, how many
of those were ``"degraded": true``, how many 429/503 answers carried ``Retry-After``, and
the same numbers per consecutive time window, so a long soak shows drift (latency that
creeps up, errors that start after ten minutes) rather than one average that hides it.

Why open loop. A closed-loop client (wrk, a pool of workers each awaiting its answer
before sending again) slows down exactly when the server does: a stall of one second
holds back every request that would have been sent in that second, so they are never
measured and the percentiles look fine. That is *coordinated omission*. Real users do
not wait for each other. Here request ``i`` is due at ``start + i / rate`` whatever
happened to the ones before it, and its latency is measured from that due time, so
queueing in the server -- and any lag of this client's own event loop, reported as
``max_send_lag_ms`` -- counts against the percentiles the way a user would feel it.

The only brake is ``max_in_flight``: a request due while that many are outstanding is not
sent and is counted as ``dropped_by_client``, so an overloaded server shows up as errors
instead of as an unbounded pile of sockets on the client.

Run it against a running service::

    python -m benchmarks.soak --url http://127.0.0.1:8000 --use-case home --rate 200 \\
        --duration 60 --users u1,u2 --json soak.json

The exit status is 0 when the share of 2xx answers is at least ``--min-ok``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

__all__ = [
    "DEFAULT_API_KEY_FILE",
    "DROPPED_BY_CLIENT",
    "SoakReport",
    "SoakWindow",
    "main",
    "run_soak",
]

DEFAULT_API_KEY_FILE = Path(".blendserve") / "api_key"
"""Where the CLI looks for an API key when none is given (relative to the working dir)."""

DROPPED_BY_CLIENT = "dropped_by_client"
"""Error kind of a request that was due while ``max_in_flight`` requests were outstanding."""

_API_KEY_ENV = "BLENDSERVE_API_KEY"


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
class _Outcome:
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


def _error_kind(exc: BaseException) -> str:
    """Name the failure of a request that got no answer."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    return type(exc).__name__


def _is_degraded(response: httpx.Response) -> bool:
    """Whether a 2xx body is a JSON object with ``"degraded": true``."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("degraded") is True


async def _send_one(
    client: httpx.AsyncClient,
    endpoint: str,
    payload: dict[str, Any],
    headers: dict[str, str],
    timeout_s: float,
    due: float,
    outcome: _Outcome,
) -> None:
    """Send one request and record its outcome; never raises (except on cancellation)."""
    loop = asyncio.get_running_loop()
    try:
        # httpx's own timeout bounds each phase (connect, each read); the outer one
        # bounds the whole exchange, so a server dribbling bytes still times out.
        async with asyncio.timeout(timeout_s):
            response = await client.post(endpoint, json=payload, headers=headers)
    except Exception as exc:  # noqa: BLE001 -- every failure is data, not a crash
        outcome.error = _error_kind(exc)
        return
    outcome.latency_ms = (loop.time() - due) * 1000.0
    outcome.status = response.status_code
    if response.is_success:
        outcome.degraded = _is_degraded(response)
    elif response.status_code in (429, 503):
        outcome.retry_after = "retry-after" in response.headers


def _summarise(
    *,
    endpoint: str,
    rate: float,
    outcomes: list[_Outcome],
    duration_s: float,
    window_s: float,
    nominal_duration_s: float,
    max_lag_s: float,
) -> SoakReport:
    """Fold per-request outcomes into a report."""
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    ok_latencies: list[float] = []
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
    )


async def run_soak(
    url: str,
    *,
    use_case: str = "home",
    rate: float = 50.0,
    duration_s: float = 10.0,
    api_key: str | None = None,
    users: Sequence[str] = ("u1",),
    k: int = 10,
    timeout_s: float = 2.0,
    window_s: float = 10.0,
    max_in_flight: int = 1000,
) -> SoakReport:
    """Load ``POST {url}/v1/recommend/{use_case}`` at a fixed rate and report the answers.

    Request ``i`` (``0 <= i < ceil(rate * duration_s)``) is due at ``start + i / rate``
    and is sent then, whether or not earlier ones have been answered; users are taken
    round-robin from ``users``. A request due while ``max_in_flight`` are outstanding
    is counted as ``dropped_by_client`` instead of being sent. Each request gets
    ``timeout_s`` in all; failures are counted, never raised. Returns after the last
    outstanding request has been answered or has timed out.

    Raises:
        ValueError: on a non-positive rate, duration, timeout, window, ``k`` or
            ``max_in_flight``, or an empty ``users``.
    """
    if rate <= 0 or duration_s <= 0 or timeout_s <= 0 or window_s <= 0:
        raise ValueError("rate, duration_s, timeout_s and window_s must be positive")
    if k < 1 or max_in_flight < 1:
        raise ValueError("k and max_in_flight must be at least 1")
    if not users:
        raise ValueError("users must not be empty")
    endpoint = f"{url.rstrip('/')}/v1/recommend/{use_case}"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    total = max(1, math.ceil(rate * duration_s - 1e-9))

    # The pool must hold every request we allow in flight: httpx's default of 100
    # connections would queue the rest inside the client, which is the hidden,
    # coordinated wait this tool exists to avoid. trust_env=False keeps an
    # environment proxy out of the measurement.
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    outcomes: list[_Outcome] = []
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s), limits=limits, trust_env=False
    ) as client:
        start = loop.time()
        max_lag = 0.0
        try:
            for i in range(total):
                due = start + i / rate
                now = loop.time()
                if due > now:
                    await asyncio.sleep(due - now)
                    now = loop.time()
                max_lag = max(max_lag, now - due)
                outcome = _Outcome(due_s=i / rate)
                outcomes.append(outcome)
                if len(tasks) >= max_in_flight:
                    outcome.error = DROPPED_BY_CLIENT
                    continue
                payload = {"user_id": users[i % len(users)], "k": k}
                task = asyncio.create_task(
                    _send_one(client, endpoint, payload, headers, timeout_s, due, outcome)
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            end = start + duration_s
            now = loop.time()
            if end > now:
                await asyncio.sleep(end - now)
            sending_s = loop.time() - start
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            # Only reached with requests outstanding when the run itself is cancelled.
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
    return _summarise(
        endpoint=endpoint,
        rate=rate,
        outcomes=outcomes,
        duration_s=sending_s,
        window_s=window_s,
        nominal_duration_s=duration_s,
        max_lag_s=max_lag,
    )


def _read_users(path: Path) -> list[str]:
    """User ids from a file, one per line; blank lines and ``#`` comments are skipped."""
    users = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            users.append(line)
    return users


def _resolve_api_key(args: argparse.Namespace) -> str | None:
    """``--api-key``, else ``--api-key-file``, else ``.blendserve/api_key``, else the env."""
    if args.api_key:
        return str(args.api_key)
    path: Path | None = args.api_key_file
    if path is None and DEFAULT_API_KEY_FILE.is_file():
        path = DEFAULT_API_KEY_FILE
    if path is not None:
        return path.read_text(encoding="utf-8").strip() or None
    return os.environ.get(_API_KEY_ENV) or None


def _parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description="Open-loop load and soak test of POST /v1/recommend/{use_case}.",
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="service base URL")
    parser.add_argument("--use-case", default="home")
    parser.add_argument("--rate", type=float, default=50.0, help="arrivals per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of sending")
    key = parser.add_mutually_exclusive_group()
    key.add_argument("--api-key", help="bearer token (default: see --api-key-file)")
    key.add_argument(
        "--api-key-file",
        type=Path,
        help=f"file holding the key (default: {DEFAULT_API_KEY_FILE} if it exists, "
        f"else ${_API_KEY_ENV})",
    )
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--users", default="u1", help="comma-separated user ids (round-robin)")
    who.add_argument("--users-file", type=Path, help="file with one user id per line")
    parser.add_argument("--k", type=int, default=10, help="items asked for per request")
    parser.add_argument("--timeout", type=float, default=2.0, help="per-request timeout, s")
    parser.add_argument("--window", type=float, default=10.0, help="report window, s")
    parser.add_argument("--max-in-flight", type=int, default=1000)
    parser.add_argument("--min-ok", type=float, default=0.99, help="2xx share to exit 0")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a soak from the command line; 0 when the 2xx share reaches ``--min-ok``, else 1."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.users_file is not None:
        users = _read_users(args.users_file)
    else:
        users = [u.strip() for u in str(args.users).split(",") if u.strip()]
    if not users:
        parser.error("no user ids given")
    try:
        report = asyncio.run(
            run_soak(
                args.url,
                use_case=args.use_case,
                rate=args.rate,
                duration_s=args.duration,
                api_key=_resolve_api_key(args),
                users=users,
                k=args.k,
                timeout_s=args.timeout,
                window_s=args.window,
                max_in_flight=args.max_in_flight,
            )
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(report.render())
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    ok = report.ok_share() >= args.min_ok
    if not ok:
        print(f"ok share {report.ok_share():.2%} < --min-ok {args.min_ok:.2%}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
