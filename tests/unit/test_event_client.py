"""The ingress's served-list buffer (``deployments/events/client.py``): bounded in
bytes, never dropping a list, shipping the backlog in order once the event log is
back. The event log is a stand-in object with the handle's shape (``method.remote``
returning an awaitable); the real deployment is exercised by the integration tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from deployments.events.client import EventClient, served_list_bytes
from deployments.events.records import ServedList


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
