"""Open Inference Protocol (v2) JSON tensors: parse an ``infer`` request, shape a reply.

Plain Python (no Ray), so it is unit-tested on its own; the ingress routes
``POST /v2/models/{name}/infer`` through it. Errors are ``OipError`` with the
protocol's ``{"error": "..."}`` body.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deployments.api.oip_binary import decode_bytes_tensor, decode_numbers
from deployments.api.oip_types import NUMPY_TYPES, Datatype, OipError
from deployments.json_types import JsonObject

__all__ = ["InferRequest", "OipError", "infer_response", "parse_infer_request"]


class InputTensor(BaseModel):
    """One named input tensor: shape, datatype and its data (flat or nested)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    shape: list[int] = Field(min_length=1, max_length=8)
    datatype: Datatype
    data: list[Any] | None = None
    """The values; ``None`` when they follow the JSON as binary data, whose size
    ``parameters.binary_data_size`` gives."""
    parameters: JsonObject | None = None


class InferRequest(BaseModel):
    """The body of ``POST /v2/models/{name}/infer``."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, max_length=256)
    inputs: list[InputTensor] = Field(min_length=1, max_length=256)
    outputs: list[JsonObject] | None = None
    parameters: JsonObject | None = None


class _BinaryData:
    """The binary part of a request body, read input by input."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, tensor: InputTensor, where: str) -> np.ndarray:
        size = (tensor.parameters or {}).get("binary_data_size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise OipError(f"{where}: expected `data` or parameters.binary_data_size")
        if self.at + size > len(self.data):
            raise OipError(
                f"{where}: binary_data_size {size} is past the body's binary part "
                f"({len(self.data) - self.at} bytes left)"
            )
        chunk = self.data[self.at : self.at + size]
        self.at += size
        if tensor.datatype == "BYTES":
            return np.asarray(decode_bytes_tensor(chunk, where), dtype=object)
        return decode_numbers(chunk, tensor.datatype, where)


def _as_array(tensor: InputTensor, where: str, binary: _BinaryData) -> np.ndarray:
    if any(d < 0 for d in tensor.shape):
        raise OipError(f"{where}: shape {tensor.shape} has a negative dimension")
    if tensor.data is None:
        values = binary.take(tensor, where)
    elif tensor.datatype == "BYTES":
        values = np.asarray(tensor.data, dtype=object).reshape(-1)
    else:
        try:
            values = np.asarray(tensor.data, dtype=NUMPY_TYPES[tensor.datatype]).reshape(-1)
        except (TypeError, ValueError, OverflowError) as exc:
            raise OipError(f"{where}: data is not {tensor.datatype}: {exc}") from None
    if values.size != math.prod(tensor.shape):
        raise OipError(
            f"{where}: shape {tensor.shape} needs {math.prod(tensor.shape)} values, "
            f"data has {values.size}"
        )
    return values.reshape(tensor.shape)


def parse_infer_request(
    body: Any, feature_names: Sequence[str] | None, max_rows: int, binary: bytes = b""
) -> tuple[InferRequest, list[Any]]:
    """The request and its rows as a model's ``predict`` takes them.

    ``binary`` is the body's binary part (``oip_binary.split_body``): the values of
    inputs that give ``parameters.binary_data_size`` instead of ``data``, in order.

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
    stream = _BinaryData(binary)
    arrays = [_as_array(t, f"inputs.{i}", stream) for i, t in enumerate(request.inputs)]
    if stream.at != len(binary):
        raise OipError(
            f"the body has {len(binary) - stream.at} bytes of binary data no input claims"
        )
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


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


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
        # Structured predictions (a recommender's items and scores) travel as JSON text.
        datatype, values = "BYTES", [v if isinstance(v, str) else _json(v) for v in values]
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
