"""The Open Inference Protocol (v2) routes, mounted on the ingress's API, so that
KServe's and Triton's HTTP clients call blendserve's models unchanged.

Server liveness and readiness are open, like the other health probes; model
metadata, model readiness and inference need an ``infer`` key. Errors have the
protocol's shape, ``{"error": "..."}``. The routes reach their replica's models
through the replica context, as the edge does.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures.

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from deployments.api.answers import json_response
from deployments.api.docs import OIP_ERRORS
from deployments.api.edge import require
from deployments.api.oip import OipError, infer_response, parse_infer_request
from deployments.api.oip_binary import HEADER_LENGTH, binary_reply, split_body, wants_binary_output
from deployments.api.state import IngressState, this_ingress
from deployments.json_types import JsonObject, JsonValue, json_objects
from models.errors import BlendserveError, InputError, VersionNotLoadedError, describe_error

__all__ = ["infer_bytes", "router"]

router = APIRouter()

_MODEL_ERRORS: dict[int | str, JsonObject] = {
    k: v for k, v in OIP_ERRORS.items() if k in (401, 403, 404, 429, 503)
}


def oip_error(message: str, status: int) -> JSONResponse:
    """The Open Inference Protocol's error body (a 503 says when to retry)."""
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


@router.get("/v2/health/live", summary="Open Inference Protocol: server liveness.")
async def oip_live() -> dict[str, bool]:
    """Always live while the process runs."""
    return {"live": True}


@router.get(
    "/v2/health/ready",
    summary="Open Inference Protocol: server readiness.",
    responses={503: {"description": "Not ready (see `/readyz` for why)."}},
)
async def oip_ready() -> JSONResponse:
    """Ready when every model answers (as ``/readyz``)."""
    ready = (await this_ingress().readyz()).status_code == 200
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


async def _status(model: str, version: str | None) -> JsonObject | JSONResponse:
    """The model's status, or the protocol's 404 for an unknown model or version."""
    ingress = this_ingress()
    if model not in ingress.config.models:
        known = sorted(ingress.config.models)
        return oip_error(f"unknown model {model!r} (expected one of {known})", 404)
    status: JsonObject = await ingress.models.status(model)
    served = _served_versions(status)
    if version is not None and version not in served:
        return oip_error(f"model {model!r} version {version!r} is not served ({served})", 404)
    return status


def _served_versions(status: JsonObject) -> list[str]:
    versions = json_objects(status.get("versions"))
    served = {str(v.get("version")) for v in versions if v.get("status") == "serving"}
    return sorted(served) or ([str(status["version"])] if "version" in status else [])


def _metadata(model: str, status: JsonObject) -> JsonObject:
    """Inputs and outputs as the protocol describes them."""
    if status.get("recommender"):
        # One string per instance: user ids for a recommender's predict (item ids for
        # popularity's); the answer per instance is JSON text.
        inputs: list[JsonValue] = [{"name": "input", "datatype": "BYTES", "shape": [-1]}]
        output = "BYTES"
    else:
        names = status.get("feature_names")
        width = status.get("n_features") or (len(names) if isinstance(names, list) else 0) or -1
        inputs = [{"name": "input", "datatype": "FP32", "shape": [-1, width]}]
        output = "FP64"
    versions: list[JsonValue] = list(_served_versions(status))
    return {
        "name": model,
        "versions": versions,
        "platform": f"blendserve-{status.get('format', 'unknown')}",
        "inputs": inputs,
        "outputs": [{"name": "predict", "datatype": output, "shape": [-1]}],
    }


@router.get(
    "/v2/models/{model}",
    summary="Open Inference Protocol: model metadata (inputs, outputs, versions).",
    dependencies=[require("infer")],
    responses=_MODEL_ERRORS,
)
async def oip_metadata(model: str) -> JSONResponse:
    """Name, served versions, platform (`blendserve-<format>`), input and output tensors."""
    status = await _status(model, None)
    return status if isinstance(status, JSONResponse) else JSONResponse(_metadata(model, status))


