"""What the ingress's routes share: secrets from the environment, the OpenAPI error
entries, response building and config checks. No Serve objects here; the
``Ingress`` deployment (``ingress.py``) uses them."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi.responses import JSONResponse
from ray import serve

from blending.candidates import Candidate
from blending.catalog import ItemCatalog, StaticCatalog
from blending.dag import BlendPlan
from blending.result_ids import ResultIdCodec, ResultRef
from blending.spec import RerankNodeSpec, StackNodeSpec
from deployments.api.schemas import (
    ErrorResponse,
    OipErrorResponse,
)
from deployments.config import (
    PSEUDONYM_SALT_ENV,
    RESULT_KEY_ENV,
    AppArgs,
    resolve_store,
)
from deployments.events.feedback import FEEDBACK_MAX_EVENTS, Pseudonymizer
from deployments.hosting.gateway import IngressModels
from models.base import RecommendQuery
from models.errors import (
    ConfigError,
    InputError,
)

__all__ = [
    "DASHBOARD_PAGE",
    "INFER_ERRORS",
    "OIP_ERRORS",
    "check_node_models",
    "error_responses",
    "feedback_entries",
    "flush_logs",
    "item_json",
    "load_catalog",
    "oip_error",
    "ok_example",
    "pseudonymizer",
    "result_codec",
    "this_ingress",
    "unknown_model_items",
]

logger = logging.getLogger("ray.serve")


def _secret(env: str, consequence: str) -> bytes:
    """The secret in ``$env`` (at least 16 bytes), else a random one for this replica
    only, with a warning saying what that breaks."""
    value = os.environ.get(env, "").encode()
    if len(value) >= 16:
        return value
    logger.warning("%s is unset or shorter than 16 bytes: %s", env, consequence)
    return secrets.token_bytes(32)


def result_codec() -> ResultIdCodec:
    """Signs result ids with ``$BLENDSERVE_RESULT_KEY`` (the same on every replica)."""
    return ResultIdCodec(
        _secret(
            RESULT_KEY_ENV,
            "result ids are signed with a key of this replica only, so other replicas "
            "and restarts cannot verify them",
        )
    )


def pseudonymizer() -> Pseudonymizer:
    """Pseudonymises user ids with ``$BLENDSERVE_PSEUDONYM_SALT``."""
    return Pseudonymizer(
        _secret(
            PSEUDONYM_SALT_ENV,
            "user ids in the event log are hashed with a salt of this replica only, so "
            "one user gets a new pseudonym per replica and restart",
        )
    )


def this_ingress() -> Any:
    """This replica's ``Ingress`` object (routes outside the class reach its state)."""
    return serve.get_replica_context().servable_object


DASHBOARD_PAGE = Path(__file__).with_name("static") / "dashboard.html"


def flush_logs() -> None:
    """Write buffered log records now: throughput mode buffers replica logs (1000
    records, flushed on ERROR only)."""
    for handler in logger.handlers:
        handler.flush()


def feedback_entries(body: Any) -> tuple[list[Any], str]:
    """The entries of a feedback body (one event, or ``{"events": [...]}``) and the
    prefix their fields are named with."""
    if isinstance(body, dict) and "events" in body:
        extra = sorted(set(body) - {"events"})
        if extra:
            raise InputError(extra[0], "unexpected field beside `events`")
        entries = body["events"]
        if not isinstance(entries, list) or not entries:
            raise InputError("events", "expected a non-empty list of events")
        if len(entries) > FEEDBACK_MAX_EVENTS:
            raise InputError("events", f"at most {FEEDBACK_MAX_EVENTS} events per request")
        return entries, "events"
    if isinstance(body, dict):
        return [body], ""
    raise InputError("body", 'expected an event object or {"events": [...]}')


