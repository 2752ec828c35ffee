"""The live catalogue's and online learning's admin routes (``admin`` scope), mounted
on the ingress's API.

They run in an ingress replica and reach its ``CatalogClient`` through the replica
context, like the edge does, so the ``Ingress`` class stays about serving. Bodies
are checked here, field by field, before anything is written: an invalid item or
batch writes nothing.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures.

from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from deployments.api.docs import error_responses, json_body, ok_example
from deployments.api.edge import require
from deployments.api.errors import NotFound
from deployments.api.state import this_ingress
from deployments.catalog.client import CatalogClient
from deployments.catalog.items import (
    CatalogItem,
    ItemNotFoundError,
    ItemPatch,
    parse_batch,
    parse_item,
)
from deployments.catalog.messages import CatalogWrite
from deployments.json_types import JsonObject
from models.errors import InputError

__all__ = ["router"]

router = APIRouter(dependencies=[require("admin")])

_WRITE_ERRORS = {
    **error_responses(400, 401, 403, 404, 413, 422, 429, 503),
    **ok_example({"version": 2001}),
}

_ITEM_EXAMPLE = {
    "title": "Breaking: a new article",
    "category": "tech",
    "published_at": "2026-11-28T23:00:00+00:00",
    "available": True,
    "attributes": {"author": "desk"},
}


_ITEM_SCHEMA = CatalogItem.model_json_schema()
# In a PUT the path names the item: `item_id` in the body is optional (and must match).
_PUT_BODY = json_body(
    {**_ITEM_SCHEMA, "required": [f for f in _ITEM_SCHEMA.get("required", []) if f != "item_id"]},
    _ITEM_EXAMPLE,
)
_BATCH_BODY = json_body(
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["items"],
        "properties": {"items": {"type": "array", "minItems": 1, "items": _ITEM_SCHEMA}},
    },
    {"items": [{"item_id": "a10000", **_ITEM_EXAMPLE}]},
)


def _client() -> CatalogClient:
    client: CatalogClient | None = this_ingress().catalog_client
    if client is None:
        raise NotFound("live catalogue", "(args.live_catalog is not set)", [])
    return client


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise InputError("body", "is not valid JSON") from None


async def _write(item_id: str | None, change: Awaitable[CatalogWrite]) -> CatalogWrite:
    try:
        return await change
    except ItemNotFoundError:
        raise NotFound("catalogue item", str(item_id), []) from None


@router.put(
    "/v1/catalog/items/{item_id}",
    summary="Create or replace a catalogue item.",
    responses=_WRITE_ERRORS,
    openapi_extra=_PUT_BODY,
)
async def put_item(item_id: str, request: Request) -> JsonObject:
    """The body is the item (`title`, `category`, `published_at`, `available`,
    `attributes`); its `item_id`, if given, must be the path's. Answers the new
    catalogue version once the change is durable; every replica filters by it
    within a second."""
    body = await _json(request)
    if isinstance(body, dict) and body.get("item_id", item_id) != item_id:
        raise InputError("item_id", f"must match the path ({item_id!r})")
    item = parse_item({**body, "item_id": item_id} if isinstance(body, dict) else body, "")
    written = await _write(item_id, _client().put(item))
    return {"version": written.version}


@router.patch(
    "/v1/catalog/items/{item_id}",
    summary="Change some fields of a catalogue item.",
    responses=_WRITE_ERRORS,
)
async def patch_item(item_id: str, patch: ItemPatch) -> JsonObject:
    """Fields left out keep their value; `available: false` hides an item everywhere."""
    written = await _write(item_id, _client().patch(item_id, patch))
    item = None if written.item is None else written.item.model_dump(mode="json")
    return {"version": written.version, "item": item}


@router.delete(
    "/v1/catalog/items/{item_id}",
    summary="Delete a catalogue item: no answer contains it a second after this returns.",
    responses=_WRITE_ERRORS,
)
async def delete_item(item_id: str) -> JsonObject:
    """The new catalogue version."""
    written = await _write(item_id, _client().delete(item_id))
    return {"version": written.version}


@router.post(
    "/v1/catalog/items:batch",
    summary="Create or replace many items at once: all of them, or none.",
    responses={**_WRITE_ERRORS, **ok_example({"version": 2003, "count": 2})},
    openapi_extra=_BATCH_BODY,
)
async def upsert_items(request: Request) -> JsonObject:
    """`{"items": [...]}`; one invalid entry refuses the whole batch, naming it
    (`items.3.category`), and writes nothing."""
    limit = this_ingress().config.live_catalog
    items = parse_batch(await _json(request), limit.max_batch if limit else 1000)
    written = await _write(None, _client().upsert_batch(items))
    return {"version": written.version, "count": len(items)}


@router.get(
    "/v1/catalog/items/{item_id}",
    summary="One catalogue item.",
    responses={**error_responses(401, 403, 404, 429, 503), **ok_example(_ITEM_EXAMPLE)},
)
async def get_item(item_id: str) -> Any:
    """The item as stored; 404 when it does not exist or was deleted."""
    item = await _client().get(item_id)
    if item is None:
        raise NotFound("catalogue item", item_id, [])
    return item.model_dump(mode="json")


@router.get(
    "/v1/catalog",
    summary="The catalogue's version, size, and model items it does not know.",
    responses={
        **error_responses(401, 403, 404, 429, 503),
        **ok_example(
            {
                "version": 2001,
                "items": 2001,
                "replica_version": 2001,
                "unknown_model_items": {"mf": {"checked": 1000, "unknown": 0, "examples": []}},
            }
        ),
    },
)
async def catalog_status() -> JSONResponse:
    """The store's version and live items; the version this replica has applied; and,
    per model, items it recommends that the catalogue does not know."""
    ingress = this_ingress()
    client = _client()
    counts = await client.status()
    body = {
        "version": counts.version,
        "items": counts.items,
        "replica_version": client.live.version,
        "unknown_model_items": ingress.unknown_model_items,
    }
    return JSONResponse(body)


@router.get(
    "/v1/online",
    summary="What online learning has learned: decayed impressions and clicks per item.",
    responses={
        **error_responses(401, 403, 429, 503),
        **ok_example(
            {"at": 1795890604.2, "impressions": {"a01806": 41.7}, "clicks": {"a01806": 6.2}}
        ),
    },
)
async def online_state() -> JsonObject:
    """The most seen items' time-decayed impressions and clicks, as the event log holds
    them now (``bandit`` samples from them; ``fresh`` explores items without any)."""
    events = this_ingress().events
    if events is None:
        raise NotFound("online state", "(args.events is null)", [])
    snapshot = await events.online_snapshot()
    return snapshot.to_json()