@router.get(
    "/v2/models/{model}/versions/{version}",
    summary="Open Inference Protocol: metadata of one served version.",
    dependencies=[require("infer")],
    responses=_MODEL_ERRORS,
)
async def oip_version_metadata(model: str, version: str) -> JSONResponse:
    """As ``/v2/models/{model}``; 404 unless ``version`` is served (live, canary or shadow)."""
    status = await _status(model, version)
    return status if isinstance(status, JSONResponse) else JSONResponse(_metadata(model, status))


async def _ready(model: str, version: str | None) -> JSONResponse:
    status = await _status(model, version)
    if isinstance(status, JSONResponse):
        return status
    ready = status.get("status") == "serving"
    return JSONResponse({"name": model, "ready": ready}, status_code=200 if ready else 503)


@router.get(
    "/v2/models/{model}/ready",
    summary="Open Inference Protocol: whether a model can answer.",
    dependencies=[require("infer")],
    responses=_MODEL_ERRORS,
)
async def oip_model_ready(model: str) -> JSONResponse:
    """200 with `ready: true` while a version serves, else 503."""
    return await _ready(model, None)


@router.get(
    "/v2/models/{model}/versions/{version}/ready",
    summary="Open Inference Protocol: whether one version can answer.",
    dependencies=[require("infer")],
    responses=_MODEL_ERRORS,
)
async def oip_version_ready(model: str, version: str) -> JSONResponse:
    """As ``/v2/models/{model}/ready`` for one served version."""
    return await _ready(model, version)


@router.post(
    "/v2/models/{model}/infer",
    summary="Open Inference Protocol: predictions from JSON tensors.",
    dependencies=[require("infer")],
    responses=OIP_ERRORS,
)
async def oip_infer(model: str, request: Request) -> Response:
    """Tensors in, one ``predict`` output tensor out; errors as ``{"error": ...}``.

    Tensors may also travel as binary data (the protocol's binary tensor extension,
    which Triton's clients use by default): the JSON request, its length in the
    `Inference-Header-Content-Length` header, then each binary input's bytes.
    Binary outputs are sent when the request asks for them.
    """
    return await _infer(model, None, request)


@router.post(
    "/v2/models/{model}/versions/{version}/infer",
    summary="Open Inference Protocol: predictions from one version of a model.",
    dependencies=[require("infer")],
    responses=OIP_ERRORS,
)
async def oip_infer_version(model: str, version: str, request: Request) -> Response:
    """As ``/v2/models/{model}/infer``, 404 unless ``version`` is served."""
    return await _infer(model, version, request)


async def _infer(model: str, version: str | None, request: Request) -> Response:
    raw = await request.body()
    return await infer_bytes(
        this_ingress(), model, version, raw, request.headers.get(HEADER_LENGTH)
    )


async def infer_bytes(
    ingress: IngressState, model: str, version: str | None, raw: bytes, header_length: str | None
) -> Response:
    """``POST /v2/models/{model}[/versions/{version}]/infer`` from its body's bytes and
    its ``Inference-Header-Content-Length`` (the edge calls this directly)."""
    if model not in ingress.config.models:
        known = sorted(ingress.config.models)
        return oip_error(f"unknown model {model!r} (expected one of {known})", 404)
    features = getattr(ingress.models.live_adapters().get(model), "feature_names", None)
    try:
        body, binary = split_body(raw, header_length)
        parsed, rows = parse_infer_request(
            body, features, ingress.config.ingress.max_instances, binary
        )
        result = await ingress.models.predict_any(model, rows, version)
    except VersionNotLoadedError as exc:
        return oip_error(describe_error(exc), 404)
    except OipError as exc:
        return oip_error(str(exc), exc.status)
    except InputError as exc:
        return oip_error(str(exc), 400)
    except TimeoutError as exc:
        return oip_error(str(exc), 504)
    except BlendserveError as exc:
        return oip_error(describe_error(exc), 503)
    reply = infer_response(model, result.version, parsed, result.predictions)
    if wants_binary_output(parsed.parameters, parsed.outputs):
        content, head = binary_reply(reply)
        return Response(
            content,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(head)},
        )
    return json_response(reply)
