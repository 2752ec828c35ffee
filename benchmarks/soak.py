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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from benchmarks.soak_report import DROPPED_BY_CLIENT, Outcome, SoakReport, SoakWindow, summarise

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


_API_KEY_ENV = "BLENDSERVE_API_KEY"


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
    outcome: Outcome,
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
    outcomes: list[Outcome] = []
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
                outcome = Outcome(due_s=i / rate)
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
    return summarise(
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
