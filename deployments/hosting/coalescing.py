"""A caller-side micro-batcher: concurrent calls to one remote model ride one handle call.

A Serve handle call costs about a millisecond of CPU in each process whatever it
carries, so an ingress that sends one call per request pays it per request, and
the model replica's own batching can only group what already paid it. Here the
ingress groups first: a call that arrives while ``max_in_flight`` calls are out
waits for the next one to go, and the calls that gathered meanwhile (at most
``max_batch``) go together. A lone call goes at once: it never waits for company.

A caller that stops waiting (its budget ran out) is dropped from a batch not yet
sent; once sent, its answer is discarded. A batch's handle call runs in the context
of its first caller (``contextvars``), so Serve's request id on that call, and on
the lines the model replica logs for it, is a request the batch serves.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["CallCoalescer", "CallCoalescing"]

_Req = TypeVar("_Req")
_Res = TypeVar("_Res")


@dataclass(frozen=True)
class CallCoalescing:
    """How one model's calls are coalesced: at most ``max_batch`` per call, at most
    ``in_flight`` calls out at once."""

    max_batch: int
    in_flight: int


class CallCoalescer(Generic[_Req, _Res]):
    """Turns single calls into batched calls of ``send`` (one answer per request, in
    order; an answer that is an exception is raised to its caller alone)."""

    def __init__(
        self,
        send: Callable[[list[_Req]], Awaitable[Sequence[_Res | BaseException]]],
        max_batch: int,
        max_in_flight: int = 1,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError(
                f"need max_batch >= 1 and max_in_flight >= 1, got {max_batch}, {max_in_flight}"
            )
        self._send = send
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._waiting: list[tuple[_Req, asyncio.Future[_Res], contextvars.Context]] = []
        self.in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0
        """Batched calls sent so far."""
        self.requests = 0
        """Requests they carried."""

    async def call(self, request: _Req) -> _Res:
        """The answer to ``request``, sent alone or with the calls around it."""
        future: asyncio.Future[_Res] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future, contextvars.copy_context()))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        while self._waiting and self.in_flight < self.max_in_flight:
            waiting = [w for w in self._waiting[: self.max_batch] if not w[1].done()]
            del self._waiting[: self.max_batch]
            if waiting:
                batch = [(request, future) for request, future, _ in waiting]
                self.in_flight += 1
                self.calls += 1
                self.requests += len(batch)
                loop = asyncio.get_running_loop()
                task = loop.create_task(self._run(batch), context=waiting[0][2])
                # The loop keeps only weak references to tasks: hold each until done.
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[_Req, asyncio.Future[_Res]]]) -> None:
        try:
            answers = await self._send([request for request, _ in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"expected {len(batch)} answers, got {len(answers)}")
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            for (_, future), answer in zip(batch, answers, strict=True):
                if future.done():
                    continue
                if isinstance(answer, BaseException):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)
        finally:
            self.in_flight -= 1
            self._dispatch()
