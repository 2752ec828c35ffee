"""The asyncio client: ``Client``'s methods, awaited. Calls are built in ``_calls`` and
retried by ``_policy``, exactly as the blocking client does; only the sending differs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from blendserve_client import _calls
from blendserve_client._calls import Call, finish
from blendserve_client._catalog import (
    UNSET,
    CatalogChange,
    CatalogItem,
    CatalogStatus,
    PublishedAt,
    Unset,
)
from blendserve_client._policy import Settings
from blendserve_client._reports import ExperimentReport, Models, Readiness
from blendserve_client._results import (
    FeedbackEvent,
    FeedbackResult,
    Prediction,
    Recommendation,
    add_to_cart,
    click,
    conversion,
    dwell,
    impression,
    purchase,
)

__all__ = ["AsyncClient"]

T = TypeVar("T")

_sleep = asyncio.sleep
"""How the client waits between attempts (tests replace it)."""


class AsyncClient:
    """An asyncio client of one blendserve service, with the settings, retries and
    answers of :class:`Client`; reuse it (it pools connections).

    >>> async with AsyncClient("http://127.0.0.1:8000", api_key=key) as client:  # doctest: +SKIP
    ...     recs = await asyncio.gather(*(client.recommend("home", u) for u in users))
    """

    impression = staticmethod(impression)
    click = staticmethod(click)
    conversion = staticmethod(conversion)
    add_to_cart = staticmethod(add_to_cart)
    purchase = staticmethod(purchase)
    dwell = staticmethod(dwell)

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.2,
        backoff_max_s: float = 5.0,
        max_retry_after_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = Settings.resolve(
            base_url, api_key, timeout_s, retries, backoff_s, backoff_max_s, max_retry_after_s
        )
        self._http = httpx.AsyncClient(transport=transport, **self._settings.http_options())

    @property
    def base_url(self) -> str:
        """The service's URL, without a trailing slash.

        >>> AsyncClient("http://127.0.0.1:8000/", api_key="k").base_url
        'http://127.0.0.1:8000'
        """
        return self._settings.base_url

    def __repr__(self) -> str:
        return f"AsyncClient({self.base_url!r}, retries={self._settings.retries})"

    async def aclose(self) -> None:
        """Close the pooled connections.

        >>> await client.aclose()  # doctest: +SKIP
        """
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            request = self._http.build_request(call.method, call.path, json=call.body)
            try:
                response = await self._http.send(request)
            except httpx.RequestError as exc:
                wait = self._settings.wait_after_error(call, attempt, exc)
            else:
                answered = self._settings.wait_after_response(call, attempt, response)
                if answered is None:
                    return finish(call, response, attempt + 1)
                wait = answered
            await _sleep(wait)
            attempt += 1

    # -- serving (``infer`` scope) ---------------------------------------------

    async def recommend(
        self,
        use_case: str,
        user_id: str | int,
        k: int = 10,
        context: Mapping[str, Any] | None = None,
        exclude: Iterable[str] | None = None,
        filters: Iterable[Mapping[str, Any]] | None = None,
        boosts: Iterable[Mapping[str, Any]] | None = None,
    ) -> Recommendation:
        """As :meth:`Client.recommend`.

        >>> rec = await client.recommend("home", "u0042", k=2)  # doctest: +SKIP
        """
        return await self._send(
            _calls.recommend(use_case, user_id, k, context, exclude, filters, boosts)
        )

    async def predict(self, model: str, instances: Sequence[Any]) -> Prediction:
        """As :meth:`Client.predict`.

        >>> (await client.predict("click_model", rows)).predictions  # doctest: +SKIP
        """
        return await self._send(_calls.predict(model, instances))

    async def feedback(
        self,
        events: FeedbackEvent | Mapping[str, Any] | Iterable[FeedbackEvent | Mapping[str, Any]],
    ) -> FeedbackResult:
        """As :meth:`Client.feedback`: ids assigned once, before the first attempt.

        >>> await client.feedback([client.click(rid)])  # doctest: +SKIP
        """
        return await self._send(_calls.feedback(events))

    async def ready(self) -> Readiness:
        """As :meth:`Client.ready`.

        >>> bool(await client.ready())  # doctest: +SKIP
        True
        """
        return await self._send(_calls.ready())

    # -- operations (``admin`` scope) ------------------------------------------

    async def models(self) -> Models:
        """As :meth:`Client.models`.

        >>> (await client.models()).models["mf"].status  # doctest: +SKIP
        'serving'
        """
        return await self._send(_calls.models())

    async def experiments(self) -> list[str]:
        """As :meth:`Client.experiments`.

        >>> await client.experiments()  # doctest: +SKIP
        ['discover.ab', 'discover.head_to_head']
        """
        return await self._send(_calls.experiments())

    async def experiment(self, name: str) -> ExperimentReport:
        """As :meth:`Client.experiment`.

        >>> (await client.experiment("discover.ab")).verdict  # doctest: +SKIP
        """
        return await self._send(_calls.experiment(name))

    # -- the live catalogue (``admin`` scope) ----------------------------------

    async def put_item(
        self,
        item_id: str,
        *,
        title: str = "",
        category: str | None = None,
        published_at: PublishedAt | None = None,
        available: bool = True,
        attributes: Mapping[str, Any] | None = None,
    ) -> CatalogChange:
        """As :meth:`Client.put_item`.

        >>> await client.put_item("a09999", title="Breaking", category="tech")  # doctest: +SKIP
        """
        call = _calls.put_item(item_id, title, category, published_at, available, attributes)
        return await self._send(call)

    async def patch_item(
        self,
        item_id: str,
        *,
        title: str | Unset = UNSET,
        category: str | Unset | None = UNSET,
        published_at: PublishedAt | Unset | None = UNSET,
        available: bool | Unset = UNSET,
        attributes: Mapping[str, Any] | Unset = UNSET,
    ) -> CatalogChange:
        """As :meth:`Client.patch_item`.

        >>> await client.patch_item("a09999", available=False)  # doctest: +SKIP
        """
        call = _calls.patch_item(
            item_id,
            title=title,
            category=category,
            published_at=published_at,
            available=available,
            attributes=attributes,
        )
        return await self._send(call)

    async def delete_item(self, item_id: str) -> CatalogChange:
        """As :meth:`Client.delete_item`.

        >>> await client.delete_item("a00042")  # doctest: +SKIP
        """
        return await self._send(_calls.delete_item(item_id))

    async def get_item(self, item_id: str) -> CatalogItem:
        """As :meth:`Client.get_item`.

        >>> (await client.get_item("a09999")).title  # doctest: +SKIP
        'Breaking'
        """
        return await self._send(_calls.get_item(item_id))

    async def upsert_items(self, items: Iterable[CatalogItem | Mapping[str, Any]]) -> CatalogChange:
        """As :meth:`Client.upsert_items`.

        >>> await client.upsert_items([CatalogItem("a10000", category="sports")])  # doctest: +SKIP
        """
        return await self._send(_calls.upsert_items(items))

    async def catalog_status(self) -> CatalogStatus:
        """As :meth:`Client.catalog_status`.

        >>> (await client.catalog_status()).items  # doctest: +SKIP
        """
        return await self._send(_calls.catalog_status())
