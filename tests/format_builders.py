"""Builders for the ``onnx`` and ``http`` formats: tiny ONNX graphs published into an
artifact store, and a tiny legacy REST service on 127.0.0.1 in a background thread."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from models.store import ArtifactStore, Manifest

ONNX_ITEMS = [f"i{n}" for n in range(6)]
ONNX_USERS = ["alice", "bob", "carol"]
REGRESSOR_FEATURES = ["affinity", "freshness"]

# An opset and IR version every onnxruntime >= 1.16 reads.
_OPSET, _IR_VERSION = 17, 8


def _save_graph(
    path: Path,
    nodes: list[Any],
    inputs: list[Any],
    outputs: list[Any],
    initializers: Mapping[str, np.ndarray],
) -> None:
    import onnx
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        nodes,
        "tiny",
        inputs,
        outputs,
        initializer=[numpy_helper.from_array(v, name=k) for k, v in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def publish_tiny_onnx_mf(
    store: ArtifactStore,
    tmp: Path,
    name: str = "onnx-mf",
    version: str = "1",
    items: Sequence[str] = ONNX_ITEMS,
) -> Manifest:
    """The tiny MF of ``builders.publish_tiny_mf`` as an ONNX graph (Gather, MatMul).

    alice likes i0 most, bob likes i5 most; cold users like i2. ``items`` overrides
    the catalogue written to ``ids.json`` (a wrong length gives scores that do not fit).
    """
    from onnx import TensorProto, helper

    users = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.3, 0.3]], dtype=np.float32)
    item_vectors = np.array(
        [[5.0, 0.0], [4.0, 1.0], [3.0, 3.0], [1.0, 2.0], [0.0, 4.0], [0.0, 5.0]], dtype=np.float32
    )
    _save_graph(
        tmp / "model.onnx",
        [
            helper.make_node("Gather", ["user_vectors", "user_index"], ["taste"], axis=0),
            helper.make_node("MatMul", ["taste", "item_vectors_t"], ["scores"]),
        ],
        [helper.make_tensor_value_info("user_index", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 6])],
        {"user_vectors": users, "item_vectors_t": item_vectors.T.copy()},
    )
    (tmp / "ids.json").write_text(json.dumps({"users": ONNX_USERS, "items": list(items)}))
    files = {"model.onnx": tmp / "model.onnx", "ids.json": tmp / "ids.json"}
    return store.publish(name, version, "onnx", files)


def publish_tiny_onnx_regressor(
    store: ArtifactStore,
    tmp: Path,
    name: str = "onnx-reg",
    version: str = "1",
    declared_width: int | str = 2,
    extra: Mapping[str, Any] | None = None,
) -> Manifest:
    """``y = 2 * affinity + 3 * freshness + 1`` (MatMul, Add), ``float32[B, 2] -> [B, 1]``.

    ``declared_width`` is the input width the graph declares (a name makes it dynamic);
    the manifest names the features unless ``extra`` replaces it.
    """
    from onnx import TensorProto, helper

    _save_graph(
        tmp / "model.onnx",
        [
            helper.make_node("MatMul", ["features", "weights"], ["product"]),
            helper.make_node("Add", ["product", "bias"], ["y"]),
        ],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", declared_width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        {
            "weights": np.array([[2.0], [3.0]], dtype=np.float32),
            "bias": np.array([1.0], dtype=np.float32),
        },
    )
    if extra is None:
        extra = {"feature_names": REGRESSOR_FEATURES, "n_features": 2}
    return store.publish(name, version, "onnx", {"model.onnx": tmp / "model.onnx"}, extra=extra)


def publish_http_endpoint(
    store: ArtifactStore,
    tmp: Path,
    endpoint: Mapping[str, Any],
    name: str = "legacy",
    version: str = "1",
    example_instances: list[Any] | None = None,
) -> Manifest:
    """An ``http`` model: ``endpoint.json`` holding ``endpoint``."""
    (tmp / "endpoint.json").write_text(json.dumps(dict(endpoint)))
    extra = {"example_instances": example_instances} if example_instances else None
    return store.publish(
        name, version, "http", {"endpoint.json": tmp / "endpoint.json"}, extra=extra
    )


LEGACY_TOKEN = "Bearer s3cret"
"""The ``Authorization`` header ``/secure/predict`` of the legacy service wants."""

SLOW_ANSWER_S = 1.0
"""How long ``/slow`` of the legacy service waits before it answers."""


@dataclass
class LegacyService:
    """A running legacy REST service; ``requests`` holds every (path, headers, body)."""

    base_url: str
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)

    def url(self, path: str) -> str:
        """The full URL of ``path`` on this service."""
        return f"{self.base_url}{path}"


def _v1_prediction(instance: Any) -> Any:
    """``/v1/predict``: the sum of a numeric row, the length of a string."""
    return len(instance) if isinstance(instance, str) else sum(instance)


def _v2_answer(body: dict[str, Any]) -> dict[str, Any]:
    """``/v2/infer``: FP32 ``[B, F]`` -> row sums ``[B]``; BYTES ``[B]`` ->
    ``[B, 2]`` (length, count of ``a``)."""
    (tensor,) = body["inputs"]
    if tensor["datatype"] == "BYTES":
        data = [[len(s), s.count("a")] for s in tensor["data"]]
        shape, datatype = [len(data), 2], "INT64"
    else:
        rows = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        data, shape, datatype = rows.sum(axis=1).tolist(), [len(rows)], "FP32"
    flat = np.asarray(data).reshape(-1).tolist()
    return {"outputs": [{"name": "output", "shape": shape, "datatype": datatype, "data": flat}]}


def _recommendations(body: dict[str, Any]) -> dict[str, Any]:
    """``/v1/recommend``: alice likes a, b, c; anyone else c, b, a; ``context.boost``
    goes first."""
    predictions = []
    for instance in body["instances"]:
        items = ["a", "b", "c"] if instance["user_id"] == "alice" else ["c", "b", "a"]
        boost = instance.get("context", {}).get("boost")
        if boost:
            items = [boost, *[i for i in items if i != boost]]
        items = items[: instance["n"]]
        predictions.append({"items": items, "scores": [3.0 - k for k in range(len(items))]})
    return {"predictions": predictions}


class _LegacyHandler(BaseHTTPRequestHandler):
    """The routes of :class:`LegacyService`."""

    server: _LegacyServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: test output is for the tests."""

    def _answer(self, status: int, body: Any) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nobody is left to answer

    def do_POST(self) -> None:
        """Route one POST."""
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
        self.server.service.requests.append((self.path, dict(self.headers.items()), body))
        if self.path == "/v1/predict":
            self._answer(200, {"predictions": [_v1_prediction(i) for i in body["instances"]]})
        elif self.path == "/v2/infer":
            self._answer(200, _v2_answer(body))
        elif self.path == "/v1/recommend":
            self._answer(200, _recommendations(body))
        elif self.path == "/v1/recommend-nan":
            self._answer(200, b'{"predictions": [{"items": ["a"], "scores": [NaN]}]}')
        elif self.path == "/slow":
            time.sleep(SLOW_ANSWER_S)
            self._answer(200, {"predictions": [0 for _ in body["instances"]]})
        elif self.path == "/broken":
            self._answer(500, b"legacy service exploded")
        elif self.path == "/garbage":
            self._answer(200, b"<html>not json</html>")
        elif self.path == "/short":
            self._answer(200, {"predictions": [1]})
        elif self.path == "/secure/predict":
            if self.headers.get("Authorization") != LEGACY_TOKEN:
                self._answer(401, b"missing or wrong token")
            else:
                self._answer(200, {"predictions": ["ok" for _ in body["instances"]]})
        else:
            self._answer(404, b"no such route")


class _LegacyServer(ThreadingHTTPServer):
    """A threading server (daemon handler threads: a sleeping ``/slow`` never holds up
    shutdown) that knows its :class:`LegacyService`."""

    def __init__(self, service: LegacyService) -> None:
        super().__init__(("127.0.0.1", 0), _LegacyHandler)
        self.service = service


@contextmanager
def legacy_service() -> Iterator[LegacyService]:
    """Run the legacy service on 127.0.0.1 and a free port for the ``with`` block."""
    service = LegacyService("")
    server = _LegacyServer(service)
    service.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll interval: shutdown() waits for the loop's next look at its flag.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="legacy", daemon=True
    )
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url(path: str = "/v1/predict") -> str:
    """A URL on 127.0.0.1 where nothing listens (a port bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
