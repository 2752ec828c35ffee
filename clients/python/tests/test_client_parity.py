"""``AsyncClient`` offers what ``Client`` offers, with the same parameters, and gives
equal answers to equal requests (the other test files run every case on both)."""

from __future__ import annotations

import asyncio
import inspect

import httpx
import pytest
from fake_service import API_KEY, BASE_URL, Script, reply
from recorded_answers import RECOMMEND_HOME

from blendserve_client import AsyncClient, Client

PUBLIC = sorted(
    name
    for name, member in vars(Client).items()
    if not name.startswith("_") and (callable(member) or isinstance(member, staticmethod))
)
LIFECYCLE = {"close": "aclose"}


def test_both_clients_have_the_same_public_methods():
    async_public = {name for name in vars(AsyncClient) if not name.startswith("_")}
    assert {LIFECYCLE.get(name, name) for name in PUBLIC} | {"base_url"} == async_public


@pytest.mark.parametrize("name", [name for name in PUBLIC if name not in LIFECYCLE])
def test_each_method_takes_the_same_parameters_and_async_ones_are_coroutines(name):
    sync_method, async_method = getattr(Client, name), getattr(AsyncClient, name)
    assert inspect.signature(sync_method) == inspect.signature(async_method)
    staticmethods = {"impression", "click", "add_to_cart", "conversion", "purchase", "dwell"}
    assert inspect.iscoroutinefunction(async_method) is (name not in staticmethods)


def test_equal_answers_give_equal_results():
    sync_script = Script(reply(200, RECOMMEND_HOME))
    async_script = Script(reply(200, RECOMMEND_HOME))
    sync_client = Client(BASE_URL, api_key=API_KEY, transport=httpx.MockTransport(sync_script))
    async_client = AsyncClient(
        BASE_URL, api_key=API_KEY, transport=httpx.MockTransport(async_script)
    )
    args = ("home", "u0042", 2, {"device": "ios"}, ["a1"])
    assert sync_client.recommend(*args) == asyncio.run(async_client.recommend(*args))
    sent, async_sent = sync_script.requests[0], async_script.requests[0]
    assert (sent.method, sent.url, sent.content) == (
        async_sent.method,
        async_sent.url,
        async_sent.content,
    )
    assert sent.headers["Authorization"] == async_sent.headers["Authorization"]


def test_the_async_client_closes_as_a_context_manager():
    async def use() -> bool:
        async with AsyncClient(BASE_URL, api_key=API_KEY) as client:
            pass
        return client._http.is_closed

    assert asyncio.run(use())
