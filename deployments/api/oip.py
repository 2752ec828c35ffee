"""Open Inference Protocol (v2) JSON tensors: parse an ``infer`` request, shape a reply.

Plain Python (no Ray), so it is unit-tested on its own; the ingress routes
``POST /v2/models/{name}/infer`` through it. Errors are ``OipError`` with the
protocol's ``{"error": "..."}`` body.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deployments.json_types import JsonObject

__all__ = ["InferRequest", "OipError", "infer_response", "parse_infer_request"]

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip
_NUMPY: dict[str, type[np.generic]] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


class OipError(ValueError):
    """A request the protocol rejects; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class InputTensor(BaseModel):
    """One named input tensor: shape, datatype and its data (flat or nested)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    shape: list[int] = Field(min_length=1, max_length=8)
    datatype: Datatype
    data: list[Any]
    parameters: JsonObject | None = None


class InferRequest(BaseModel):
    """The body of ``POST /v2/models/{name}/infer``."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, max_length=256)
    inputs: list[InputTensor] = Field(min_length=1, max_length=256)
    outputs: list[JsonObject] | None = None
    parameters: JsonObject | None = None


def _as_array(tensor: InputTensor, where: str) -> np.ndarray:
    if any(d < 0 for d in tensor.shape):
        raise OipError(f"{where}: shape {tensor.shape} has a negative dimension")
    if tensor.datatype == "BYTES":
        values = np.asarray(tensor.data, dtype=object).reshape(-1)
    else:
        try:
            values = np.asarray(tensor.data, dtype=_NUMPY[tensor.datatype]).reshape(-1)
        except (TypeError, ValueError, OverflowError) as exc:
            raise OipError(f"{where}: data is not {tensor.datatype}: {exc}") from None
    if values.size != math.prod(tensor.shape):
        raise OipError(
            f"{where}: shape {tensor.shape} needs {math.prod(tensor.shape)} values, "
            f"data has {values.size}"
        )
    return values.reshape(tensor.shape)


def parse_infer_request(
    body: Any, feature_names: Sequence[str] | None, max_rows: int
) -> tuple[InferRequest, list[Any]]:
    """The request and its rows as a model's ``predict`` takes them.

    One input of shape ``[N, F]`` (or ``[N]``) gives N rows. Several inputs, each of
    shape ``[N]`` or ``[N, 1]`` and named after the model's features, are joined
    column-wise in the model's feature order.
    """
    try:
        request = InferRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(p) for p in first["loc"]) or "body"
        raise OipError(f"{location}: {first['msg']}") from None
    arrays = [_as_array(t, f"inputs.{i}") for i, t in enumerate(request.inputs)]
    if len(arrays) == 1:
        array = arrays[0]
        if request.inputs[0].datatype == "BYTES" and array.ndim == 1:
            rows = array.tolist()  # N strings are N instances (user or item ids)
        else:
            rows = array.reshape(array.shape[0], -1).tolist() if array.ndim else [[array.item()]]
    else:
        by_name = {
            t.name: a.reshape(a.shape[0], -1) for t, a in zip(request.inputs, arrays, strict=True)
        }
        if not feature_names or set(by_name) != set(feature_names):
            raise OipError(
                f"inputs: several tensors must be named after the model's features "
                f"{list(feature_names or [])}, got {sorted(by_name)}"
            )
        columns = [by_name[name] for name in feature_names]
        if len({c.shape for c in columns}) != 1 or columns[0].shape[1] != 1:
            raise OipError("inputs: per-feature tensors must all have shape [N] or [N, 1]")
        rows = np.hstack(columns).tolist()
    if len(rows) > max_rows:
        raise OipError(f"inputs: at most {max_rows} rows per request, got {len(rows)}")
    return request, rows


def infer_response(
    model: str, version: str, request: InferRequest, predictions: Sequence[Any]
) -> JsonObject:
    """The protocol's reply: one output tensor ``predict`` with one value per row."""
    values = list(predictions)
    if all(isinstance(v, bool) for v in values):
        datatype = "BOOL"
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        datatype = "INT64"
    elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        datatype, values = "FP64", [float(v) for v in values]
    else:
        datatype, values = "BYTES", [v if isinstance(v, str) else str(v) for v in values]
    reply: JsonObject = {
        "model_name": model,
        "model_version": version,
        "outputs": [
            {"name": "predict", "shape": [len(values)], "datatype": datatype, "data": values}
        ],
    }
    if request.id is not None:
        reply["id"] = request.id
    return reply
