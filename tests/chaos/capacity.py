"""How long a service takes to answer well again after a load."""

from __future__ import annotations

import time

import httpx

BUDGET_MS = 150.0
"""``home``'s budget in configs/default.yaml."""


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
