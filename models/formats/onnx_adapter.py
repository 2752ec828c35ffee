"""ONNX models run with onnxruntime (``model.onnx``, optional ``ids.json``).

The two shapes of :mod:`models.formats.tensor_adapter`, exported to ONNX: a recommender
graph whose one input is ``int64[B]`` user indices and whose first output is float
scores ``[B, len(items)]``, or a tensor model with one ``float32[B, F]`` input and
one prediction per row in its first output. ``F`` comes from the manifest's
``extra.n_features``, else from the graph's declared input width. Input and output
names are read from the graph.

Options: ``device`` (``auto``, ``cpu``, ``cuda`` or ``cuda:N``; ``auto`` takes the
GPU only when onnxruntime offers ``CUDAExecutionProvider``), ``intra_op_threads``
(default 1, because replicas share a node's cores; 0 lets onnxruntime decide) and
``predict_top_n`` (items per user in a recommender's ``predict``, default 10).

onnxruntime is an optional dependency: ``pip install 'blendserve[onnx]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.errors import ModelError
from models.formats.tensor_adapter import TensorModelAdapter, count_option

__all__ = ["OnnxAdapter"]

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


def _onnxruntime() -> Any:
    """The onnxruntime module, imported on first load so the core never needs it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelError(
            "the onnx format needs onnxruntime: pip install 'blendserve[onnx]'"
        ) from exc
    return onnxruntime


def _providers(ort: Any, name: str, requested: Any) -> list[Any]:
    """The execution providers for ``device``: CUDA only when onnxruntime offers it."""
    has_cuda = _CUDA in ort.get_available_providers()
    if requested == "cpu" or (requested == "auto" and not has_cuda):
        return [_CPU]
    if requested == "auto":
        return [_CUDA, _CPU]
    if isinstance(requested, str) and (requested == "cuda" or requested.startswith("cuda:")):
        if not has_cuda:
            raise ModelError(
                f"model {name!r}: device {requested!r} requested but onnxruntime offers no "
                f"{_CUDA} (install onnxruntime-gpu on a GPU node)"
            )
        index = requested.partition(":")[2] or "0"
        if not index.isdigit():
            raise ModelError(f"model {name!r}: device: expected 'cuda:N', got {requested!r}")
        return [(_CUDA, {"device_id": int(index)}), _CPU]
    raise ModelError(
        f"model {name!r}: device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {requested!r}"
    )


class OnnxAdapter(TensorModelAdapter):
    """An ONNX graph in an onnxruntime session, on ``cuda`` when offered, else the CPU."""

    format = "onnx"
    primary_file = "model.onnx"
    known_options = frozenset({"device", "intra_op_threads", "predict_top_n"})

    def open(self) -> None:
        """Open the session on the chosen device and check the graph's input."""
        ort = _onnxruntime()
        settings = ort.SessionOptions()
        settings.intra_op_num_threads = count_option(self, "intra_op_threads", 1)
        settings.inter_op_num_threads = 1
        settings.log_severity_level = 3  # errors only: warnings about unused providers are noise
        requested = self.options.get("device") or "auto"
        providers = _providers(ort, self.name, requested)
        try:
            self._session: Any = ort.InferenceSession(
                str(self.directory / "model.onnx"), sess_options=settings, providers=providers
            )
        except Exception as exc:  # onnxruntime raises its own pybind types (Fail, InvalidProtobuf)
            raise ModelError(f"model {self.name!r}: cannot load model.onnx: {exc}") from exc
        # onnxruntime falls back to the CPU when the CUDA libraries fail to load.
        self.device = "cuda" if _CUDA in self._session.get_providers() else "cpu"
        if requested != "auto" and providers[0] != _CPU and self.device == "cpu":
            raise ModelError(f"model {self.name!r}: onnxruntime could not start {_CUDA}")
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            names = [i.name for i in inputs]
            raise ModelError(f"model {self.name!r}: expected a graph with one input, got {names}")
        self.input_name: str = inputs[0].name
        self.output_name: str = self._session.get_outputs()[0].name
        self.n_features = self._input_width(inputs[0].type, inputs[0].shape)

    def _input_width(self, dtype: str, shape: Sequence[Any]) -> int:
        """Check the input's type for this shape of model; a tensor model's width."""
        expected = "tensor(int64)" if self.users is not None else "tensor(float)"
        if dtype != expected:
            raise ModelError(
                f"model {self.name!r}: input {self.input_name!r}: expected {expected}, got {dtype}"
            )
        if self.users is not None:
            return 0
        declared = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
        width = int(self.n_features or declared or 0)
        if width <= 0 or (declared is not None and declared != width):
            raise ModelError(
                f"model {self.name!r}: input {self.input_name!r} of shape {list(shape)}: "
                f"expected [batch, {width or 'n_features'}] (manifest extra.n_features)"
            )
        return width

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The graph's first output for one input batch."""
        (output,) = self._session.run([self.output_name], {self.input_name: batch})
        return np.asarray(output)

    def check_health(self) -> None:
        """On a GPU, run the graph once: a lost device or a sticky CUDA error raises."""
        if self.device == "cuda":
            if self.users is not None:
                self.scores([""])
            else:
                self.run(np.zeros((1, self.n_features), dtype=np.float32))

    def describe(self) -> dict[str, Any]:
        """The tensor model's description, plus the graph's input and output names."""
        return {**super().describe(), "input": self.input_name, "output": self.output_name}
