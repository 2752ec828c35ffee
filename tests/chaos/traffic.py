"""The steady mixed load of the chaos suite: recommendations, feedback and catalogue
writes at fixed rates through the real HTTP port, every answer recorded.

It calls through blendserve's own Python client (``blendserve_client.AsyncClient``,
default settings: three retries, honouring ``Retry-After``), so a request *fails* when
an application using that client would have got an error. Every attempt on the wire
is recorded too (:attr:`MixedLoad.attempts`), so what the retries hid stays visible.

Each stream is open loop (request ``n`` is sent at ``start + n / rate`` whatever the
earlier ones took), so an outage shows up as failed requests rather than as a client
that politely waits. Catalogue writes cycle through popular items: each is deleted,
then restored (with a new title) a few seconds later, so the record says exactly when
each item had to be absent from every answer.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from blendserve_client import AsyncClient, BlendserveError

T = TypeVar("T")

RECOMMEND_PER_S = 50.0
FEEDBACK_PER_S = 10.0
CATALOG_WRITES_PER_S = 2.0
RESTORE_AFTER = 3
"""A deleted item is restored this many deletes later (3 deletes: about 3 s)."""


@dataclass
class Sample:
    """One request: what it was, when it was sent and answered, and the answer."""

    kind: str  # recommend | feedback | delete | restore
    sent: float
    done: float = 0.0
    status: int = 0  # 0: no answer (``error`` says why)
    error: str = ""
    item_ids: tuple[str, ...] = ()  # recommend: the answer; writes: the item written
    degraded: bool = False
    event_id: str = ""
    title: str = ""

    @property
    def ok(self) -> bool:
        """A 2xx answer, or a delete of an item already gone (its restore failed)."""
        already_gone = self.kind == "delete" and self.status == 404 and "catalogue" in self.error
        return 200 <= self.status < 300 or already_gone


@dataclass
class MixedLoad:
    """Runs the three streams in a background thread, from ``start()`` to ``stop()``."""

    url: str
    headers: dict[str, str]
    users: list[str]
    items: dict[str, dict[str, Any]]
    """The items the catalogue stream deletes and restores: id -> stored fields."""
    timeout_s: float = 10.0
    writes: bool = True
    """Feedback and catalogue writes beside the recommendations (else those alone)."""
    samples: list[Sample] = field(default_factory=list)
    attempts: list[tuple[float, str, int]] = field(default_factory=list)
    """Every attempt on the wire, retries included: (sent, kind, status or 0)."""

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._result_ids: deque[str] = deque(maxlen=500)

    def start(self) -> None:
        """Start sending."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sending and wait for every outstanding answer."""
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 30)

    def failures_since(self, since: float) -> list[Sample]:
        """Requests sent at or after ``since`` that got no 2xx answer, or a degraded one."""
        return [s for s in list(self.samples) if s.sent >= since and s.done and not _whole(s)]

    def answered_since(self, since: float) -> int:
        """How many requests sent at or after ``since`` were answered (well or not)."""
        return sum(1 for s in list(self.samples) if s.sent >= since and s.done)

    async def _run(self) -> None:
        transport = _CountingTransport(self.attempts)
        key = self.headers["Authorization"].split(" ", 1)[1]
        async with AsyncClient(
            self.url, api_key=key, timeout_s=self.timeout_s, transport=transport
        ) as client:
            streams = [self._stream(RECOMMEND_PER_S, lambda n: self._recommend(client, n))]
            if self.writes:
                streams += [
                    self._stream(FEEDBACK_PER_S, lambda n: self._feedback(client)),
                    self._stream(CATALOG_WRITES_PER_S, lambda n: self._catalog_write(client, n)),
                ]
            await asyncio.gather(*streams)

    async def _stream(self, rate: float, one: Callable[[int], Awaitable[None]]) -> None:
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        for n in itertools.count():
            if self._stop.is_set():
                break
            task = asyncio.create_task(one(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(max(0.0, start + (n + 1) / rate - time.monotonic()))
        await asyncio.gather(*tasks)

    async def _send(self, sample: Sample, call: Awaitable[T]) -> T | None:
        self.samples.append(sample)
        try:
            result = await call
            sample.status = 200
            return result
        except BlendserveError as exc:
            sample.status, sample.error = exc.status or 0, str(exc)[:300]
            return None
        finally:
            sample.done = time.monotonic()

    async def _recommend(self, client: AsyncClient, n: int) -> None:
        sample = Sample("recommend", time.monotonic())
        answer = await self._send(sample, client.recommend("home", self.users[n % len(self.users)]))
        if answer is not None:
            sample.item_ids = tuple(item.item_id for item in answer.items)
            sample.degraded = answer.degraded
            self._result_ids.extend(item.result_id for item in answer.items[:2])

    async def _feedback(self, client: AsyncClient) -> None:
        if not self._result_ids:
            return
        event = client.click(self._result_ids[-1])
        sample = Sample("feedback", time.monotonic(), event_id=str(event.event_id))
        await self._send(sample, client.feedback([event]))

    async def _catalog_write(self, client: AsyncClient, n: int) -> None:
        ids = list(self.items)
        delete_number, restoring = divmod(n, 2)
        if restoring:
            if delete_number < RESTORE_AFTER:
                return
            item_id = ids[(delete_number - RESTORE_AFTER) % len(ids)]
            stored = self.items[item_id]
            title = f"{stored['title']} (chaos write {n})"
            sample = Sample("restore", time.monotonic(), item_ids=(item_id,), title=title)
            write = client.put_item(
                item_id,
                title=title,
                category=stored.get("category"),
                published_at=stored.get("published_at"),
                available=bool(stored.get("available", True)),
                attributes=stored.get("attributes") or {},
            )
            await self._send(sample, write)
        else:
            item_id = ids[delete_number % len(ids)]
            sample = Sample("delete", time.monotonic(), item_ids=(item_id,))
            await self._send(sample, client.delete_item(item_id))


class _CountingTransport(httpx.AsyncBaseTransport):
    """Records each attempt on the wire: (sent, kind, status; 0 for no answer)."""

    def __init__(self, attempts: list[tuple[float, str, int]]) -> None:
        self.attempts = attempts
        self._inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=200))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        kind = {"DELETE": "delete", "PUT": "restore"}.get(request.method, "")
        kind = kind or ("feedback" if request.url.path.endswith("/feedback") else "recommend")
        sent = time.monotonic()
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.HTTPError:
            self.attempts.append((sent, kind, 0))
            raise
        self.attempts.append((sent, kind, response.status_code))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _whole(sample: Sample) -> bool:
    return sample.ok and not sample.degraded
