"""A typed client of the blendserve HTTP API, blocking (:class:`Client`) or asyncio
(:class:`AsyncClient`), with retries that honour ``Retry-After``.

>>> from blendserve_client import Client
>>> with Client("http://127.0.0.1:8000", api_key=key) as client:  # doctest: +SKIP
...     rec = client.recommend("home", "u0042", k=5)
...     rid = rec.items[0].result_id
...     client.feedback([client.impression(rid), client.click(rid)])
"""

from blendserve_client._async import AsyncClient
from blendserve_client._catalog import (
    UNSET,
    CatalogChange,
    CatalogItem,
    CatalogStatus,
    PublishedAt,
    Unset,
)
from blendserve_client._errors import (
    BlendserveError,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    RejectedEvent,
    ServerError,
    Unauthorized,
    Unavailable,
)
from blendserve_client._policy import API_KEY_ENV, URL_ENV
from blendserve_client._reports import (
    ArmStats,
    ExperimentReport,
    Models,
    ModelStatus,
    ModelVersion,
    Readiness,
)
from blendserve_client._results import (
    Component,
    EventKind,
    FeedbackEvent,
    FeedbackResult,
    Prediction,
    Recommendation,
    RecommendedItem,
    add_to_cart,
    click,
    conversion,
    dwell,
    impression,
    purchase,
)
from blendserve_client._sync import Client
from blendserve_client._version import __version__

__all__ = [
    "API_KEY_ENV",
    "UNSET",
    "URL_ENV",
    "ArmStats",
    "AsyncClient",
    "BlendserveError",
    "CatalogChange",
    "CatalogItem",
    "CatalogStatus",
    "Client",
    "Component",
    "EventKind",
    "ExperimentReport",
    "FeedbackEvent",
    "FeedbackResult",
    "Forbidden",
    "InvalidRequest",
    "ModelStatus",
    "ModelVersion",
    "Models",
    "NotFound",
    "Prediction",
    "PublishedAt",
    "RateLimited",
    "Readiness",
    "Recommendation",
    "RecommendedItem",
    "RejectedEvent",
    "ServerError",
    "Unauthorized",
    "Unavailable",
    "Unset",
    "__version__",
    "add_to_cart",
    "click",
    "conversion",
    "dwell",
    "impression",
    "purchase",
]
