"""What the client raises. Every error is a :class:`BlendserveError`::

    BlendserveError            status, code, message, field, retry_after_s, attempts, details
     ├── Unauthorized          401: no key, or an unknown one
     ├── Forbidden             403: the key lacks the route's scope (infer, admin)
     ├── NotFound              404: unknown use case, model, experiment or item (a LookupError)
     ├── InvalidRequest        400, 413, 422: the request names a bad field (a ValueError);
     │                         a feedback batch's also says what was stored anyway
     ├── RateLimited           429, once the retries are spent
     ├── Unavailable           503, 504, 408 once the retries are spent; also the service
     │                         unreachable or too slow (status None)
     └── ServerError           any other 5xx

An answer that is 2xx but not the documented shape raises the base class with the
code ``unexpected_answer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "BlendserveError",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "RateLimited",
    "RejectedEvent",
    "ServerError",
    "Unauthorized",
    "Unavailable",
]


@dataclass(frozen=True)
class RejectedEvent:
    """A feedback event the service refused, with the field at fault.

    >>> RejectedEvent(index=3, field="events.3.result_id", message="forged").index
    3
    """

    index: int
    """Position of the event in the batch sent."""
    field: str
    """The field at fault, e.g. ``events.3.result_id``."""
    message: str
    """Why it was refused."""


class BlendserveError(Exception):
    """A call that did not succeed: the service refused it, failed, or was unreachable.

    >>> try:
    ...     client.recommend("nope", "u1")  # doctest: +SKIP
    ... except BlendserveError as exc:
    ...     print(exc.status, exc.code, exc.field)
    404 not_found use_case
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "error",
        field: str | None = None,
        retry_after_s: float | None = None,
        attempts: int = 1,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        """Human-readable; the service's own message when it sent one."""
        self.status = status
        """The HTTP status, or None when no answer came (connection failure, timeout)."""
        self.code = code
        """Machine-readable: ``invalid_request``, ``rate_limited``, ``timeout``..."""
        self.field = field
        """The request field at fault (``k``, ``events.3.result_id``), when one is."""
        self.retry_after_s = retry_after_s
        """The service's ``Retry-After``, in seconds, when it sent one."""
        self.attempts = attempts
        """How many times the request was sent, retries included."""
        self.details: dict[str, Any] = details or {}
        """The whole ``error`` object of the answer (e.g. ``problems``, ``failed``)."""

    def __str__(self) -> str:
        where = "no answer" if self.status is None else f"HTTP {self.status}"
        field = f" (field {self.field})" if self.field else ""
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return f"{where} {self.code}{field}{tries}: {self.message}"


class Unauthorized(BlendserveError):
    """401: the request had no API key, or one the service does not know.

    >>> Client("http://127.0.0.1:8000", api_key="wrong").models()  # doctest: +SKIP
    Traceback (most recent call last):
    blendserve_client.Unauthorized: HTTP 401 unauthenticated: invalid API key
    """


class Forbidden(BlendserveError):
    """403: the key is valid but lacks the route's scope (``infer`` or ``admin``).

    >>> infer_only.models()  # doctest: +SKIP
    Traceback (most recent call last):
    blendserve_client.Forbidden: HTTP 403 forbidden: key 'storefront' lacks the 'admin' scope
    """


class NotFound(BlendserveError, LookupError):
    """404: an unknown use case, model or experiment, or a missing catalogue item.

    >>> client.get_item("a-deleted-item")  # doctest: +SKIP
    Traceback (most recent call last):
    blendserve_client.NotFound: HTTP 404 not_found (field catalogue_item): unknown ...
    """


class InvalidRequest(BlendserveError, ValueError):
    """400, 413 or 422: the request was refused, naming the field at fault.

    A feedback batch is checked entry by entry: when some entries are refused the
    others are stored all the same, and this error says so in ``accepted``,
    ``duplicates`` and ``rejected`` (resending the whole batch is safe: the events
    keep their ``event_id``).

    >>> try:
    ...     client.recommend("home", "u1", k=0)  # doctest: +SKIP
    ... except InvalidRequest as exc:
    ...     print(exc.field)
    k
    """

    def __init__(
        self,
        message: str,
        *,
        accepted: int = 0,
        duplicates: int = 0,
        rejected: list[RejectedEvent] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.accepted = accepted
        """Feedback only: events stored all the same."""
        self.duplicates = duplicates
        """Feedback only: events whose ``event_id`` had been stored before."""
        self.rejected: list[RejectedEvent] = rejected or []
        """Feedback only: every refused event, with its field."""


class RateLimited(BlendserveError):
    """429: the key is over its rate limit, still after the client's retries.

    ``retry_after_s`` says when the service expects it back.

    >>> try:
    ...     client.recommend("home", "u1")  # doctest: +SKIP
    ... except RateLimited as exc:
    ...     time.sleep(exc.retry_after_s or 1)
    """


class Unavailable(BlendserveError):
    """The service could not answer now: 503 (overloaded, every source failed, a model
    or the event log unavailable), 504 or 408, still after the client's retries; or
    no answer at all (``status`` None, ``code`` ``connect_error``, ``timeout`` or
    ``network_error``).

    >>> try:
    ...     client.recommend("home", "u1")  # doctest: +SKIP
    ... except Unavailable:
    ...     items = fallback_items()
    """


class ServerError(BlendserveError):
    """Another 5xx: a fault in the service (report it, with ``message``).

    >>> isinstance(ServerError("boom", status=500), BlendserveError)
    True
    """
