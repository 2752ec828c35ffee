"""The ingress's caller-side micro-batcher: who rides which call, and who hears what."""

from __future__ import annotations

import asyncio

import pytest

from deployments.hosting.coalescing import CallCoalescer


class _Model:
    """A remote model whose calls finish when the test says so; records each batch."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()

    async def send(self, requests: list[str]) -> list[str | BaseException]:
        self.batches.append(list(requests))
        await self.release.wait()
        return [ValueError(r) if r.startswith("bad") else r.upper() for r in requests]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_lone_call_goes_at_once() -> None:
    async def scenario() -> None:
        model = _Model()
        model.release.set()
        coalescer = CallCoalescer(model.send, max_batch=8)
        assert await coalescer.call("a") == "A"
        assert model.batches == [["a"]]

    asyncio.run(scenario())


def test_calls_arriving_during_a_call_ride_the_next_one_together() -> None:
    async def scenario() -> None:
        model = _Model()
        coalescer = CallCoalescer(model.send, max_batch=8, max_in_flight=1)
        first = asyncio.ensure_future(coalescer.call("a"))
        await _settle()
        rest = [asyncio.ensure_future(coalescer.call(r)) for r in "bcd"]
        await _settle()
        assert model.batches == [["a"]]  # b, c, d wait while a is out
        model.release.set()
        assert await first == "A"
        assert await asyncio.gather(*rest) == ["B", "C", "D"]
        assert model.batches == [["a"], ["b", "c", "d"]]
        assert (coalescer.calls, coalescer.requests) == (2, 4)

    asyncio.run(scenario())


def test_a_batch_never_exceeds_max_batch_and_in_flight_is_bounded() -> None:
    async def scenario() -> None:
        model = _Model()
        coalescer = CallCoalescer(model.send, max_batch=2, max_in_flight=2)
        calls = [asyncio.ensure_future(coalescer.call(str(n))) for n in range(7)]
        await _settle()
        # The first two go alone (two may be out); the rest wait for a call to end.
        assert model.batches == [["0"], ["1"]] and coalescer.in_flight == 2
        model.release.set()
        assert await asyncio.gather(*calls) == [str(n) for n in range(7)]
        assert model.batches == [["0"], ["1"], ["2", "3"], ["4", "5"], ["6"]]

    asyncio.run(scenario())


def test_an_answer_that_is_an_error_reaches_its_caller_alone() -> None:
    async def scenario() -> None:
        model = _Model()
        model.release.set()
        coalescer = CallCoalescer(model.send, max_batch=8, max_in_flight=1)
        blocker = asyncio.ensure_future(coalescer.call("x"))
        good = asyncio.ensure_future(coalescer.call("ok"))
        bad = asyncio.ensure_future(coalescer.call("bad1"))
        assert await blocker == "X" and await good == "OK"
        with pytest.raises(ValueError, match="bad1"):
            await bad

    asyncio.run(scenario())


def test_a_failed_call_fails_every_caller_on_it() -> None:
    async def scenario() -> None:
        async def broken(requests: list[str]) -> list[str | BaseException]:
            raise ConnectionError("replica died")

        coalescer = CallCoalescer(broken, max_batch=8)
        results = await asyncio.gather(
            coalescer.call("a"), coalescer.call("b"), return_exceptions=True
        )
        assert all(isinstance(r, ConnectionError) for r in results)
        assert coalescer.in_flight == 0

    asyncio.run(scenario())


def test_a_caller_that_gave_up_is_not_sent() -> None:
    async def scenario() -> None:
        model = _Model()
        coalescer = CallCoalescer(model.send, max_batch=8, max_in_flight=1)
        first = asyncio.ensure_future(coalescer.call("a"))
        await _settle()
        impatient = asyncio.ensure_future(coalescer.call("late"))
        patient = asyncio.ensure_future(coalescer.call("b"))
        await _settle()
        impatient.cancel()
        model.release.set()
        assert await first == "A" and await patient == "B"
        assert model.batches == [["a"], ["b"]]

    asyncio.run(scenario())
