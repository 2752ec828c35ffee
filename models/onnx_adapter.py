"""ONNX models run with onnxruntime (``model.onnx``, optional ``ids.json``).

The two shapes of the ``torchscript`` format, exported to ONNX. A *recommender*
ships ``ids.json`` (``{"users": [...], "items": [...]}``) and a graph whose one
input is ``int64[B]`` user indices and whose first output is float scores
``[B, len(items)]``; index ``len(users)`` is reserved for users the model has never
seen (a cold-start row). Without ``ids.json`` the graph is a plain tensor model:
one ``float32[B, F]`` input, its first output one prediction per row. ``F`` comes
from the manifest's ``extra.n_features``, else from the graph's declared input
width; ``extra.feature_names`` lets callers send objects keyed by feature name.
Input and output names are read from the graph.

Options: ``device`` (``auto``, ``cpu``, ``cuda`` or ``cuda:N``; ``auto`` takes the
GPU only when onnxruntime offers ``CUDAExecutionProvider``), ``intra_op_threads``
(default 1, because replicas share a node's cores; 0 lets onnxruntime decide) and
``predict_top_n`` (items per user in a recommender's ``predict``, default 10).

onnxruntime is an optional dependency: ``pip install 'blendserve[onnx]'``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models._inputs import to_feature_matrix, to_user_ids
from models.base import ModelAdapter, Recommender, RecommendQuery, ScoredItem
from models.errors import ModelError

__all__ = ["OnnxAdapter"]

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"
_OPTIONS = frozenset({"device", "intra_op_threads", "predict_top_n"})


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


def _count_option(name: str, options: Mapping[str, Any], key: str, default: int) -> int:
    """A non-negative integer option, or ``ModelError`` saying what was given."""
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ModelError(f"model {name!r}: {key}: expected an integer >= 0, got {value!r}")
    return value


class OnnxAdapter(ModelAdapter, Recommender):
    """An ONNX graph in an onnxruntime session, on ``cuda`` when offered, else the CPU."""

    format = "onnx"
    primary_file = "model.onnx"

    def load(self) -> None:
        """Open the session on the chosen device and check the graph's inputs."""
        unknown = sorted(set(self.options) - _OPTIONS)
        if unknown:
            raise ModelError(
                f"model {self.name!r}: unknown options {unknown}: expected {sorted(_OPTIONS)}"
            )
        ort = _onnxruntime()
        settings = ort.SessionOptions()
        settings.intra_op_num_threads = _count_option(
            self.name, self.options, "intra_op_threads", 1
        )
        settings.inter_op_num_threads = 1
        settings.log_severity_level = 3  # errors only: warnings about unused providers are noise
        self.top_n = _count_option(self.name, self.options, "predict_top_n", 10)
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
        self.users: dict[str, int] | None = None
        self.items: list[str] = []
        ids_path = self.directory / "ids.json"
        if ids_path.is_file():
            try:
                ids = json.loads(ids_path.read_text(encoding="utf-8"))
                self.users = {str(u): i for i, u in enumerate(ids["users"])}
                self.items = [str(i) for i in ids["items"]]
            except (ValueError, KeyError, TypeError) as exc:
                raise ModelError(
                    f'model {self.name!r}: malformed ids.json (expected {{"users": [...], '
                    f'"items": [...]}}): {exc!r}'
                ) from exc
        self.feature_names: list[str] | None = self.manifest.extra.get("feature_names")
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
        width = int(self.manifest.extra.get("n_features") or declared or 0)
        if width <= 0 or (declared is not None and declared != width):
            raise ModelError(
                f"model {self.name!r}: input {self.input_name!r} of shape {list(shape)}: "
                f"expected [batch, {width or 'n_features'}] (manifest extra.n_features)"
            )
        return width

    def example_instances(self) -> list[Any] | None:
        """The published examples, else a row of zeros for a tensor model (a
        recommender's smoke test is a recommendation)."""
        examples = super().example_instances()
        if examples is None and self.users is None:
            return [[0.0] * self.n_features]
        return examples

    def check_health(self) -> None:
        """On a GPU, run the graph once: a lost device or a sticky CUDA error raises."""
        if self.device == "cuda":
            if self.users is not None:
                self._scores([""])
            else:
                self._run(np.zeros((1, self.n_features), dtype=np.float32))

    def _run(self, feed: np.ndarray) -> np.ndarray:
        """The graph's first output for one input batch."""
        (output,) = self._session.run([self.output_name], {self.input_name: feed})
        return np.asarray(output)

    def _scores(self, users: Sequence[str]) -> np.ndarray:
        assert self.users is not None
        cold = len(self.users)
        index = np.asarray([self.users.get(u, cold) for u in users], dtype=np.int64)
        scores = self._run(index)
        if scores.shape != (len(users), len(self.items)):
            raise ModelError(
                f"model {self.name!r}: expected scores of shape {(len(users), len(self.items))}, "
                f"got {scores.shape}"
            )
        return scores

    def recommend(self, queries: Sequence[RecommendQuery], n: int) -> list[list[ScoredItem]]:
        """Top ``n`` items per user, scored by the graph."""
        if self.users is None:
            raise ModelError(f"model {self.name!r} is not a recommender (no ids.json)")
        if not queries or n <= 0:
            return [[] for _ in queries]
        scores = self._scores([q.user_id for q in queries])
        k = min(n, len(self.items))
        # A stable sort keeps tied items in catalogue order, so answers are repeatable.
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [
            [(self.items[i], float(row[i])) for i in picks]
            for row, picks in zip(scores, top, strict=True)
        ]

    def predict(self, instances: Sequence[Any]) -> list[Any]:
        """Recommenders: the top ``predict_top_n`` per user id; tensor models: the
        graph's first output, one row per instance."""
        if self.users is not None:
            queries = [RecommendQuery(u) for u in to_user_ids(instances)]
            return [
                {"items": [i for i, _ in row], "scores": [s for _, s in row]}
                for row in self.recommend(queries, self.top_n)
            ]
        matrix = to_feature_matrix(instances, self.n_features, self.feature_names)
        if len(matrix) == 0:
            return []
        return self._tensor_output(matrix).tolist()  # type: ignore[no-any-return]

    def predict_array(self, matrix: np.ndarray) -> np.ndarray:
        """One score per row of a trusted float matrix, in a single session call."""
        if self.users is not None:
            raise ModelError(f"model {self.name!r} is a recommender: it takes user ids")
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ModelError(
                f"model {self.name!r} takes {self.n_features} features, got shape {matrix.shape}"
            )
        if len(matrix) == 0:
            return np.zeros(0)
        output = self._tensor_output(matrix.astype(np.float32, copy=False))
        if output.ndim == 2 and output.shape[1] == 1:
            output = output[:, 0]
        if output.ndim != 1:
            raise ModelError(
                f"model {self.name!r}: expected one score per row, got shape {output.shape}"
            )
        return output.astype(np.float64)

    def _tensor_output(self, matrix: np.ndarray) -> np.ndarray:
        """Run a tensor model and check it answered one row per input row."""
        output = self._run(matrix)
        if output.ndim == 0 or output.shape[0] != len(matrix):
            raise ModelError(
                f"model {self.name!r}: expected {len(matrix)} output rows, got shape {output.shape}"
            )
        return output

    def describe(self) -> dict[str, Any]:
        """Say which shape of model this is, where it runs and what it takes."""
        return {
            **super().describe(),
            "recommender": self.users is not None,
            "device": self.device,
            "input": self.input_name,
            "output": self.output_name,
            "n_features": self.n_features or None,
            "feature_names": self.feature_names,
        }
