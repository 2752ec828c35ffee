"""What the routers outside the ``Ingress`` class may read of their replica.

Routes run in an ingress replica and reach its state through Serve's replica
context. :class:`IngressState` names exactly what they read, so the HTTP surface
depends on that contract, not on the Serve deployment class (which sits a layer
above and mounts these routers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from fastapi import Response
    from fastapi.responses import JSONResponse

    from blending.dag import BlendPlan
    from blending.result_ids import ResultIdCodec
    from deployments.api.edge import Gatekeeper
    from deployments.catalog.client import CatalogClient
    from deployments.config import AppArgs
    from deployments.events.client import EventClient
    from deployments.hosting.checks import UnknownItems
    from deployments.hosting.gateway import IngressModels

__all__ = ["IngressState", "this_ingress"]


class IngressState(Protocol):
    """The parts of an ingress replica its routes use."""

    config: AppArgs
    models: IngressModels
    events: EventClient | None
    catalog_client: CatalogClient | None
    unknown_model_items: dict[str, UnknownItems]
    plans: dict[str, BlendPlan]
    result_ids: ResultIdCodec
    gate: Gatekeeper

    async def readyz(self) -> JSONResponse:
        """200 when every model answers, else 503 naming the ones that do not."""
        ...

    async def recommend_bytes(
        self, use_case: str, body: bytes, started: float, explain: bool = False
    ) -> Response:
        """``POST /v1/recommend/{use_case}`` from its body's bytes."""
        ...

    async def predict_bytes(self, model: str, body: bytes) -> Response:
        """``POST /v1/predict/{model}`` from its body's bytes."""
        ...


def this_ingress() -> IngressState:
    """This replica's ingress object (only inside a replica: Ray is imported here)."""
    from ray import serve

    return cast("IngressState", serve.get_replica_context().servable_object)
