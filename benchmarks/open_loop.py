"""An open-loop HTTP/1.1 load generator cheap enough to offer a thousand requests a
second from Python on the very machine it loads.

``benchmarks/soak.py`` sends through httpx, which costs about 0.3 ms of CPU per
request: on two cores shared with the service it tops out near 300 requests/s, so an
overload test measured the client instead of the server (docs/RELIABILITY.md). This
client pre-encodes each request, keeps a pool of keep-alive connections on asyncio
protocols and reads only the status line, ``Content-Length`` or chunked framing of each
answer: a few tens of microseconds per request. It speaks just enough HTTP/1.1 for a
JSON API behind HAProxy; use a real client for anything else.

:func:`run_open_loop` runs it on uvloop with the garbage collector paused (a minute at
3x keeps a hundred thousand outcomes alive): at three times the default config's
capacity that cut the client's worst send lag from 449 to 124 ms, lag the latencies
below would otherwise charge to the service.

Request ``i`` is due at ``start + i / rate`` and its latency counts from then. A request
due while ``max_connections`` connections are busy is not sent (``dropped_by_client``).
The outcomes fold into the same :class:`~benchmarks.soak_report.SoakReport` as the
httpx soak client's.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, cast

import uvloop

from benchmarks.soak_report import DROPPED_BY_CLIENT, Outcome, SoakReport, summarise

__all__ = ["closed_loop_rate", "open_loop", "run_open_loop"]


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, answered by a future."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None
        self.buffer = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError("connection closed before the answer"))

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.buffer.clear()
        self.transport.write(request)
        return self.answer

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        parsed = _parse(self.buffer)
        if parsed is not None and self.answer is not None and not self.answer.done():
            status, body, close = parsed
            self.answer.set_result((status, body))
            if close and self.transport is not None:
                self.transport.close()


def _parse(buffer: bytearray) -> tuple[int, bytes, bool] | None:
    """``(status, body, close)`` once ``buffer`` holds a whole response, else None."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
    close = headers.get("connection", "").lower() == "close"
    rest = bytes(buffer[end + 4 :])
    if "content-length" in headers:
        length = int(headers["content-length"])
        return (status, rest[:length], close) if len(rest) >= length else None
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, position = b"", 0
        while True:
            line_end = rest.find(b"\r\n", position)
            if line_end < 0:
                return None
            size = int(rest[position:line_end].split(b";")[0], 16)
            if size == 0:
                return (status, body, close) if rest.find(b"\r\n", line_end + 2) >= 0 else None
            start = line_end + 2
            if len(rest) < start + size + 2:
                return None
            body += rest[start : start + size]
            position = start + size + 2
    return (status, rest, True)  # no framing: the body ends with the connection


def _request(host: str, port: int, path: str, headers: Mapping[str, str], body: Any) -> bytes:
    payload = json.dumps(body).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def run_open_loop(url: str, path: str, bodies: Sequence[Any], **options: Any) -> SoakReport:
    """:func:`open_loop` on uvloop, without garbage collection while it runs."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return uvloop.run(open_loop(url, path, bodies, **options))
    finally:
        if collecting:
            gc.enable()


async def open_loop(
    url: str,
    path: str,
    bodies: Sequence[Any],
    *,
    rate: float,
    duration_s: float,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 5.0,
    max_connections: int = 1000,
    window_s: float = 10.0,
) -> SoakReport:
    """POST ``bodies`` (round-robin, JSON) to ``url + path`` at ``rate`` per second for
    ``duration_s``; report every answer as the soak client does."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    requests = [_request(host, int(port), path, headers or {}, body) for body in bodies]
    loop = asyncio.get_running_loop()
    idle: deque[_Connection] = deque()
    in_flight = 0
    outcomes: list[Outcome] = []
    tasks: set[asyncio.Task[None]] = set()
    max_lag = 0.0

    async def one(request: bytes, due: float, outcome: Outcome) -> None:
        nonlocal in_flight
        connection = None
        try:
            async with asyncio.timeout(timeout_s):
                while idle and connection is None:
                    candidate = idle.popleft()
                    connection = None if candidate.closed else candidate
                if connection is None:
                    _, connection = await loop.create_connection(_Connection, host, int(port))
                status, body = await connection.send(request)
            outcome.latency_ms = (loop.time() - due) * 1000.0
            outcome.status = status
            outcome.degraded = status == 200 and b'"degraded":true' in body
            outcome.retry_after = status in (429, 503)
            if not connection.closed:
                idle.append(connection)
                connection = None
        except TimeoutError:
            outcome.error = "timeout"
        except OSError as exc:
            outcome.error = "connect" if isinstance(exc, ConnectionRefusedError) else "closed"
        finally:
            in_flight -= 1
            if connection is not None and connection.transport is not None:
                connection.transport.close()  # mid-request or failed: never reused

    start = loop.time()
    total = max(1, round(rate * duration_s))
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        max_lag = max(max_lag, loop.time() - due)
        outcome = Outcome(due_s=due - start)
        outcomes.append(outcome)
        if in_flight >= max_connections:
            outcome.error = DROPPED_BY_CLIENT
            continue
        in_flight += 1
        task = asyncio.create_task(one(requests[i % len(requests)], due, outcome))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    sending_s = loop.time() - start
    await asyncio.gather(*tasks)
    for connection in idle:
        if connection.transport is not None:
            connection.transport.close()
    return summarise(
        endpoint=url + path,
        rate=rate,
        outcomes=outcomes,
        duration_s=sending_s,
        window_s=window_s,
        nominal_duration_s=duration_s,
        max_lag_s=max_lag,
    )


def sustained_rate(
    url: str,
    path: str,
    bodies: Sequence[Any],
    headers: Mapping[str, str],
    *,
    start: float,
    step: float,
    step_s: float,
    budget_ms: float,
    limit: float,
) -> float:
    """The capacity an open-loop client sustains: its rate from ``start`` up by ``step``
    every ``step_s`` seconds (at most ``limit``), while every request of a step is
    answered 2xx and the step's p99 stays within ``budget_ms``; the last such rate
    (0 when ``start`` already fails).

    A closed-loop measurement (:func:`closed_loop_rate`) overstates what an open-loop
    load of the same service can be on a machine the client shares: its clients wait
    instead of sending, and a request then costs the client less CPU.
    """
    sustained = 0.0
    rate = start
    while rate <= limit:
        report = run_open_loop(
            url, path, bodies, rate=rate, duration_s=step_s, headers=headers, window_s=step_s
        )
        if report.ok != report.sent or (report.p99_ms or 0.0) > budget_ms:
            break
        sustained = rate
        rate += step
    return sustained


def closed_loop_rate(
    url: str, path: str, bodies: Sequence[Any], headers: Mapping[str, str], seconds: float
) -> float:
    """2xx answers per second with 16 clients that each wait for their answer: the
    capacity this client measures (runs its own event loop)."""

    async def run() -> float:
        ok = 0
        deadline = time.monotonic() + seconds
        host, port = url.split("://", 1)[1].rsplit(":", 1)
        requests = [_request(host, int(port), path, headers, body) for body in bodies]

        async def client(offset: int) -> None:
            nonlocal ok
            _, connection = await asyncio.get_running_loop().create_connection(
                _Connection, host, int(port)
            )
            n = offset
            while time.monotonic() < deadline:
                status, _ = await connection.send(requests[n % len(requests)])
                ok += 200 <= status < 300
                n += 16
            assert connection.transport is not None
            connection.transport.close()

        await asyncio.gather(*(client(i) for i in range(16)))
        return ok / seconds

    return uvloop.run(run())
