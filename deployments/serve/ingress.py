"""The HTTP ingress: validates requests, runs the blending DAG in its own process.

Cheap models are loaded inline so a recommendation costs no deployment hop; heavy
models are reached through handles, concurrently and by the use case's deadline.
One failing or late source degrades the answer instead of failing it. The use
cases arrive through ``reconfigure`` (the deployment's ``user_config``), so
weights, slots and experiment splits change live with ``serve deploy``.
"""

# No `from __future__ import annotations`: Serve copies these methods into a new
# class and FastAPI must see real annotations to read bodies.

import asyncio
import gc
import itertools
import logging
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from blending.candidates import BlendContext
from blending.catalog import ItemCatalog
from blending.dag import BlendOutcome, BlendPlan
from blending.items import ItemTable
from blending.online import OnlineSnapshot
from blending.result_ids import ResultRef, user_unit
from deployments.api.answers import (
    PredictAnswer,
    RecommendAnswer,
    item_answer,
    json_response,
    parse_bytes,
)
from deployments.api.docs import INFER_ERRORS, model_body
from deployments.api.edge import ApiError, EdgeMiddleware, Gatekeeper, require
from deployments.api.errors import NotFound, error_body, install_error_handlers
from deployments.api.keys import KeyRing
from deployments.api.routes.admin import router as admin_router
from deployments.api.routes.catalog import router as catalog_router
from deployments.api.routes.demo import router as demo_router
from deployments.api.routes.feedback import router as feedback_router
from deployments.api.routes.oip import router as oip_router
from deployments.api.schemas import (
    PredictRequest,
    PredictResponse,
    RecommendRequest,
    RecommendResponse,
)
from deployments.catalog.client import CatalogClient
from deployments.config import INGRESS_DEPLOYMENT, parse_app_args, parse_live_config
from deployments.events.client import EventClient
from deployments.events.stages import follow_stages
from deployments.hosting.checks import UnknownItems, check_node_models, unknown_model_items
from deployments.hosting.gateway import build_gateway
from deployments.metrics import NODE_LATENCY_SAMPLE_EVERY, IngressMetrics, start_flushing
from deployments.serve.personal import (
    SeenFollower,
    explanation,
    follow_seen,
    log_request,
    request_rules,
    served_list,
)
from deployments.serve.personal import request_id as new_request_id
from deployments.serve.replica import (
    flush_logs,
    load_catalog,
    pseudonymizer,
    report_degraded,
    result_codec,
)
from deployments.tracing import configure as configure_tracing
from deployments.tracing import node_spans, record_served
from models.errors import InputError, describe_error

__all__ = ["Ingress", "api"]

logger = logging.getLogger("ray.serve")


# Helpers sit above the deployment class (or in other modules): Serve serialises
# the class when it is decorated, so names defined below it would be missing inside
# replicas.
async def _housekeeping(ingress: "Ingress", period_s: float) -> None:
    """Every ``period_s``: flush logs (served variants stay at most that far behind),
    sample the in-flight gauges, follow staged experiments and fetch the online
    learning state."""
    while True:
        await asyncio.sleep(period_s)
        flush_logs()
        ingress.metrics.in_flight.set(ingress.gate.in_flight)
        for name, remote in ingress.models.remote.items():
            ingress.metrics.model_calls_in_flight.set(remote.in_flight, tags={"model": name})
        if ingress.events is not None:
            ingress.metrics.served_buffer_bytes.set(ingress.events.buffered_bytes)
        for name, adapter in ingress.models.live_adapters().items():
            if (age := getattr(adapter, "age_s", None)) is not None and age() is not None:
                ingress.metrics.precomputed_age.set(age(), tags={"model": name})
        if ingress.events is not None:
            await follow_stages(ingress.events, ingress.plans)
        # Only `bandit` and `fresh` nodes read the online state: no fetch without one.
        if ingress.events is not None and any(p.live for p in ingress.plans.values()):
            try:
                ingress.online = await ingress.events.online_snapshot()
            except Exception as exc:  # noqa: BLE001 - keep the last snapshot
                logger.warning("online state not refreshed: %s", exc)