def oip_error(message: str, status: int) -> JSONResponse:
    """The Open Inference Protocol's error body (a 503 says when to retry)."""
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def load_catalog(args: AppArgs) -> ItemCatalog | None:
    if args.catalog is None:
        return None
    catalog = StaticCatalog.from_parquet(resolve_store(args.catalog))
    logger.info("catalogue %s: %d items", args.catalog, len(catalog))
    return catalog


def check_node_models(plans: dict[str, BlendPlan], models: IngressModels) -> None:
    """Refuse a config whose in-process rerank or stack models cannot do the job."""
    for use_case, plan in plans.items():
        for name, node in plan.spec.nodes.items():
            if not isinstance(node, RerankNodeSpec | StackNodeSpec):
                continue
            adapter = models.live_adapters().get(node.model)
            if adapter is None:
                continue  # remote, or failed to load (reported by /readyz)
            where = f"use case {use_case!r}, node {name!r}"
            if isinstance(node, RerankNodeSpec) and not adapter.describe().get("scorer"):
                raise ConfigError(f"{where}: model {node.model!r} cannot score items (rerank)")
            features = getattr(adapter, "feature_names", None)
            if isinstance(node, StackNodeSpec) and features not in (None, node.inputs):
                raise ConfigError(
                    f"{where}: model {node.model!r} was trained on inputs {features}, "
                    f"the node stacks {node.inputs}"
                )


def item_json(
    codec: ResultIdCodec, request: ResultRef, position: int, candidate: Candidate
) -> dict[str, Any]:
    """One returned item; its result id extends the ``request``'s with the item's facts."""
    ref = replace(
        request,
        position=position,
        item_id=candidate.item_id,
        team=candidate.team,
        model_versions={c.model: c.version for c in candidate.components},
    )
    item: dict[str, Any] = {
        "item_id": candidate.item_id,
        "result_id": codec.encode(ref),
        "score": candidate.score,
        "pinned": candidate.pinned,
        "components": [comp.to_json() for comp in candidate.components],
    }
    if candidate.team is not None:
        item["team"] = candidate.team
    return item


def ok_example(example: Any, status: int = 200) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entry of a route's success answer, with an example of it."""
    return {status: {"content": {"application/json": {"example": example}}}}


def error_responses(*statuses: int, oip: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give."""
    described = {
        400: "The body is not valid JSON (or, for `/v2`, not a valid inference request).",
        401: "No API key, or an unknown one.",
        403: "The key lacks the route's scope.",
        404: "Unknown use case or model.",
        413: "The body is larger than the ingress allows.",
        422: "A field is invalid; `error.field` names it.",
        429: "The key is over its rate limit; retry after `Retry-After` seconds.",
        503: "Overloaded, or no model could answer; retry after `Retry-After` seconds.",
        504: "A model did not answer in time.",
    }
    model = OipErrorResponse if oip else ErrorResponse
    return {status: {"model": model, "description": described[status]} for status in statuses}


INFER_ERRORS = error_responses(400, 401, 403, 404, 413, 422, 429, 503, 504)
OIP_ERRORS = error_responses(400, 401, 403, 404, 413, 429, 503, 504, oip=True)


async def unknown_model_items(
    models: IngressModels, catalog: ItemCatalog, probe: int = 1000
) -> dict[str, dict[str, Any]]:
    """For each model that recommends, how many of its top ``probe`` items (for a user
    it has never seen) the catalogue does not know, with a few examples."""
    report: dict[str, dict[str, Any]] = {}
    query = RecommendQuery("__blendserve_catalog_check__")
    for name in models.names():
        try:
            result = await asyncio.wait_for(models.recommend(name, query, probe), 10)
        except Exception:  # noqa: BLE001 - not a recommender, or not loaded: nothing to check
            continue
        unknown = [item for item, _ in result.items if catalog.get(item) is None]
        report[name] = {
            "checked": len(result.items),
            "unknown": len(unknown),
            "examples": unknown[:5],
        }
        if unknown:
            logger.warning(
                "model %s recommends %d items the catalogue does not know (e.g. %s)",
                name,
                len(unknown),
                unknown[:3],
            )
    return report
