"""Constant open-loop load for integration tests: requests at a fixed rate, whatever
the answers take, each one recorded (when it was sent and answered, status, body)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Sample:
    """One request and its answer (status 0: no answer, ``error`` says why)."""

    sent: float
    done: float
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    error: str = ""


class ConstantLoad:
    """POSTs ``body(n)`` to ``url`` ``rate`` times a second in a background thread,
    from ``with`` to the end of the block."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        rate: float,
        body: Callable[[int], dict[str, Any]],
        timeout_s: float = 10.0,
    ) -> None:
        self.url, self.headers, self.rate, self.body = url, dict(headers), rate, body
        self.timeout_s = timeout_s
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> ConstantLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 10)

    def statuses(self) -> dict[int, int]:
        """How many answers had each status."""
        counts: dict[int, int] = {}
        for sample in self.samples:
            counts[sample.status] = counts.get(sample.status, 0) + 1
        return counts

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(
            headers=self.headers, timeout=self.timeout_s, limits=limits
        ) as http:
            tasks = []
            start = time.monotonic()
            n = 0
            while not self._stop.is_set():
                tasks.append(asyncio.create_task(self._one(http, n)))
                n += 1
                await asyncio.sleep(max(0.0, start + n / self.rate - time.monotonic()))
            await asyncio.gather(*tasks)

    async def _one(self, http: httpx.AsyncClient, n: int) -> None:
        sent = time.monotonic()
        try:
            response = await http.post(self.url, json=self.body(n))
            body = response.json() if response.is_success else {"text": response.text[:300]}
            self.samples.append(Sample(sent, time.monotonic(), response.status_code, body))
        except httpx.HTTPError as exc:
            self.samples.append(Sample(sent, time.monotonic(), 0, error=repr(exc)))