api = FastAPI(
    title="blendserve",
    description=(
        "Blended recommendations and model predictions from one ingress. Every route "
        "but the health probes needs an API key (`Authorization: Bearer <key>` or "
        "`X-API-Key`) with the route's scope: `infer` or `admin`."
    ),
    version="0.1.0",
)
install_error_handlers(api)
api.add_middleware(EdgeMiddleware)
api.include_router(catalog_router)
api.include_router(oip_router)
api.include_router(demo_router)
api.include_router(admin_router)
api.include_router(feedback_router)


@serve.deployment(max_ongoing_requests=256)
@serve.ingress(api)
class Ingress:
    """Routes, validation and the blending DAG, in one process."""

    def __init__(
        self,
        args: dict[str, Any],
        handles: dict[str, DeploymentHandle[Any]],
        event_log: DeploymentHandle[Any] | None = None,
        catalog: DeploymentHandle[Any] | None = None,
    ) -> None:
        self.config = parse_app_args(args)
        configure_tracing(self.config.tracing, INGRESS_DEPLOYMENT)
        events = self.config.events
        self.events = None
        if event_log is not None and events is not None:
            buffer_bytes = int(events.served_buffer_mb * (1 << 20))
            self.events = EventClient(event_log, buffer_bytes=buffer_bytes)
        live = self.config.live_catalog
        self.catalog_client = (
            CatalogClient(catalog, live.poll_interval_s, self.config.catalog_attributes)
            if catalog is not None and live is not None
            else None
        )
        self.unknown_model_items: dict[str, UnknownItems] = {}
        self.online: OnlineSnapshot | None = None
        self.seen: SeenFollower | None = None
        self.attribute_kinds = self.config.attribute_kinds()
        """What users saw and did, once a use case asks for ``seen``."""
        self.pseudonym = pseudonymizer()
        self.metrics = IngressMetrics()
        self._blends = itertools.count()
        """Recommendations answered: node latencies are recorded for one in a few."""
        start_flushing()
        self.models = build_gateway(self.config, handles, self.metrics.rollouts)
        self.catalog: ItemCatalog | None = (
            self.catalog_client.live if self.catalog_client else load_catalog(self.config)
        )
        # Item ids as indices: the catalogue's table, or one of this replica's own.
        self.items = self.catalog.table if self.catalog is not None else ItemTable()
        self.result_ids = result_codec()
        self.plans: dict[str, BlendPlan] = {}
        self._housekeeper: asyncio.Task[None] | None = None
        self.gate = Gatekeeper(self.config.ingress, KeyRing.from_env(), self.metrics)
        if self.gate.keys_missing:
            logger.error(
                "no API keys configured ($BLENDSERVE_API_KEYS_FILE, $BLENDSERVE_API_KEYS): "
                "every route but the health probes answers 401"
            )
        # Models and tables loaded above live as long as the replica: moving them out
        # of the collector's sight halves the time a blend spends in garbage
        # collection (measured: 2.4 -> 1.2 ms per `discover` request in process).
        gc.freeze()

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Swap in new inline model versions (each loaded and smoke-tested beside the
        serving one first), then the new use cases, atomically; requests in flight finish
        on the plans they started with."""
        live = parse_live_config(user_config, self.models.names(), args=self.config)
        await self.models.apply_versions(live)
        if self._housekeeper is None:
            self._housekeeper = asyncio.ensure_future(_housekeeping(self, 1.0))
        if self.catalog_client is not None and not self.catalog_client.synced:
            # The first full copy of the catalogue, before this replica takes traffic.
            await self.catalog_client.sync()
            self.catalog_client.start()
            self.unknown_model_items = await unknown_model_items(
                self.models, self.catalog_client.live
            )
        gc.freeze()
        plans = {name: BlendPlan(name, spec) for name, spec in live.use_cases.items()}
        check_node_models(plans, self.models)
        if self.events is not None and self.config.events is not None:
            self.seen = await follow_seen(
                self.seen, plans, self.items, self.events, self.config.events
            )
        self.plans = plans
        experiments = {
            f"{use_case}.{node}": {arm: spec.weight for arm, spec in exp.arms.items()}
            for use_case, plan in plans.items()
            for node, exp in plan.spec.nodes.items()
            if exp.kind == "experiment"
        }
        logger.info("use cases %s loaded; experiment splits %s", sorted(plans), experiments)

    @api.get("/healthz", summary="Liveness: the ingress process answers.")
    async def healthz(self) -> dict[str, str]:
        """Always ``ok`` while the process runs."""
        return {"status": "ok"}

    @api.get(
        "/readyz",
        summary="Readiness: every model of the app answers.",
        responses={503: {"description": "Not ready: `not_ready` names what and why."}},
    )
    async def readyz(self) -> JSONResponse:
        """200 when every model answers its readiness probe, else 503 naming the ones that
        do not, and which use cases they degrade (those still answer without them)."""
        described = await self._describe_models()
        broken = {
            n: describe_error(r) for n, r in described.items() if isinstance(r, BaseException)
        }
        not_ready = {f"model:{n}": reason for n, reason in broken.items()}
        if not self.plans:
            not_ready["use_cases"] = "none configured (the Ingress user_config has none yet)"
        if self.gate.keys_missing:
            not_ready["api_keys"] = "none configured: every API route answers 401"
        if not_ready:
            degraded = {
                use_case: sorted(plan.spec.models() & broken.keys())
                for use_case, plan in self.plans.items()
                if plan.spec.models() & broken.keys()
            }
            body = {"ready": False, "not_ready": not_ready, "degraded_use_cases": degraded}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"ready": True, "models": list(described)})

    @api.post(
        "/v1/recommend/{use_case}",
        response_model=RecommendResponse,
        summary="Blended, filtered top-k items for a user, with provenance.",
        dependencies=[require("infer")],
        responses=INFER_ERRORS,
        openapi_extra=model_body(RecommendRequest),
    )
    async def recommend(self, use_case: str, http: Request) -> Response:
        """Run the use case's DAG for one user, by the use case's latency budget."""
        return await self.recommend_bytes(use_case, await http.body(), time.monotonic())

    async def recommend_bytes(
        self, use_case: str, body: bytes, started: float, explain: bool = False
    ) -> Response:
        """``POST /v1/recommend/{use_case}`` from its body's bytes (the edge calls this
        directly; ``started`` is when the request arrived, a ``time.monotonic()``;
        ``explain``: an admin asked for the explanation inline)."""
        if self._housekeeper is None:  # started here: the constructor may have no loop
            self._housekeeper = asyncio.ensure_future(_housekeeping(self, 1.0))
        plan = self.plans.get(use_case)
        if plan is None:
            raise NotFound("use case", use_case, sorted(self.plans))
        began = time.perf_counter()
        request = parse_bytes(body, RecommendRequest)
        parsed = time.perf_counter()
        if request.k > self.config.ingress.max_k:
            raise InputError("k", f"must be <= {self.config.ingress.max_k}, got {request.k}")
        if len(request.exclude) > self.config.ingress.max_exclude:
            raise InputError("exclude", f"at most {self.config.ingress.max_exclude} items allowed")
        if self.events is not None and not self.events.has_room():
            # Serving a list that could not be logged would corrupt every experiment
            # and report built on the log: refuse until the event log catches up.
            self.metrics.rejected.inc(tags={"reason": "event_log_backlog"})
            raise ApiError(503, "event_log_backlog", self.events.backlog(), {"Retry-After": "1"})
        rules = request_rules(plan.spec, request, self.catalog, self.attribute_kinds)
        user = self.pseudonym(request.user_id) if self.events is not None else ""
        seen_spec = plan.spec.seen
        seen = self.seen.seen(user, seen_spec) if self.seen and seen_spec else None
        request_id = new_request_id()
        ctx = BlendContext(
            request.user_id,
            request.k,
            frozenset(request.exclude),
            request.context,
            request_id,
            self.catalog,
            online=self.online,
            table=self.items,
            now=time.time(),
            rules=rules,
            seen=seen,
            spans=node_spans(),
        )
        outcome = await plan.run(ctx, self.models, started)
        blended = time.perf_counter()
        self._observe(use_case, plan, outcome, started)
        if outcome.degraded:
            report_degraded(self.metrics, use_case, request_id, outcome)
        latency_ms = (time.monotonic() - started) * 1000.0
        record, inputs = served_list(request_id, user, request, plan, ctx, outcome, latency_ms)
        record_served(
            use_case, plan.version, outcome.variant, outcome.model_versions, outcome.degraded
        )
        if outcome.answered == 0 and outcome.degraded:
            log_request(self.config.ingress.request_log, record, inputs, 503)
            failed = error_body("unavailable", "every source failed", None, failed=outcome.failures)
            return JSONResponse(failed, status_code=503, headers={"Retry-After": "1"})
        log_request(self.config.ingress.request_log, record, inputs, 200)
        unit = user_unit(user) if outcome.variant else None  # experiments cluster on it
        served = ResultRef(
            request_id, use_case, 0, "", int(time.time()), outcome.variant, unit=unit
        )
        logged = time.perf_counter()
        if self.events is not None:
            self.events.served(record)
        answering = time.perf_counter()
        answer = RecommendAnswer(
            request_id=request_id,
            use_case=use_case,
            items=[
                item_answer(self.result_ids, served, position, candidate)
                for position, candidate in enumerate(outcome.items, start=1)
            ],
            model_versions=dict(outcome.model_versions),
            variant=dict(outcome.variant) or None,
            degraded=outcome.degraded,
            explain=explanation(record, inputs) if explain else None,
        )
        response = json_response(answer)
        stages = {
            "parse": parsed - began,
            "blend": blended - parsed,
            "log": answering - logged,
            "answer": time.perf_counter() - answering,
        }
        # Summed in a counter, not a histogram: four records per request cost nothing.
        for stage, seconds in stages.items():
            self.metrics.stage_time.inc(
                seconds * 1000.0, tags={"use_case": use_case, "stage": stage}
            )
        return response

    @api.post(
        "/v1/predict/{model}",
        response_model=PredictResponse,
        summary="Predictions of one hosted model for a batch of instances.",
        dependencies=[require("infer")],
        responses=INFER_ERRORS,
        openapi_extra=model_body(PredictRequest),
    )
    async def predict(self, model: str, http: Request) -> Response:
        """Call one model directly, in process or in its deployment."""
        return await self.predict_bytes(model, await http.body())

    async def predict_bytes(self, model: str, body: bytes) -> Response:
        """``POST /v1/predict/{model}`` from its body's bytes (the edge calls this directly)."""
        if model not in self.config.models:
            raise NotFound("model", model, sorted(self.config.models))
        request = parse_bytes(body, PredictRequest)
        if len(request.instances) > self.config.ingress.max_instances:
            raise InputError("instances", f"at most {self.config.ingress.max_instances} allowed")
        result = await self.models.predict_any(model, request.instances)
        return json_response(PredictAnswer(model, result.version, result.predictions))

    async def _describe_models(self) -> dict[str, dict[str, Any] | BaseException]:
        names = self.models.names()
        results = await asyncio.gather(
            *(self.models.describe(n) for n in names), return_exceptions=True
        )
        return dict(zip(names, results, strict=True))

    def _observe(
        self, use_case: str, plan: BlendPlan, outcome: BlendOutcome, started: float
    ) -> None:
        """Record the blend's latency, per node too (a sample), and whether it missed
        its budget."""
        elapsed_ms = (time.monotonic() - started) * 1000.0
        tags = {"use_case": use_case}
        self.metrics.recommend_latency.observe(elapsed_ms, tags=tags)
        if next(self._blends) % NODE_LATENCY_SAMPLE_EVERY == 0:
            for node, node_ms in outcome.node_ms.items():
                node_tags = {"use_case": use_case, "node": node}
                self.metrics.node_latency.observe(node_ms, tags=node_tags)
        if elapsed_ms > plan.spec.budget_ms:
            self.metrics.deadline_missed.inc(tags=tags)
        if outcome.degraded:
            self.metrics.degraded_responses.inc(tags=tags)
        if outcome.explored:
            self.metrics.explored_positions.inc(len(outcome.explored), tags=tags)
