"""Fixtures: both clients on a scripted fake service (``fake_service.py``), so every
behaviour is checked for ``Client`` and ``AsyncClient`` alike. No test here sleeps:
the clients' waits are recorded instead."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fake_service import Answer, Driver, Script

from blendserve_client import _async, _sync


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait either client asks for between attempts, in order (none is slept)."""
    recorded: list[float] = []

    def sleep(seconds: float) -> None:
        recorded.append(seconds)

    async def async_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(_sync, "_sleep", sleep)
    monkeypatch.setattr(_async, "_sleep", async_sleep)
    return recorded


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see no key or URL from the machine they run on."""
    monkeypatch.delenv("BLENDSERVE_API_KEY", raising=False)
    monkeypatch.delenv("BLENDSERVE_URL", raising=False)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    """Each test using it runs once per client."""
    return str(request.param)


@pytest.fixture
def serve(mode: str) -> Iterator[Callable[..., Driver]]:
    """``serve(*answers, **client_options)``: a client of ``mode`` on a scripted service."""
    drivers: list[Driver] = []

    def start(*answers: Answer, **options: Any) -> Driver:
        driver = Driver(mode, Script(*answers), **options)
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        driver.close()
