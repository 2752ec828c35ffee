"""The clients' settings and their retry policy, shared by ``Client`` and ``AsyncClient``.

What is retried, up to ``retries`` times after the first attempt:

* 429 and 503, every call: the service refused before doing the work (or, for
  feedback, ``event_id`` makes a resend harmless). The wait is the answer's
  ``Retry-After`` plus up to ``backoff_s`` of jitter, so a crowd of refused clients
  does not come back in the same instant; without the header, the backoff below.
  A ``Retry-After`` above ``max_retry_after_s`` is not waited for: the error is
  raised at once, carrying it.
* a connection that could not be made (nothing was sent), every call.
* a timeout or broken connection after sending, and 502 or 504, only for calls
  that are safe to repeat (all but ``delete_item``).

Waits between other attempts are exponential with full jitter: uniform in
``[0, min(backoff_max_s, backoff_s * 2 ** retry)]``. No other 4xx is retried.
"""

from __future__ import annotations

import logging
import math
import os
import random
from dataclasses import dataclass, field
from typing import Any

import httpx

from blendserve_client._calls import Call, retry_after_s
from blendserve_client._errors import BlendserveError, Unavailable
from blendserve_client._version import __version__

__all__ = ["API_KEY_ENV", "URL_ENV", "Settings"]

logger = logging.getLogger("blendserve_client")

API_KEY_ENV = "BLENDSERVE_API_KEY"
"""Where the API key comes from when none is given."""
URL_ENV = "BLENDSERVE_URL"
"""Where the base URL comes from when none is given."""

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Failures before the request left: resending cannot repeat anything."""
_AMBIGUOUS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
"""Failures after it may have reached the service."""


def _positive(name: str, value: float, allow_zero: bool) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a number {bound}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Settings:
    """A client's validated settings and the retry decisions that follow from them."""

    base_url: str
    api_key: str | None = field(repr=False)
    timeout_s: float
    retries: int
    backoff_s: float
    backoff_max_s: float
    max_retry_after_s: float

    @classmethod
    def resolve(
        cls,
        base_url: str | None,
        api_key: str | None,
        timeout_s: float,
        retries: int,
        backoff_s: float,
        backoff_max_s: float,
        max_retry_after_s: float,
    ) -> Settings:
        """Check every setting ('expected X, got Y'), filling the URL and key from
        ``$BLENDSERVE_URL`` and ``$BLENDSERVE_API_KEY`` when not given."""
        url = base_url if base_url is not None else os.environ.get(URL_ENV)
        if not url:
            raise ValueError(f"base_url: expected an http(s) URL (or ${URL_ENV}), got none")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"base_url: expected an http:// or https:// URL, got {url!r}")
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries: expected an integer >= 0, got {retries!r}")
        return cls(
            base_url=url.rstrip("/"),
            api_key=key or None,
            timeout_s=_positive("timeout_s", timeout_s, allow_zero=False),
            retries=retries,
            backoff_s=_positive("backoff_s", backoff_s, allow_zero=True),
            backoff_max_s=_positive("backoff_max_s", backoff_max_s, allow_zero=True),
            max_retry_after_s=_positive("max_retry_after_s", max_retry_after_s, allow_zero=True),
        )

    def http_options(self) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client`` and ``httpx.AsyncClient``."""
        headers = {
            "Accept": "application/json",
            "User-Agent": f"blendserve-client/{__version__} httpx/{httpx.__version__}",
        }
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return {"base_url": self.base_url, "headers": headers, "timeout": self.timeout_s}

    def backoff(self, retry: int) -> float:
        """Full jitter: uniform in ``[0, min(backoff_max_s, backoff_s * 2 ** retry)]``."""
        return random.uniform(0.0, min(self.backoff_max_s, self.backoff_s * 2.0**retry))

    def wait_after_response(
        self, call: Call[Any], attempt: int, response: httpx.Response
    ) -> float | None:
        """Seconds to wait before sending ``call`` again, or None when this answer is
        final (a success, an error not worth retrying, or no retries left)."""
        status = response.status_code
        if status < 400 or status in call.answers or not call.retry or attempt >= self.retries:
            return None
        if status in (429, 503):
            after = retry_after_s(response)
            if after is None:
                wait = self.backoff(attempt)
            elif after > self.max_retry_after_s:
                logger.warning(
                    "%s: %d with Retry-After %.0f s > max_retry_after_s %.0f s: not retrying",
                    call.target, status, after, self.max_retry_after_s,
                )  # fmt: skip
                return None
            else:
                wait = after + random.uniform(0.0, self.backoff_s)
        elif status in (502, 504) and call.idempotent:
            wait = self.backoff(attempt)
        else:
            return None
        self._log_retry(call, attempt, f"HTTP {status}", wait)
        return wait

    def wait_after_error(self, call: Call[Any], attempt: int, exc: httpx.RequestError) -> float:
        """Seconds to wait before sending ``call`` again after ``exc``; raises the
        client's error (from ``exc``) when it is not retried."""
        retriable = isinstance(exc, _NOT_SENT) or (isinstance(exc, _AMBIGUOUS) and call.idempotent)
        if retriable and call.retry and attempt < self.retries:
            wait = self.backoff(attempt)
            self._log_retry(call, attempt, type(exc).__name__, wait)
            return wait
        message = f"{call.target} to {self.base_url}: {type(exc).__name__}: {exc}"
        if not isinstance(exc, httpx.TransportError):
            raise BlendserveError(message, code="bad_answer", attempts=attempt + 1) from exc
        if isinstance(exc, httpx.TimeoutException):
            code = "timeout"
        elif isinstance(exc, httpx.ConnectError):
            code = "connect_error"
        else:
            code = "network_error"
        raise Unavailable(message, code=code, attempts=attempt + 1) from exc

    def _log_retry(self, call: Call[Any], attempt: int, why: str, wait: float) -> None:
        logger.info(
            "%s: %s; retry %d of %d in %.2f s", call.target, why, attempt + 1, self.retries, wait
        )
