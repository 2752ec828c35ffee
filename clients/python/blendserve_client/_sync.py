"""The blocking client. Every method builds its call in ``_calls`` and sends it here,
with the retry policy of ``_policy``; ``AsyncClient`` mirrors it line for line."""

from __future__ import annotations

import time
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

__all__ = ["Client"]

T = TypeVar("T")

_sleep = time.sleep
"""How the client waits between attempts (tests replace it)."""


class Client:
    """A blocking client of one blendserve service; reuse it (it pools connections).

    ``base_url`` and ``api_key`` default to ``$BLENDSERVE_URL`` and
    ``$BLENDSERVE_API_KEY``. ``timeout_s`` bounds each attempt's connect, write, read
    and pool waits. ``retries`` more attempts are made after 429 and 503 (waiting
    ``Retry-After``), connection failures, and timeouts of calls safe to repeat,
    with exponential backoff from ``backoff_s`` (full jitter, at most
    ``backoff_max_s``). ``transport`` replaces the network (tests:
    ``httpx.MockTransport``).

    >>> with Client("http://127.0.0.1:8000", api_key=key) as client:  # doctest: +SKIP
    ...     rec = client.recommend("home", "u0042", k=5)
    ...     client.feedback([client.impression(rec.items[0].result_id)])
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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._settings = Settings.resolve(
            base_url, api_key, timeout_s, retries, backoff_s, backoff_max_s, max_retry_after_s
        )
        self._http = httpx.Client(transport=transport, **self._settings.http_options())

    @property
    def base_url(self) -> str:
        """The service's URL, without a trailing slash.

        >>> Client("http://127.0.0.1:8000/", api_key="k").base_url
        'http://127.0.0.1:8000'
        """
        return self._settings.base_url

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, retries={self._settings.retries})"

    def close(self) -> None:
        """Close the pooled connections.

        >>> Client("http://127.0.0.1:8000", api_key="k").close()
        """
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            request = self._http.build_request(call.method, call.path, json=call.body)
            try:
                response = self._http.send(request)
            except httpx.RequestError as exc:
                wait = self._settings.wait_after_error(call, attempt, exc)
            else:
                answered = self._settings.wait_after_response(call, attempt, response)
                if answered is None:
                    return finish(call, response, attempt + 1)
                wait = answered
            _sleep(wait)
            attempt += 1

    # -- serving (``infer`` scope) ---------------------------------------------

    def recommend(
        self,
        use_case: str,
        user_id: str | int,
        k: int = 10,
        context: Mapping[str, Any] | None = None,
        exclude: Iterable[str] | None = None,
        filters: Iterable[Mapping[str, Any]] | None = None,
        boosts: Iterable[Mapping[str, Any]] | None = None,
    ) -> Recommendation:
        """Top-``k`` items of ``use_case`` for ``user_id``, each with its ``result_id``
        and provenance. ``context``: request features (device, page...); ``exclude``:
        item ids that must not be returned; ``filters`` and ``boosts``: rules over the
        catalogue's declared attributes, e.g. ``[{"attribute": "price", "max": 50}]``
        and ``[{"attribute": "brand", "equals": "acme", "multiply": 1.5}]``.

        >>> rec = client.recommend("home", "u0042", k=2, exclude=["a00001"])  # doctest: +SKIP
        >>> rec.items[0].item_id, rec.variant, rec.degraded  # doctest: +SKIP
        ('a01806', {}, False)
        """
        return self._send(_calls.recommend(use_case, user_id, k, context, exclude, filters, boosts))

    def predict(self, model: str, instances: Sequence[Any]) -> Prediction:
        """Predictions of one hosted model, one per instance.

        >>> client.predict("click_model", [{"category_affinity": 0.4,  # doctest: +SKIP
        ...     "log_item_popularity": 5.2, "item_age_hours": 3.0, "hour_of_day": 20}])
        Prediction(model='click_model', version='1', predictions=[0.98...])
        """
        return self._send(_calls.predict(model, instances))

    def feedback(
        self,
        events: FeedbackEvent | Mapping[str, Any] | Iterable[FeedbackEvent | Mapping[str, Any]],
    ) -> FeedbackResult:
        """Store impressions, clicks and conversions (at most 1,000 per call). Every
        event gets an ``event_id`` before the first attempt if it has none, so a
        retry never stores one twice. Raises ``InvalidRequest`` (with ``accepted``
        and ``rejected``) when some were refused: the others are stored all the same.

        >>> rid = rec.items[0].result_id  # doctest: +SKIP
        >>> client.feedback([client.impression(rid), client.click(rid)])  # doctest: +SKIP
        FeedbackResult(accepted=2, duplicates=0, rejected=[], event_ids=[...])
        """
        return self._send(_calls.feedback(events))

    def ready(self) -> Readiness:
        """Whether every model answers (``/readyz``); needs no key, one attempt. A
        not-ready service is an answer, not an error (falsy, with ``not_ready``).

        >>> client.ready()  # doctest: +SKIP
        Readiness(ready=True, models=['popularity', 'staff_picks', ...], ...)
        """
        return self._send(_calls.ready())

    # -- operations (``admin`` scope) ------------------------------------------

    def models(self) -> Models:
        """Every hosted model: versions (live, canary, shadow), traffic, status.

        >>> client.models().models["mf"].versions[0].status  # doctest: +SKIP
        'serving'
        """
        return self._send(_calls.models())

    def experiments(self) -> list[str]:
        """Every experiment and interleaving node, as ``<use case>.<node>``.

        >>> client.experiments()  # doctest: +SKIP
        ['discover.ab', 'discover.head_to_head']
        """
        return self._send(_calls.experiments())

    def experiment(self, name: str) -> ExperimentReport:
        """Live statistics of one experiment (CTR per arm, lift, p-value, verdict) or
        interleaving node (credited clicks and wins per team, their tests).

        >>> client.experiment("discover.ab").arms["control"].impressions  # doctest: +SKIP
        1520
        """
        return self._send(_calls.experiment(name))

    # -- the live catalogue (``admin`` scope) ----------------------------------

    def put_item(
        self,
        item_id: str,
        *,
        title: str = "",
        category: str | None = None,
        published_at: PublishedAt | None = None,
        available: bool = True,
        attributes: Mapping[str, Any] | None = None,
    ) -> CatalogChange:
        """Create or replace an item (fields left out take their defaults). Once this
        returns the change is durable; every answer reflects it within a second.

        >>> client.put_item("a09999", title="Breaking", category="tech",  # doctest: +SKIP
        ...     published_at=datetime.now(timezone.utc)).version
        2001
        """
        call = _calls.put_item(item_id, title, category, published_at, available, attributes)
        return self._send(call)

    def patch_item(
        self,
        item_id: str,
        *,
        title: str | Unset = UNSET,
        category: str | Unset | None = UNSET,
        published_at: PublishedAt | Unset | None = UNSET,
        available: bool | Unset = UNSET,
        attributes: Mapping[str, Any] | Unset = UNSET,
    ) -> CatalogChange:
        """Change only the fields given (``category=None`` clears it); the answer's
        ``item`` is the item as it is now.

        >>> client.patch_item("a09999", available=False).item.available  # doctest: +SKIP
        False
        """
        call = _calls.patch_item(
            item_id,
            title=title,
            category=category,
            published_at=published_at,
            available=available,
            attributes=attributes,
        )
        return self._send(call)

    def delete_item(self, item_id: str) -> CatalogChange:
        """Delete an item: no answer contains it from a second after this returns.

        >>> client.delete_item("a00042").version  # doctest: +SKIP
        2003
        """
        return self._send(_calls.delete_item(item_id))

    def get_item(self, item_id: str) -> CatalogItem:
        """One item as stored; ``NotFound`` when missing or deleted.

        >>> client.get_item("a09999").title  # doctest: +SKIP
        'Breaking'
        """
        return self._send(_calls.get_item(item_id))

    def upsert_items(self, items: Iterable[CatalogItem | Mapping[str, Any]]) -> CatalogChange:
        """Create or replace many items at once, all or nothing (at most 1,000); one
        invalid entry refuses the batch, naming it (``items.3.category``).

        >>> client.upsert_items([CatalogItem("a10000", category="sports"),  # doctest: +SKIP
        ...                      {"item_id": "a10001", "category": "tech"}]).count
        2
        """
        return self._send(_calls.upsert_items(items))

    def catalog_status(self) -> CatalogStatus:
        """The catalogue's version and size, and model items it does not know.

        >>> client.catalog_status().version  # doctest: +SKIP
        2003
        """
        return self._send(_calls.catalog_status())
