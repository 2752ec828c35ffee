"""The Open Inference Protocol's binary tensor data extension, both ways.

Triton's and KServe's clients send tensors as raw bytes by default: the body is the
JSON request (its length in the ``Inference-Header-Content-Length`` header)
followed by each binary input's bytes, in input order; such an input names its
size in ``parameters.binary_data_size`` instead of carrying ``data``. Numbers are
little-endian in row-major order; a ``BYTES`` element is a 4-byte little-endian
length and that many bytes.

A request asks for binary outputs with ``parameters.binary_data_output`` or an
output's ``parameters.binary_data``; the answer is then laid out the same way.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from deployments.api.oip_types import NUMPY_TYPES, OipError
from deployments.json_types import JsonObject

__all__ = [
    "HEADER_LENGTH",
    "binary_reply",
    "decode_bytes_tensor",
    "split_body",
    "wants_binary_output",
]

HEADER_LENGTH = "inference-header-content-length"
"""The header that gives the JSON part's length in bytes."""


def split_body(raw: bytes, header_length: str | None) -> tuple[Any, bytes]:
    """The JSON request and the binary data after it (empty without the header)."""
    if header_length is None:
        head, rest = raw, b""
    else:
        try:
            size = int(header_length)
        except ValueError:
            raise OipError(
                f"{HEADER_LENGTH}: expected a byte count, got {header_length!r}"
            ) from None
        if not 0 <= size <= len(raw):
            raise OipError(f"{HEADER_LENGTH}: {size} is not within the body's {len(raw)} bytes")
        head, rest = raw[:size], raw[size:]
    try:
        return json.loads(head), rest
    except (ValueError, UnicodeDecodeError):
        raise OipError("the body is not JSON") from None


def decode_bytes_tensor(chunk: bytes, where: str) -> list[str]:
    """A ``BYTES`` tensor's elements: each a 4-byte little-endian length, then the bytes
    (decoded as UTF-8: the models take ids and text)."""
    values: list[str] = []
    at = 0
    while at < len(chunk):
        if at + 4 > len(chunk):
            raise OipError(f"{where}: a BYTES element's length is cut short")
        (size,) = struct.unpack_from("<I", chunk, at)
        at += 4
        if at + size > len(chunk):
            raise OipError(f"{where}: a BYTES element says {size} bytes, fewer remain")
        try:
            values.append(chunk[at : at + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise OipError(f"{where}: a BYTES element is not UTF-8") from None
        at += size
    return values


def decode_numbers(chunk: bytes, datatype: str, where: str) -> np.ndarray:
    """A numeric tensor's elements from little-endian bytes."""
    dtype = np.dtype(NUMPY_TYPES[datatype]).newbyteorder("<")
    if len(chunk) % dtype.itemsize:
        raise OipError(f"{where}: {len(chunk)} bytes are not whole {datatype} values")
    return np.frombuffer(chunk, dtype=dtype)


def wants_binary_output(parameters: JsonObject | None, outputs: list[JsonObject] | None) -> bool:
    """Whether the request asks for its output tensor as binary data."""
    if parameters and parameters.get("binary_data_output") is True:
        return True
    for output in outputs or []:
        wanted = output.get("parameters")
        if isinstance(wanted, dict) and wanted.get("binary_data") is True:
            return True
    return False


def _encode(values: list[Any], datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for value in values:
            data = value.encode("utf-8")
            parts.append(struct.pack("<I", len(data)) + data)
        return b"".join(parts)
    return np.asarray(values, dtype=np.dtype(NUMPY_TYPES[datatype]).newbyteorder("<")).tobytes()


def binary_reply(reply: JsonObject) -> tuple[bytes, int]:
    """``reply`` (an ``infer_response``) with its outputs moved out as binary data: the
    body, and the length of its JSON part."""
    outputs: list[JsonObject] = []
    blobs: list[bytes] = []
    for output in reply["outputs"]:  # type: ignore[union-attr]
        assert isinstance(output, dict)
        data = output["data"]
        assert isinstance(data, list)
        blob = _encode(data, str(output["datatype"]))
        blobs.append(blob)
        moved = {k: v for k, v in output.items() if k != "data"}
        moved["parameters"] = {"binary_data_size": len(blob)}
        outputs.append(moved)
    head = json.dumps({**reply, "outputs": outputs}, separators=(",", ":")).encode()
    return head + b"".join(blobs), len(head)
