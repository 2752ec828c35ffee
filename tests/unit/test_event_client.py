"""The ingress's served-list buffer (``deployments/events/client.py``): bounded in
bytes, never dropping a list, shipping the backlog in order once the event log is
back. The event log is a stand-in object with the handle's shape (``method.remote``
returning an awaitable); the real deployment is exercised by the integration tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from ray.exceptions import ActorDiedError

from deployments.events import client as event_client
from deployments.events.client import EventClient, EventLogUnavailable, served_list_bytes
from deployments.events.records import FeedbackStored, ServedList


def _served(request_id: str) -> ServedList:
    return ServedList(
        ts=time.time(),
        request_id=request_id,
        user="pseudonym",
        variant={"ab": "b"},
        items=[f"item-{n}" for n in range(10)],
        teams=[""] * 10,
        model_versions={"mf": "1"},
        latency_ms=2.0,
        degraded=False,
        use_case="home",
    )


class _EventLogStandIn:
    """``append_served.remote(batch)``: stores the batch, or fails while ``down``."""

    def __init__(self) -> None:
        self.down = True
        self.stored: list[str] = []
        self.calls = 0

    @property
    def append_served(self) -> _EventLogStandIn:
        return self

    def remote(self, batch: list[ServedList]) -> Any:
        self.calls += 1

        async def call() -> int:
            if self.down:
                raise ConnectionError("event log replica is dead")
            self.stored += [record.request_id for record in batch]
            return len(batch)

        return call()


def test_the_buffer_keeps_every_list_while_the_log_is_down_and_refuses_once_full() -> None:
    log = _EventLogStandIn()
    one = served_list_bytes(_served("r0"))
    client = EventClient(log, buffer_bytes=20 * one)  # type: ignore[arg-type]

    async def scenario() -> list[str]:
        sent = []
        while client.has_room():
            sent.append(f"r{len(sent)}")
            client.served(_served(sent[-1]))
            if len(sent) % 7 == 0:
                assert not await client.ship(), "the log is down: nothing shipped"
        assert len(sent) == 20, "refused exactly at the bound"
        assert "20 served lists" in client.backlog()
        log.down = False
        assert await client.ship()
        assert client.has_room() and client.buffered_bytes == 0
        return sent

    sent = asyncio.run(scenario())
    assert log.stored == sent, "every list, in order, none dropped or doubled"
    assert log.calls == 3, "two failed rounds, then one call for the whole backlog"


class _DyingEventLog:
    """``append_feedback.remote(records)``: raises ``ActorDiedError`` while ``dead``,
    else answers after ``delay_s``; counts the calls that reached it."""

    def __init__(self) -> None:
        self.dead, self.delay_s, self.calls = True, 0.0, 0

    @property
    def append_feedback(self) -> _DyingEventLog:
        return self

    def remote(self, records: list[Any]) -> Any:
        self.calls += 1

        async def call() -> FeedbackStored:
            await asyncio.sleep(self.delay_s)
            if self.dead:
                raise ActorDiedError()
            return FeedbackStored(len(records), 0)

        return call()


def test_a_dead_event_log_is_asked_once_per_interval_not_once_per_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While its replica restarts, feedback fails at once (a 503 with Retry-After, not
    an ingress slot held for the whole timeout); one call at a time finds out whether
    it is back."""
    monkeypatch.setattr(event_client, "_UNREACHABLE_FOR_S", 0.2)
    log = _DyingEventLog()
    client = EventClient(log)  # type: ignore[arg-type]

    async def refused() -> bool:
        try:
            await client.feedback([])
        except EventLogUnavailable:
            return True
        return False

    async def scenario() -> None:
        assert await refused() and log.calls == 1  # the replica died: learnt here
        assert all([await refused() for _ in range(20)]) and log.calls == 1
        await asyncio.sleep(0.25)
        log.dead, log.delay_s = False, 0.1  # back, and slow to answer the probe
        probe = asyncio.create_task(client.feedback([]))
        await asyncio.sleep(0.01)
        assert await refused() and log.calls == 2, "others wait for the probe's answer"
        assert (await probe).accepted == 0
        log.delay_s = 0.0
        assert not await refused() and log.calls == 3, "reachable again"

    asyncio.run(scenario())
