"""The fake service the tests talk to: scripted answers on ``httpx.MockTransport``, and
a driver that calls ``Client`` and ``AsyncClient`` the same way."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx

from blendserve_client import AsyncClient, Client

BASE_URL = "http://blendserve.test:8000"
API_KEY = "bsk_test_key"

Answer = httpx.Response | type[httpx.RequestError] | Callable[[httpx.Request], httpx.Response]


def reply(
    status: int, body: Any = None, headers: dict[str, str] | None = None, text: str | None = None
) -> httpx.Response:
    """An answer of the fake service: JSON ``body``, or plain ``text`` (a proxy's)."""
    if text is not None:
        return httpx.Response(status, text=text, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


class Script:
    """The fake service: answers requests with the scripted answers, in order, and
    keeps every request. An answer may be an ``httpx.RequestError`` class, raised as
    the network would."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.answers:
            raise AssertionError(f"unscripted request {request.method} {request.url}")
        answer = self.answers.pop(0)
        if isinstance(answer, type) and issubclass(answer, httpx.RequestError):
            raise answer("scripted failure", request=request)
        if isinstance(answer, httpx.Response):
            return answer
        return answer(request)

    def bodies(self) -> list[Any]:
        """The JSON body of each request."""
        return [json.loads(request.content) for request in self.requests]


class Driver:
    """One client, sync or async, whose methods are called the same way: an async
    method runs to completion in ``asyncio.run`` (pytest-asyncio is not installed)."""

    def __init__(self, mode: str, script: Script, **options: Any) -> None:
        self.mode = mode
        self.script = script
        options = {"api_key": API_KEY, **options}
        transport = httpx.MockTransport(script)
        self.client: Client | AsyncClient = (
            Client(BASE_URL, transport=transport, **options)
            if mode == "sync"
            else AsyncClient(BASE_URL, transport=transport, **options)
        )

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)
        if self.mode == "sync":
            return method  # type: ignore[no-any-return]

        def run(*args: Any, **kwargs: Any) -> Any:
            return asyncio.run(method(*args, **kwargs))

        return run

    def close(self) -> None:
        if isinstance(self.client, Client):
            self.client.close()
        else:
            asyncio.run(self.client.aclose())
