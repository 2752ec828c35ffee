"""The HTTP ingress: validates requests, runs the blending DAG in its own process.

Cheap models are loaded inline so a recommendation costs no deployment hop; heavy
models are reached through handles, concurrently and by deadline. One failing
source degrades the answer instead of failing it.
"""

# No `from __future__ import annotations`: Serve copies these methods into a new
# class and FastAPI must see real annotations to read bodies.

import asyncio
import logging
import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.serve.metrics import Counter

from blending.candidates import BlendContext, SourceResult
from blending.dag import BlendOutcome, BlendPlan
from deployments.config import parse_app_config, resolve_store
from deployments.http_errors import NotFound, error_body, install_error_handlers
from deployments.schemas import (
    PredictRequest,
    PredictResponse,
    RecommendRequest,
    RecommendResponse,
)
from deployments.sources import InlineModel, RemoteModel
from models.base import RecommendQuery
from models.errors import InputError
from models.registry import load_model
from models.store import ArtifactStore

__all__ = ["Ingress", "api"]

logger = logging.getLogger("ray.serve")


# Helpers sit above the deployment class: Serve serialises the class when it is
# decorated, so names defined below it would be missing inside replicas.
def _describe_failure(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".rstrip(": ")


api = FastAPI(
    title="blendserve",
    description="Blended recommendations and model predictions from one ingress.",
    version="0.1.0",
)
install_error_handlers(api)


@serve.deployment(max_ongoing_requests=256)
@serve.ingress(api)
class Ingress:
    """Routes, validation and the blending DAG, in one process."""

    def __init__(self, args: dict[str, Any], handles: dict[str, DeploymentHandle[Any]]) -> None:
        self.config = parse_app_config(args)
        store = ArtifactStore(resolve_store(self.config.store))
        self.models: dict[str, InlineModel | RemoteModel] = {}
        for name, spec in self.config.models.items():
            if spec.placement == "deployment":
                self.models[name] = RemoteModel(name, handles[name], spec.timeout_s)
            else:
                self.models[name] = InlineModel(load_model(store, name, spec.version, spec.options))
        self.plans = {name: BlendPlan(name, spec) for name, spec in self.config.use_cases.items()}
        self.degraded_sources = Counter(
            "blendserve_degraded_sources_total",
            description="Source answers left out of a blend because they failed or were late.",
            tag_keys=("use_case", "source"),  # type: ignore[arg-type]
        )

    @api.get("/healthz", summary="Liveness: the ingress process answers.")
    async def healthz(self) -> dict[str, str]:
        """Always ``ok`` while the process runs."""
        return {"status": "ok"}

    @api.get("/readyz", summary="Readiness: every model of the app answers.")
    async def readyz(self) -> JSONResponse:
        """200 when every model deployment answers its readiness probe, else 503 naming them."""
        described = await self._describe_models()
        not_ready = {
            f"model:{n}": _describe_failure(r)
            for n, r in described.items()
            if isinstance(r, BaseException)
        }
        if not_ready:
            return JSONResponse({"ready": False, "not_ready": not_ready}, status_code=503)
        return JSONResponse({"ready": True, "models": list(described)})

    @api.get("/v1/models", summary="Every hosted model, its version and placement.")
    async def list_models(self) -> dict[str, Any]:
        """What each model reports about itself, or why it cannot."""
        described = await self._describe_models()
        return {
            "models": {
                n: ({"error": _describe_failure(r)} if isinstance(r, BaseException) else r)
                for n, r in described.items()
            }
        }

    @api.post(
        "/v1/recommend/{use_case}",
        response_model=RecommendResponse,
        summary="Blended, filtered top-k items for a user, with provenance.",
    )
    async def recommend(self, use_case: str, request: RecommendRequest) -> Any:
        """Run the use case's DAG for one user."""
        plan = self.plans.get(use_case)
        if plan is None:
            raise NotFound("use case", use_case, sorted(self.plans))
        if request.k > self.config.ingress.max_k:
            raise InputError("k", f"must be <= {self.config.ingress.max_k}, got {request.k}")
        if len(request.exclude) > self.config.ingress.max_exclude:
            raise InputError("exclude", f"at most {self.config.ingress.max_exclude} items allowed")
        query = RecommendQuery(request.user_id, request.context)
        answers = await self._fetch_sources(plan, query)
        ctx = BlendContext(request.user_id, request.k, frozenset(request.exclude), request.context)
        outcome = plan.run(answers, ctx)
        if outcome.degraded:
            self._report_degraded(use_case, outcome)
            if not any(isinstance(a, SourceResult) for a in answers.values()):
                body = error_body(
                    "unavailable", "every source failed", None, failed=outcome.failed_sources
                )
                return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
        return {
            "request_id": uuid.uuid4().hex,
            "use_case": use_case,
            "items": [
                {
                    "item_id": c.item_id,
                    "score": c.score,
                    "pinned": c.pinned,
                    "components": [comp.to_json() for comp in c.components],
                }
                for c in outcome.items
            ],
            "model_versions": outcome.model_versions,
            "degraded": outcome.degraded,
        }

    @api.post(
        "/v1/predict/{model}",
        response_model=PredictResponse,
        summary="Predictions of one hosted model for a batch of instances.",
    )
    async def predict(self, model: str, request: PredictRequest) -> Any:
        """Call one model directly, in process or in its deployment."""
        hosted = self.models.get(model)
        if hosted is None:
            raise NotFound("model", model, sorted(self.models))
        if len(request.instances) > self.config.ingress.max_instances:
            raise InputError("instances", f"at most {self.config.ingress.max_instances} allowed")
        result = await hosted.predict(request.instances)
        return {"model": model, "version": result["version"], "predictions": result["predictions"]}

    async def _describe_models(self) -> dict[str, dict[str, Any] | BaseException]:
        names = list(self.models)
        results = await asyncio.gather(
            *(self.models[n].describe() for n in names), return_exceptions=True
        )
        return dict(zip(names, results, strict=True))

    async def _fetch_sources(
        self, plan: BlendPlan, query: RecommendQuery
    ) -> dict[str, SourceResult | BaseException]:
        # Remote calls start first so they run while the inline models compute.
        pending: dict[str, asyncio.Task[SourceResult]] = {}
        answers: dict[str, SourceResult | BaseException] = {}
        for node_name, node in plan.sources.items():
            hosted = self.models[node.model]
            if isinstance(hosted, RemoteModel):
                pending[node_name] = asyncio.ensure_future(hosted.recommend(query, node.candidates))
        for node_name, node in plan.sources.items():
            hosted = self.models[node.model]
            if isinstance(hosted, InlineModel):
                try:
                    answers[node_name] = hosted.recommend(query, node.candidates)
                except Exception as exc:  # noqa: BLE001 - one failing model must not fail the blend
                    answers[node_name] = exc
        if pending:
            results = await asyncio.gather(*pending.values(), return_exceptions=True)
            answers.update(zip(pending, results, strict=True))
        return answers

    def _report_degraded(self, use_case: str, outcome: BlendOutcome) -> None:
        for source, reason in outcome.failed_sources.items():
            self.degraded_sources.inc(tags={"use_case": use_case, "source": source})
            logger.warning("use case %s: source %s left out: %s", use_case, source, reason)
        # Throughput mode buffers replica logs (up to 1000 records, flushed on ERROR);
        # a degradation must reach the log now, and it is rare enough to pay a flush.
        for handler in logger.handlers:
            handler.flush()
