"""The capacity of a running service with this suite's client, and how long it takes
to answer well again after a load."""

from __future__ import annotations

import asyncio
import time

import httpx

BUDGET_MS = 150.0
"""``home``'s budget in configs/default.yaml."""


async def closed_loop_capacity(url: str, headers: dict[str, str], users: list[str]) -> float:
    """2xx answers per second with 16 clients each waiting for its answer (10 s)."""
    done = 0
    deadline = time.monotonic() + 10.0

    async def worker(offset: int, http: httpx.AsyncClient) -> None:
        nonlocal done
        n = offset
        while time.monotonic() < deadline:
            body = {"user_id": users[n % len(users)], "k": 10}
            response = await http.post(f"{url}/v1/recommend/home", json=body)
            done += response.is_success
            n += 16

    async with httpx.AsyncClient(headers=headers, timeout=10.0) as http:
        await asyncio.gather(*(worker(i, http) for i in range(16)))
    return done / 10.0


def recovery_s(url: str, headers: dict[str, str], users: list[str], stopped: float) -> float:
    """Seconds from ``stopped`` until ten answers in a row are whole and in budget."""
    streak = 0
    with httpx.Client(headers=headers, timeout=10.0) as http:
        for n in range(10_000):
            sent = time.monotonic()
            body = {"user_id": users[n % len(users)], "k": 10}
            answer = http.post(f"{url}/v1/recommend/home", json=body)
            fast = (time.monotonic() - sent) * 1000.0 <= BUDGET_MS
            whole = answer.status_code == 200 and not answer.json().get("degraded")
            streak = streak + 1 if fast and whole else 0
            if streak == 10:
                return time.monotonic() - stopped
            time.sleep(0.05)
    raise AssertionError("never recovered")
