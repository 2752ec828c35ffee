"""What is retried, how long the client waits, and what it raises when it gives up.

Waits are recorded by the ``waits`` fixture instead of slept; each test that retries
also checks that the call itself took only a few milliseconds of real time.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest
from fake_service import reply
from recorded_answers import (
    CATALOG_STATUS,
    EVERY_SOURCE_FAILED,
    K_TOO_SMALL,
    MODEL_TIMEOUT,
    NOT_READY,
    OVERLOADED,
    PREDICT_CLICK_MODEL,
    RATE_LIMITED,
    RECOMMEND_HOME,
    error,
)

from blendserve_client import (
    BlendserveError,
    InvalidRequest,
    RateLimited,
    ServerError,
    Unavailable,
)

REAL_TIME_LIMIT_S = 0.05
"""Far below any scripted Retry-After: proves the waits were not slept."""


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_429_is_retried_after_retry_after_then_answers(serve, waits):
    client = serve(
        reply(429, RATE_LIMITED, {"Retry-After": "2"}),
        reply(200, RECOMMEND_HOME),
        backoff_s=0.2,
    )
    rec, elapsed = timed(lambda: client.recommend("home", "u0042"))
    assert rec.items[0].item_id == "a01806"
    assert len(client.script.requests) == 2
    assert len(waits) == 1 and 2.0 <= waits[0] <= 2.2  # Retry-After plus jitter
    assert elapsed < REAL_TIME_LIMIT_S


def test_503_honours_retry_after_on_every_retry_then_raises_unavailable(serve, waits):
    refusal = reply(503, EVERY_SOURCE_FAILED, {"Retry-After": "1"})
    client = serve(refusal, refusal, refusal, refusal, retries=3, backoff_s=0.1)
    with pytest.raises(Unavailable) as caught:
        timed(lambda: client.recommend("home", "u0042"))
    assert len(client.script.requests) == 4  # the first attempt and 3 retries
    assert len(waits) == 3 and all(1.0 <= wait <= 1.1 for wait in waits)
    assert (caught.value.status, caught.value.attempts, caught.value.retry_after_s) == (503, 4, 1.0)
    assert caught.value.details["failed"] == {"cf": "late", "popular": "error"}


def test_429_after_the_retries_raises_rate_limited_with_retry_after(serve, waits):
    refusal = reply(429, RATE_LIMITED, {"Retry-After": "3"})
    client = serve(refusal, refusal, retries=1)
    with pytest.raises(RateLimited) as caught:
        client.predict("click_model", [{}])
    assert (caught.value.code, caught.value.retry_after_s, caught.value.attempts) == (
        "rate_limited",
        3.0,
        2,
    )
    assert len(waits) == 1


def test_a_retry_after_above_the_cap_is_not_waited_for(serve, waits):
    client = serve(reply(429, RATE_LIMITED, {"Retry-After": "120"}), max_retry_after_s=30)
    with pytest.raises(RateLimited) as caught:
        client.recommend("home", "u0042")
    assert caught.value.retry_after_s == 120.0
    assert waits == []


def test_retry_after_as_an_http_date_is_honoured(serve, waits):
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    client = serve(reply(503, OVERLOADED, {"Retry-After": when}), reply(200, RECOMMEND_HOME))
    client.recommend("home", "u0042")
    assert 28.0 <= waits[0] <= 30.5


def test_503_without_retry_after_backs_off_exponentially_with_a_cap(serve, waits):
    refusal = reply(503, text="no server available")  # HAProxy, no header
    client = serve(*[refusal] * 6, retries=5, backoff_s=0.5, backoff_max_s=2.0)
    with pytest.raises(Unavailable):
        client.models()
    caps = [0.5, 1.0, 2.0, 2.0, 2.0]  # backoff_s * 2**retry, at most backoff_max_s
    assert len(waits) == len(caps)
    assert all(0.0 <= wait <= cap for wait, cap in zip(waits, caps, strict=True))


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, error("invalid_json", "the body is not JSON")),
        (401, error("unauthenticated", "invalid API key")),
        (403, error("forbidden", "key 'x' lacks the 'infer' scope")),
        (404, error("not_found", "unknown use case 'x'", "use_case")),
        (408, error("http_error", "Request Timeout")),
        (413, error("body_too_large", "too large", "body")),
        (422, K_TOO_SMALL),
    ],
)
def test_a_4xx_other_than_429_is_never_retried(serve, waits, status, body):
    client = serve(reply(status, body, {"Retry-After": "1"}))
    with pytest.raises(BlendserveError) as caught:
        client.recommend("home", "u0042")
    assert caught.value.status == status
    assert len(client.script.requests) == 1 and waits == []


def test_422_raises_invalid_request_at_once(serve, waits):
    client = serve(reply(422, K_TOO_SMALL))
    with pytest.raises(InvalidRequest) as caught:
        client.recommend("home", "u0042", k=0)
    assert (caught.value.field, caught.value.attempts) == ("k", 1)
    assert waits == []


def test_a_connection_that_could_not_be_made_is_retried(serve, waits):
    client = serve(httpx.ConnectError, httpx.ConnectTimeout, reply(200, CATALOG_STATUS))
    status, elapsed = timed(client.catalog_status)
    assert status.version == 2001
    assert len(waits) == 2 and elapsed < REAL_TIME_LIMIT_S


def test_a_delete_is_retried_when_nothing_was_sent(serve, waits):
    client = serve(httpx.ConnectError, reply(200, {"version": 7}))
    assert client.delete_item("a00042").version == 7
    assert len(waits) == 1


def test_a_read_timeout_is_retried_for_calls_safe_to_repeat(serve, waits):
    client = serve(httpx.ReadTimeout, httpx.RemoteProtocolError, reply(200, PREDICT_CLICK_MODEL))
    assert client.predict("click_model", [{}]).version == "1"
    assert len(waits) == 2


def test_a_read_timeout_of_a_delete_is_not_retried(serve, waits):
    # Had the first delete landed, a second would answer 404.
    client = serve(httpx.ReadTimeout)
    with pytest.raises(Unavailable) as caught:
        client.delete_item("a00042")
    assert (caught.value.status, caught.value.code, caught.value.attempts) == (None, "timeout", 1)
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert waits == []


def test_an_unreachable_service_raises_unavailable_once_the_retries_are_spent(serve, waits):
    client = serve(*[httpx.ConnectError] * 4, retries=3)
    with pytest.raises(Unavailable) as caught:
        client.recommend("home", "u0042")
    assert (caught.value.status, caught.value.code, caught.value.attempts) == (
        None,
        "connect_error",
        4,
    )
    assert "POST /v1/recommend/home to http://blendserve.test:8000" in str(caught.value)
    assert len(waits) == 3


def test_504_is_retried_for_calls_safe_to_repeat(serve, waits):
    client = serve(reply(504, MODEL_TIMEOUT), reply(200, PREDICT_CLICK_MODEL))
    assert client.predict("click_model", [{}]).predictions == [0.9808552861213684]
    assert len(waits) == 1


def test_500_is_not_retried(serve, waits):
    client = serve(reply(500, text="Internal Server Error"))
    with pytest.raises(ServerError) as caught:
        client.recommend("home", "u0042")
    assert caught.value.message == "Internal Server Error"
    assert waits == []


def test_retries_zero_makes_one_attempt(serve, waits):
    client = serve(reply(503, OVERLOADED, {"Retry-After": "1"}), retries=0)
    with pytest.raises(Unavailable):
        client.recommend("home", "u0042")
    assert len(client.script.requests) == 1 and waits == []


def test_the_readiness_probe_is_never_retried(serve, waits):
    client = serve(reply(503, NOT_READY, {"Retry-After": "1"}))
    assert not client.ready()
    assert waits == []
    failing = serve(httpx.ConnectError)
    with pytest.raises(Unavailable):
        failing.ready()
    assert waits == []
